"""The admin's side of a deployment: submit, list, abort, follow and download jobs.

:class:`Admin` speaks the control service (:mod:`.wire`) with an admin kit's
certificate; every failure is an :class:`AdminError` with one line saying what
happened (the server unreachable, the kit refused, no such job).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import FlconfigError
from . import wire
from .archive import ArchiveError, pack_folder, unpack
from .grpclog import caller_reason
from .kit import Kit


class AdminError(FlconfigError):
    """An admin command that could not be done; the message says why."""


class Admin:
    """An admin's connection to the server of ``kit``'s project."""

    def __init__(self, kit: Kit, timeout: float = 60.0) -> None:
        import grpc

        self.kit = kit
        self.timeout = timeout
        self._channel = grpc.secure_channel(kit.server_address, kit.channel_credentials(), options=wire.options())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, exc: Any) -> AdminError:
        import grpc

        code = exc.code()
        details = (exc.details() or "").splitlines()[0][:300] if exc.details() else str(code)
        if code == grpc.StatusCode.UNAVAILABLE:
            why = caller_reason(exc.details() or "", self.kit.cert_file, self.kit.ca_file)
            if why:
                return AdminError(f"the TLS handshake with the server at {self.kit.server_address} "
                                  f"failed: {why}")
            return AdminError(f"cannot reach the server at {self.kit.server_address}: {details}")
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            return AdminError(f"the server refuses this kit ({self.kit.name}): {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return AdminError(f"the server at {self.kit.server_address} did not answer in time")
        return AdminError(f"the server answered {code.name}: {details}")

    def call(self, method: str, header: dict[str, Any], blob: bytes = b"",
             timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
        import grpc

        try:
            reply = self._channel.unary_unary(wire.method_path(method))(
                wire.encode(header, blob), timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        try:
            answer, data = wire.decode(reply)
        except wire.FrameError as exc:
            raise AdminError(f"the server's reply is not understood: {exc}") from None
        if answer.get("error"):
            raise AdminError(str(answer["error"]))
        return answer, data

    # ------------------------------------------------------------------ commands

    def submit(self, folder: Path, shown: str | None = None) -> dict[str, Any]:
        """Send the job folder; the server's answer: ``ok``, ``job_id`` and the validation ``report``."""
        if not folder.is_dir():
            raise AdminError(f"{folder}: no such job folder")
        try:
            data = pack_folder(folder, max_bytes=wire.MAX_JOB_BYTES)
        except (ArchiveError, OSError) as exc:
            raise AdminError(f"cannot send {folder}: {exc}") from None
        answer, _ = self.call("Submit", {"path": shown or str(folder)}, data, timeout=max(self.timeout, 300))
        return answer

    def jobs(self, job_id: str | None = None) -> dict[str, Any]:
        answer, _ = self.call("Jobs", {"job_id": job_id} if job_id else {})
        return answer

    def resolve(self, prefix: str) -> str:
        """The id of the one job whose id starts with ``prefix``."""
        ids = [j["id"] for j in self.jobs()["jobs"] if j["id"].startswith(prefix)]
        if not ids:
            raise AdminError(f"no job {prefix!r} (flconfig jobs lists them)")
        if len(ids) > 1:
            raise AdminError(f"{prefix!r} names {len(ids)} jobs; give more of the id")
        return ids[0]

    def abort(self, job_id: str) -> None:
        answer, _ = self.call("Abort", {"job_id": job_id})
        if not answer.get("ok"):
            raise AdminError(str(answer.get("error", "not aborted")))

    def logs(self, job_id: str, site: str = "server", follow: bool = False,
             write: Callable[[bytes], None] | None = None, interval: float = 1.0) -> str:
        """Copy the job's log of ``site`` to ``write`` (with ``follow``: until the job ends);
        the job's state at the end."""
        offset = 0
        while True:
            answer, data = self.call("Logs", {"job_id": job_id, "site": site, "offset": offset})
            if data and write is not None:
                write(data)
            offset = int(answer["offset"])
            if data:
                continue
            if not follow or answer.get("ended"):
                return str(answer.get("state", ""))
            time.sleep(interval)

    def download(self, job_id: str, dest: Path) -> Path:
        """The job's results (global model, TensorBoard files, cross-site results, logs) into
        ``dest/JOB_ID``; that folder."""
        import grpc

        target = dest / job_id
        if target.exists():
            raise AdminError(f"{target} exists already; remove it or download elsewhere")
        buf = io.BytesIO()
        try:
            replies: Iterator[bytes] = self._channel.unary_stream(wire.method_path("Download"))(
                wire.encode({"job_id": job_id}), timeout=3600)
            size = None
            for reply in replies:
                header, data = wire.decode(reply)
                if header.get("error"):
                    raise AdminError(str(header["error"]))
                if "size" in header:
                    size = int(header["size"])
                buf.write(data)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        if size is None or buf.tell() != size:
            raise AdminError(f"the download of job {job_id} was cut short ({buf.tell()} of {size} bytes)")
        try:
            unpack(buf.getvalue(), target, max_bytes=64 * 1024**3)
        except ArchiveError as exc:
            raise AdminError(f"the server sent an unsafe archive: {exc}") from None
        return target

    def shutdown(self, sites: bool = False) -> None:
        self.call("Shutdown", {"sites": sites})
