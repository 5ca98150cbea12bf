"""TensorBoard event files on the server, one run folder per site."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from ...files import inside
from ...transport.contract import is_valid_site_name
from ...types import RunContext
from . import AnalyticsReceiver

log = logging.getLogger(__name__)

#: Sites whose event files a receiver keeps open at most; those of the sites that wrote
#: least recently are closed beyond it, and opened again (appending) when they next write.
MAX_OPEN_SITES = 256


class TBAnalyticsReceiver(AnalyticsReceiver):
    """Writes the records into TensorBoard event files, one run folder per site
    (FLARE's ``TBAnalyticsReceiver``): ``<run_dir>/<tb_folder>/<site>/``.

    Layout and tags follow ``torch.utils.tensorboard.SummaryWriter`` (see
    :mod:`flconfig.tracking.tb_files`). The records of each event are on disk
    (written and flushed) when the event has been handled, so
    ``tensorboard --logdir <run_dir>/<tb_folder>`` shows them live. In a client
    config it writes that site's own metrics under the client's run directory.

    It keeps the files of at most :data:`MAX_OPEN_SITES` sites open (those that
    wrote last): ten thousand sites do not take ten thousand file descriptors.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"tb_folder": {
            "minLength": 1,
            "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
            "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')",
        }}

    def __init__(self, tb_folder: str = "tb_events", events: list[str] | None = None) -> None:
        """
        Args:
            tb_folder: folder, relative to the run directory, holding one
                sub-folder of event files per site.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        super().__init__(events)
        self.tb_folder = tb_folder
        self.root: Path | None = None
        self._writers: dict[str, Any] = {}
        # The writers holding records of the batch under way: a batch writes (or
        # discards) only them, not every site's (a thousand sites made that quadratic).
        self._touched: dict[str, Any] = {}
        # The writers whose files may be open, least recently written first.
        self._open: OrderedDict[str, Any] = OrderedDict()
        self.max_open_sites = MAX_OPEN_SITES

    def initialize(self, ctx: RunContext) -> None:
        from ..tb_files import RunWriter  # tensorboard's protobufs: run time only

        self._run_writer = RunWriter
        self.root = inside(ctx.run_dir, self.tb_folder)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, record: dict[str, Any], origin: str) -> None:
        writer = self._writers.get(origin)
        if writer is None:
            writer = self._writers[origin] = self._run_writer(self._site_folder(origin))
        self._touched[origin] = writer
        writer.write(record)

    def _site_folder(self, origin: str) -> Path:
        assert self.root is not None
        if not is_valid_site_name(origin):
            raise ValueError(f"bad site name {origin!r}")
        folder = self.root / origin
        if folder.resolve().parent != self.root:
            raise ValueError(f"site {origin!r} would leave {self.root}")
        return folder

    def after_batch(self) -> None:
        # The batch's files, all or nothing (a batch holds one site's records). Written
        # writers leave the list only once written: after a full disk, discard() still
        # finds them.
        for origin, writer in list(self._touched.items()):
            writer.write_pending()
            del self._touched[origin]
            self._open[origin] = writer
            self._open.move_to_end(origin)
        while len(self._open) > self.max_open_sites:
            origin, writer = self._open.popitem(last=False)
            if not writer.release():  # records it could not write yet: it stays open
                self._open[origin] = writer
                break

    def discard(self) -> None:
        touched, self._touched = self._touched, {}
        for writer in touched.values():
            writer.discard_pending()

    def finalize(self, ctx: RunContext) -> None:
        self._touched = {}
        self._open.clear()
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()


