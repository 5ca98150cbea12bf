"""TensorBoard event files: the runs of one site, written the way TensorBoard reads them.

An event file is a sequence of records, each ``u64 length | masked CRC-32C
of the length | Event protobuf | masked CRC-32C of the Event`` (TensorFlow's
record format). The events are built from tensorboard's own protobufs
(``tensorboard.compat.proto``) and plugin metadata, and laid out as
``torch.utils.tensorboard.SummaryWriter`` lays them out, so a training loop
that switches from SummaryWriter to a TBWriter sees the same tags and runs:

- ``scalar`` → ``simple_value`` in the site's run;
- ``scalars`` → one sub-run per series, ``<site>/<main_tag with / → _>_<key>``,
  each holding tag ``main_tag``;
- ``text`` → a text-plugin string tensor, tag ``<tag>/text_summary``;
- ``image`` → an image summary (PNG);
- ``histogram`` → a histogram summary;
- ``hparams`` → the HParams plugin's experiment, session start and session
  end summaries plus the metrics as scalars, in the sub-run ``<site>/<run name>``.

Unlike tensorboard's ``EventFileWriter``, which checksums each record in
Python and hands it to a writer thread one at a time (about 22 µs a scalar),
:class:`EventFile` collects the events of a batch and writes them with one
checksum pass (:mod:`.crc32c`) and one ``write``: a receiver keeps up with
many sites logging tens of thousands of scalars a second.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2

from . import records as rec
from .crc32c import masked_crc32c, masked_crc32c_many

#: Most sub-runs (``add_scalars`` series, hparams runs) one site may create.
MAX_SUBRUNS = 1000

_uid = itertools.count()
_LENGTH = struct.Struct("<Q")
_HEADER = struct.Struct("<QI")
_CRC = struct.Struct("<I")
_header_crcs: dict[int, int] = {}


def frame_records(payloads: list[bytes]) -> bytes:
    """``payloads`` framed as TensorFlow records, ready to append to an event file."""
    crcs = masked_crc32c_many(payloads)
    parts: list[bytes] = []
    append = parts.append
    header_crcs = _header_crcs
    for payload, crc in zip(payloads, crcs, strict=True):
        n = len(payload)
        hcrc = header_crcs.get(n)
        if hcrc is None:
            hcrc = header_crcs[n] = masked_crc32c(_LENGTH.pack(n))
        append(_HEADER.pack(n, hcrc))
        append(payload)
        append(_CRC.pack(crc))
    return b"".join(parts)


class EventFile:
    """One event file in ``logdir``; events are buffered until :meth:`write_pending`.

    A write either lands whole or not at all: when it fails (a full disk), the
    file is cut back to its last complete record, so it never holds a torn
    record, and :meth:`write_pending` raises ``OSError``. The events of the
    failed write stay buffered until :meth:`discard_pending` or the next try.

    :meth:`release` closes the file's descriptor while nothing is buffered (a server
    with ten thousand sites must not hold ten thousand files open); the next write
    opens the same file again and appends, so no record is lost or reordered.
    """

    def __init__(self, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.logdir = logdir
        # TensorBoard's own naming: events.out.tfevents.<time>.<host>.<pid>.<n>
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
            f".{os.getpid()}.{next(_uid)}"
        )
        self.path = logdir / name
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._closed = False
        #: Bytes of complete records in the file.
        self.size = 0
        self._pending: list[bytes] = []
        first = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        first.source_metadata.writer = "flconfig"
        self._pending.append(first.SerializeToString())
        try:
            self.write_pending()
        except OSError:
            os.close(self._fd)
            self._fd = -1
            try:
                self.path.unlink()
            except OSError:
                pass
            raise

    def add(self, event: event_pb2.Event) -> None:
        self._pending.append(event.SerializeToString())

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def write_pending(self) -> None:
        """Append the buffered events to the file: readable as soon as this returns.

        Raises ``OSError`` if the write fails; the file then ends at its last
        complete record and the events stay buffered.
        """
        if not self._pending:
            return
        data = frame_records(self._pending)
        view = memoryview(data)
        try:
            self._reopen()
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self.truncate(self.size)
            raise
        self.size += len(data)
        self._pending = []

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (a record boundary this file reached)."""
        try:
            self._reopen()
            os.ftruncate(self._fd, size)
        except OSError:
            pass  # a failed truncate of a full disk's file: nothing better to do
        self.size = size

    def discard_pending(self) -> None:
        """Forget the buffered events (their sender will send them again)."""
        self._pending = []

    def release(self) -> bool:
        """Close the descriptor if nothing is buffered (the next write opens the file
        again); True if it is closed now."""
        if self._fd >= 0 and not self._pending:
            os.close(self._fd)
            self._fd = -1
        return self._fd < 0

    def _reopen(self) -> None:
        if self._fd < 0:
            if self._closed:
                raise ValueError(f"{self.path} is closed")
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        """Write what is buffered and close; raises ``OSError`` if that write fails."""
        if self._closed:
            return
        try:
            self.write_pending()
        finally:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _event(
    summary_value: summary_pb2.Summary.Value, step: int | None, wall_time: float | None
) -> event_pb2.Event:
    event = event_pb2.Event(
        wall_time=time.time() if wall_time is None else wall_time,
        summary=summary_pb2.Summary(value=[summary_value]),
    )
    if step is not None:
        event.step = step
    return event


