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
from typing import Any, TypeVar

from google.protobuf.message import Message

from ..errors import FlconfigError
from . import deploy_pb2 as pb
from . import wire
from .archive import ArchiveError, pack_folder, unpack
from .grpclog import caller_reason
from .kit import Kit

M = TypeVar("M", bound=Message)


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

    def call(self, method: str, request: Message, reply: type[M], timeout: float | None = None) -> M:
        """The server's ``reply`` to ``request``, a call of ``method``; an
        :class:`AdminError` if the call fails or the reply says an error."""
        import grpc

        try:
            data = self._channel.unary_unary(wire.method_path(method))(
                request.SerializeToString(), timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        answer = _understood(reply, data)
        error = getattr(answer, "error", "")
        if error:
            raise AdminError(str(error))
        return answer

    # ------------------------------------------------------------------ commands

    def submit(self, folder: Path, shown: str | None = None) -> dict[str, Any]:
        """Send the job folder; the server's answer: ``ok``, ``job_id`` and the validation ``report``."""
        if not folder.is_dir():
            raise AdminError(f"{folder}: no such job folder")
        try:
            data = pack_folder(folder, max_bytes=wire.MAX_JOB_BYTES)
        except (ArchiveError, OSError) as exc:
            raise AdminError(f"cannot send {folder}: {exc}") from None
        answer = self.call("Submit", pb.SubmitRequest(path=shown or str(folder), job=data), pb.SubmitReply,
                           timeout=max(self.timeout, 300))
        return submitted(answer)

    def jobs(self, job_id: str | None = None) -> dict[str, Any]:
        """The server's jobs (or the one of ``job_id``): ``jobs`` (a dict each, as
        ``flconfig jobs --json`` shows them), ``sites`` connected, ``max_jobs``."""
        answer = self.call("Jobs", pb.JobsRequest(job_id=job_id or ""), pb.JobsReply)
        return {"jobs": [_job(info) for info in answer.jobs], "sites": list(answer.sites),
                "max_jobs": answer.max_jobs}

    def resolve(self, prefix: str) -> str:
        """The id of the one job whose id starts with ``prefix``."""
        ids = [j["id"] for j in self.jobs()["jobs"] if j["id"].startswith(prefix)]
        if not ids:
            raise AdminError(f"no job {prefix!r} (flconfig jobs lists them)")
        if len(ids) > 1:
            raise AdminError(f"{prefix!r} names {len(ids)} jobs; give more of the id")
        return ids[0]

    def abort(self, job_id: str) -> None:
        answer = self.call("Abort", pb.AbortRequest(job_id=job_id), pb.AbortReply)
        if not answer.ok:
            raise AdminError(answer.error or "not aborted")

    def logs(self, job_id: str, site: str = "server", follow: bool = False,
             write: Callable[[bytes], None] | None = None, interval: float = 1.0) -> str:
        """Copy the job's log of ``site`` to ``write`` (with ``follow``: until the job ends);
        the job's state at the end."""
        offset = 0
        while True:
            answer = self.call("Logs", pb.LogsRequest(job_id=job_id, site=site, offset=offset), pb.LogsReply)
            if answer.data and write is not None:
                write(answer.data)
            offset = answer.offset
            if answer.data:
                continue
            if not follow or answer.ended:
                return answer.state
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
                pb.DownloadRequest(job_id=job_id).SerializeToString(), timeout=3600)
            size = None
            for data in replies:
                reply = _understood(pb.DownloadReply, data)
                part = reply.WhichOneof("part")
                if part == "error":
                    raise AdminError(reply.error)
                if part == "size":
                    size = reply.size
                elif part == "data":
                    buf.write(reply.data)
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
        self.call("Shutdown", pb.ShutdownRequest(sites=sites), pb.ShutdownReply)


def _understood(kind: type[M], data: bytes) -> M:
    try:
        return wire.parse(kind, data)
    except wire.MessageError as exc:
        raise AdminError(f"the server's reply is not understood: {exc}") from None


def submitted(answer: pb.SubmitReply) -> dict[str, Any]:
    """The server's answer to a submission: ``ok`` and validate's ``report``, and with
    ``ok`` the ``job_id`` and how many jobs are ``queued``."""
    if not answer.ok:
        return {"ok": False, "report": answer.report}
    return {"ok": True, "job_id": answer.job_id, "report": answer.report, "queued": answer.queued}


def _job(info: pb.JobInfo) -> dict[str, Any]:
    """A job as the server lists it (the job store's record, and a ``note`` if any)."""
    job: dict[str, Any] = {
        "id": info.id, "name": info.name, "state": info.state, "submitter": info.submitter,
        "submitter_org": info.submitter_org, "submitted_at": info.submitted_at,
        "started_at": info.started_at if info.HasField("started_at") else None,
        "ended_at": info.ended_at if info.HasField("ended_at") else None,
        "sites": list(info.sites), "error": info.error,
    }  # fmt: skip
    if info.note:
        job["note"] = info.note
    return job
