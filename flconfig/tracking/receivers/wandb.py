"""Analytics records into Weights & Biases runs on the server."""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

from ...errors import JobError
from ...types import RunContext
from .. import records as rec
from . import AnalyticsReceiver

log = logging.getLogger(__name__)

_WANDB_MISSING = "WandBReceiver needs Weights & Biases, which is not installed: pip install 'flconfig[wandb]'"


class WandBReceiver(AnalyticsReceiver):
    """Logs the records to Weights & Biases, one run per site (FLARE's ``WandBReceiver``;
    needs the ``wandb`` extra at run time: ``pip install 'flconfig[wandb]'``).

    Each site's run is named ``<site>-<job id>-<name>`` in the group ``<name>-<job id>``,
    with ``wandb_args`` (FLARE's: ``project``, ``name``, ``group``, ``job_type``, ``notes``,
    ``tags``, ``config`` ...) passed to ``wandb.init``; the runs' files go to ``wandb/`` in
    the server's run folder. ``mode`` is W&B's: ``offline`` (the default: ``wandb sync``
    uploads them later), ``online`` (falls back to offline when no login works, as FLARE), or
    ``disabled``.

    Scalars are logged with their own step as the x-axis (``<tag>`` against
    ``<tag>/step``), so a metric logged at an earlier step than another is never dropped
    (FLARE drops records whose step goes back); ``add_scalars`` series as
    ``<main_tag>/<series>``; texts as W&B HTML; images as ``wandb.Image``; hparams into the
    run's config. Histograms are skipped (logged once).
    """

    DEFAULT_EVENTS: ClassVar[list[str]] = ["fed.analytix_log_stats"]
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "mode": {"enum": ["online", "offline", "disabled"]},
        "process_timeout": {"minimum": 0},
    }

    def __init__(self, wandb_args: dict[str, Any] | None = None, mode: str = "offline",
                 events: list[str] | None = None, process_timeout: float = 10.0,
                 kwargs: dict[str, Any] | None = None) -> None:
        """
        Args:
            wandb_args: ``wandb.init``'s arguments (``project``, ``name``, ``group``,
                ``job_type``, ``config`` ...).
            mode: ``offline``, ``online`` or ``disabled``.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
            process_timeout: accepted for FLARE's configs (flconfig runs no W&B process per site).
            kwargs: FLARE 2.4's name for ``wandb_args``.
        """
        super().__init__(events)
        self.wandb_args = dict(wandb_args or kwargs or {})
        self.mode = mode
        self.process_timeout = process_timeout
        self._wandb: Any = None
        self._runs: dict[str, Any] = {}
        self._steps: dict[str, set[str]] = {}
        self._job_id = ""
        self._dir = ""
        self._said: set[str] = set()

    def initialize(self, ctx: RunContext) -> None:
        try:
            import wandb
        except ImportError:
            raise JobError(_WANDB_MISSING) from None
        self._wandb = wandb
        self._job_id = ctx.job_id
        self._dir = str(ctx.run_dir)
        if self.mode == "online":
            try:
                wandb.login(timeout=1, verify=True)
            except Exception as exc:  # noqa: BLE001 - no login: offline, as FLARE does
                log.warning("WandBReceiver: no W&B login (%s): logging offline", exc)
                self.mode = "offline"

    def _run(self, origin: str) -> Any:
        run = self._runs.get(origin)
        if run is None:
            name = str(self.wandb_args.get("name") or "flconfig")
            job = self._job_id[:6]
            config = dict(self.wandb_args.get("config") or {})
            config.update({"job_id": self._job_id, "client": origin, "run_name": name})
            args = {**self.wandb_args, "name": f"{origin}-{job}-{name}",
                    "group": self.wandb_args.get("group") or f"{name}-{job}", "config": config,
                    "mode": self.mode, "dir": self._dir, "reinit": "create_new"}
            os.makedirs(self._dir, exist_ok=True)
            run = self._runs[origin] = self._wandb.init(**args)
            self._steps[origin] = set()
        return run

    def _scalar(self, origin: str, run: Any, key: str, value: Any, step: Any) -> None:
        axis = f"{key}/step"
        if key not in self._steps[origin]:
            run.define_metric(axis, hidden=True)
            run.define_metric(key, step_metric=axis)
            self._steps[origin].add(key)
        run.log({key: value, axis: step or 0})

    def save(self, record: dict[str, Any], origin: str) -> None:
        run = self._run(origin)
        kind, tag, value, step = record["kind"], record["tag"], record["value"], record.get("step")
        if kind == rec.SCALAR:
            self._scalar(origin, run, tag, value, step)
        elif kind == rec.SCALARS:
            for key, v in value.items():
                self._scalar(origin, run, f"{tag}/{key}", v, step)
        elif kind == rec.TEXT:
            run.log({tag: self._wandb.Html(f"<pre>{value}</pre>"), f"{tag}/step": step or 0})
        elif kind == rec.IMAGE:
            import io

            from PIL import Image

            image = Image.open(io.BytesIO(rec.decode_image_value(value)))
            run.log({tag: self._wandb.Image(image), f"{tag}/step": step or 0})
        elif kind == rec.HPARAMS:
            run.config.update(dict(value["hparams"]), allow_val_change=True)
            for key, v in value["metrics"].items():
                self._scalar(origin, run, key, v, step)
        elif kind not in self._said:
            self._said.add(kind)
            log.warning("WandBReceiver: W&B gets no %s records; they are left out", kind)

    def finalize(self, ctx: RunContext) -> None:
        """Finishes every site's run and waits until W&B has written them all: ``run.finish``
        returns before W&B's writer has flushed a run's file, ``wandb.teardown`` only after."""
        for run in self._runs.values():
            run.finish()
        if self._runs:
            try:
                self._wandb.teardown()
            except SystemExit as exc:  # W&B's service reports a failure by exiting
                log.warning("WandBReceiver: W&B ended with exit code %s; its run files may be incomplete",
                            exc.code)
        self._runs.clear()