def _text_metadata() -> summary_pb2.SummaryMetadata:
    from tensorboard.plugins.text import plugin_data_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text",
            content=plugin_data_pb2.TextPluginData(version=0).SerializeToString(),
        )
    )


def text_value(tag: str, text: str) -> summary_pb2.Summary.Value:
    """A text-plugin summary (torch's ``add_text``: tag ``<tag>/text_summary``)."""
    tensor = tensor_pb2.TensorProto(
        dtype="DT_STRING",
        string_val=[text.encode("utf-8")],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]
        ),
    )
    return summary_pb2.Summary.Value(
        tag=tag + "/text_summary", metadata=_text_metadata(), tensor=tensor
    )


def image_value(tag: str, value: Mapping[str, Any]) -> summary_pb2.Summary.Value:
    image = summary_pb2.Summary.Image(
        height=value["height"],
        width=value["width"],
        colorspace=value["channels"],
        encoded_image_string=rec.decode_image_value(value),
    )
    return summary_pb2.Summary.Value(tag=tag, image=image)


def histogram_value(tag: str, value: Mapping[str, Any]) -> summary_pb2.Summary.Value:
    histo = summary_pb2.HistogramProto(
        min=value["min"],
        max=value["max"],
        num=value["num"],
        sum=value["sum"],
        sum_squares=value["sum_squares"],
        bucket_limit=value["bucket_limits"],
        bucket=value["bucket_counts"],
    )
    return summary_pb2.Summary.Value(tag=tag, histo=histo)


def hparams_values(value: Mapping[str, Any]) -> list[summary_pb2.Summary.Value]:
    """The HParams plugin's experiment, session start and session end summaries."""
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from tensorboard.plugins.hparams import metadata as hp

    ssi = plugin_data_pb2.SessionStartInfo()
    infos = []
    domains = value.get("domains") or {}
    for name, v in value["hparams"].items():
        if isinstance(v, bool):
            ssi.hparams[name].bool_value = v
            dtype, field = "DATA_TYPE_BOOL", "bool_value"
        elif isinstance(v, str):
            ssi.hparams[name].string_value = v
            dtype, field = "DATA_TYPE_STRING", "string_value"
        else:
            ssi.hparams[name].number_value = float(v)
            dtype, field = "DATA_TYPE_FLOAT64", "number_value"
        info = api_pb2.HParamInfo(name=name, type=api_pb2.DataType.Value(dtype))
        if name in domains:
            info.domain_discrete.CopyFrom(
                struct_pb2.ListValue(values=[struct_pb2.Value(**{field: d}) for d in domains[name]])
            )
        infos.append(info)
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=k)) for k in value["metrics"]],
    )
    sei = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value("STATUS_SUCCESS"))

    def summary(tag: str, **data: Any) -> summary_pb2.Summary.Value:
        plugin_data = plugin_data_pb2.HParamsPluginData(version=hp.PLUGIN_DATA_VERSION, **data)
        return summary_pb2.Summary.Value(
            tag=tag, metadata=hp.create_summary_metadata(plugin_data), tensor=hp.NULL_TENSOR
        )

    return [
        summary(hp.EXPERIMENT_TAG, experiment=experiment),
        summary(hp.SESSION_START_INFO_TAG, session_start_info=ssi),
        summary(hp.SESSION_END_INFO_TAG, session_end_info=sei),
    ]


