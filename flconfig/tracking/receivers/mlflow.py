"""Analytics records into an MLflow tracking store on the server."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ...errors import JobError
from ...files import inside
from ...types import RunContext
from .. import records as rec
from . import AnalyticsReceiver

log = logging.getLogger(__name__)


_MLFLOW_MISSING = (
    "MLflowReceiver needs MLflow, which is not installed: pip install 'flconfig[mlflow]'"
)


class MLflowReceiver(AnalyticsReceiver):
    """Logs the records to MLflow, one run per site (FLARE's ``MLflowReceiver``;
    needs the ``mlflow`` extra at run time: ``pip install 'flconfig[mlflow]'``).

    As in FLARE, it receives only the federated event unless told otherwise.
    Scalars become metrics (``add_scalars`` series: ``<main_tag>/<series>``),
    hparams become params plus metrics, texts become artifacts
    ``text/<tag>/<step>.txt``, images ``images/<tag>/<step>.png``; histograms
    are not supported by MLflow and are skipped (logged once).
    """

    DEFAULT_EVENTS: ClassVar[list[str]] = ["fed.analytix_log_stats"]
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "experiment_name": {"minLength": 1},
        "artifact_location": {
            "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
            "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')",
        },
        "buffer_flush_time": {"minimum": 0},
    }

    def __init__(
        self,
        tracking_uri: str | None = None,
        kw_args: dict[str, Any] | None = None,
        artifact_location: str | None = None,
        events: list[str] | None = None,
        buffer_flush_time: float = 1,
        experiment_name: str | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """
        Args:
            tracking_uri: MLflow tracking server or store; None or empty for a
                local folder store, ``<run_dir>/mlruns`` (``mlflow ui
                --backend-store-uri`` shows it).
            kw_args: FLARE's run settings: ``experiment_name`` (default
                "FLARE FL Experiment"), ``run_name`` (each site's run is named
                ``<site>-<job id>-<run_name>``), ``experiment_tags`` and
                ``run_tags`` (dicts; ``mlflow.note.content`` is shown as the
                description).
            artifact_location: folder of the experiment's artifacts, inside the
                run folder (default ``artifacts``).
            events: the events to receive; None for ``DEFAULT_EVENTS``.
            buffer_flush_time: accepted for FLARE's configs; flconfig sends each
                batch of records to MLflow as it is received.
            experiment_name: the experiment, when ``kw_args`` does not name it.
            kwargs: FLARE 2.4's name for ``kw_args``.
        """
        super().__init__(events)
        self.tracking_uri = tracking_uri or None
        self.kw_args = dict(kw_args or kwargs or {})
        for key in ("experiment_tags", "run_tags"):
            if not isinstance(self.kw_args.get(key, {}), dict):
                raise ValueError(f"MLflowReceiver: kw_args['{key}'] must be a dict of tags")
        self.experiment_name = str(self.kw_args.get("experiment_name") or experiment_name
                                   or "FLARE FL Experiment")
        self.artifact_location = artifact_location or "artifacts"
        self.buffer_flush_time = buffer_flush_time
        self._client: Any = None
        self._experiment_id = ""
        self._runs: dict[str, str] = {}
        self._metrics: dict[str, list[Any]] = {}
        self._job_id = ""

    def initialize(self, ctx: RunContext) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise JobError(_MLFLOW_MISSING) from None
        uri = self.tracking_uri
        if uri is None:
            uri = (Path(ctx.run_dir).resolve() / "mlruns").as_uri()
            # MLflow 3 refuses the folder store unless asked (mlflow-skinny has no
            # database store); a local folder is what this default promises.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client = MlflowClient(tracking_uri=uri)
        self._job_id = ctx.job_id
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            self._experiment_id = experiment.experiment_id
        else:
            artifacts = inside(ctx.run_dir, self.artifact_location).resolve()
            self._experiment_id = self._client.create_experiment(
                self.experiment_name, artifact_location=artifacts.as_uri(),
                tags={str(k): str(v) for k, v in self.kw_args.get("experiment_tags", {}).items()})

    def _run_id(self, origin: str) -> str:
        run_id = self._runs.get(origin)
        if run_id is None:
            name = origin
            if self.kw_args.get("run_name"):
                name = f"{origin}-{self._job_id[:6]}-{self.kw_args['run_name']}"
            tags = {str(k): str(v) for k, v in self.kw_args.get("run_tags", {}).items()}
            run = self._client.create_run(
                self._experiment_id, run_name=name,
                tags={**tags, "site": origin, "job_id": self._job_id, "run_name": name},
            )
            run_id = self._runs[origin] = run.info.run_id
            self._metrics[run_id] = []
        return run_id

    def _metric(self, run_id: str, key: str, value: Any, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        wall_time = record.get("wall_time") or time.time()
        self._metrics[run_id].append(
            Metric(_mlflow_name(key), float(value), int(wall_time * 1000), record.get("step") or 0)
        )

    def save(self, record: dict[str, Any], origin: str) -> None:
        run_id = self._run_id(origin)
        kind, tag, value = record["kind"], record["tag"], record["value"]
        step = record.get("step") or 0
        if kind == rec.SCALAR:
            self._metric(run_id, tag, value, record)
        elif kind == rec.SCALARS:
            for key, v in value.items():
                self._metric(run_id, f"{tag}/{key}", v, record)
        elif kind == rec.HPARAMS:
            for key, v in value["hparams"].items():
                self._client.log_param(run_id, _mlflow_name(key), v)
            for key, v in value["metrics"].items():
                self._metric(run_id, key, v, record)
        elif kind == rec.TEXT:
            self._client.log_text(run_id, value, f"text/{_mlflow_name(tag)}/{step}.txt")
        elif kind == rec.IMAGE:
            import io

            from PIL import Image

            image = Image.open(io.BytesIO(rec.decode_image_value(value)))
            self._client.log_image(run_id, image, f"images/{_mlflow_name(tag)}/{step}.png")
        else:
            raise ValueError(f"MLflow has no {kind} records")

    def after_batch(self) -> None:
        for run_id, metrics in self._metrics.items():
            while metrics:
                chunk, metrics[:] = metrics[:1000], metrics[1000:]
                self._client.log_batch(run_id, metrics=chunk)

    def finalize(self, ctx: RunContext) -> None:
        self.after_batch()
        for run_id in self._runs.values():
            self._client.set_terminated(run_id)


def _mlflow_name(name: str) -> str:
    # MLflow keys allow letters, digits, _ - . space and /.
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)