def subrun_name(name: str) -> str:
    """A run folder name from a tag: path separators become ``_``; never ``.`` or ``..``."""
    safe = name.replace("/", "_").replace("\\", "_").replace("\x00", "_")
    if safe in ("", ".", ".."):
        safe = "_" + safe
    if len(safe.encode("utf-8")) > 200:  # file systems allow 255 bytes per name
        digest = hashlib.sha1(safe.encode("utf-8")).hexdigest()[:12]
        safe = safe.encode("utf-8")[:150].decode("utf-8", "ignore") + "~" + digest
    return safe


class RunWriter:
    """The event files of one site: its run folder ``logdir`` and the sub-runs in it."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._root = logdir.resolve()
        self._main = EventFile(logdir)
        self._subruns: dict[str, EventFile] = {}
        self._dirty: set[EventFile] = set()

    def _subrun(self, name: str) -> EventFile:
        writer = self._subruns.get(name)
        if writer is None:
            if len(self._subruns) >= MAX_SUBRUNS:
                raise ValueError(f"more than {MAX_SUBRUNS} sub-runs in {self.logdir}")
            folder = self.logdir / subrun_name(name)
            if folder.resolve().parent != self._root:
                raise ValueError(f"sub-run {name!r} would leave {self.logdir}")
            writer = self._subruns[name] = EventFile(folder)
        return writer

    def _add(self, writer: EventFile, event: event_pb2.Event) -> None:
        writer.add(event)
        self._dirty.add(writer)

    def write(self, record: Mapping[str, Any]) -> None:
        """Add one record (see :mod:`.records`); it is on disk after :meth:`write_pending`."""
        kind, tag, value = record["kind"], record["tag"], record["value"]
        step, wall_time = record.get("step"), record.get("wall_time")
        if kind == rec.SCALAR:
            self._main.add(
                _event(summary_pb2.Summary.Value(tag=tag, simple_value=value), step, wall_time)
            )
            self._dirty.add(self._main)
        elif kind == rec.SCALARS:
            main = tag.replace("/", "_")
            for key, v in value.items():
                self._add(
                    self._subrun(f"{main}_{key}"),
                    _event(summary_pb2.Summary.Value(tag=tag, simple_value=v), step, wall_time),
                )
        elif kind == rec.TEXT:
            self._add(self._main, _event(text_value(tag, value), step, wall_time))
        elif kind == rec.IMAGE:
            self._add(self._main, _event(image_value(tag, value), step, wall_time))
        elif kind == rec.HISTOGRAM:
            self._add(self._main, _event(histogram_value(tag, value), step, wall_time))
        elif kind == rec.HPARAMS:
            run = self._subrun(tag)
            for summary_value in hparams_values(value):
                self._add(run, _event(summary_value, step, wall_time))
            for name, v in value["metrics"].items():
                self._add(
                    run,
                    _event(summary_pb2.Summary.Value(tag=name, simple_value=v), step, wall_time),
                )
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def write_pending(self) -> None:
        """Write every file with buffered events, all or nothing.

        If one write fails, the files written before it in this call are cut
        back too and nothing of the batch remains buffered: the records are
        not on disk and the caller must not acknowledge them. Raises ``OSError``.
        """
        dirty, self._dirty = self._dirty, set()
        done: list[tuple[EventFile, int]] = []
        try:
            for writer in dirty:
                before = writer.size
                writer.write_pending()
                done.append((writer, before))
        except OSError:
            for writer, before in done:
                writer.truncate(before)
            for writer in dirty:
                writer.discard_pending()
            raise

    def discard_pending(self) -> None:
        """Forget every buffered event (after a failed batch)."""
        dirty, self._dirty = self._dirty, set()
        for writer in dirty:
            writer.discard_pending()

    def release(self) -> bool:
        """Close the descriptors of the files with nothing buffered (see
        :meth:`EventFile.release`); True if none is open now."""
        return all([writer.release() for writer in (self._main, *self._subruns.values())])

    def close(self) -> None:
        self._dirty.clear()
        for writer in (self._main, *self._subruns.values()):
            writer.close()
