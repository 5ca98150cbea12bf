"""FLARE's scikit-learn components: SKLearnExecutor, JoblibModelParamPersistor and
CollectAndAssembleAggregator (the sklearn-kmeans, -linear and -svm examples).

The learner (``SKLearnExecutor``'s ``learner_id``) and the assembler
(``CollectAndAssembleAggregator``'s ``assembler_id``) are the job's own classes,
written against FLARE's API: a ``Learner`` whose ``train(curr_round, global_param,
fl_ctx)`` returns ``(params, model)`` and ``validate(...)`` returns ``(metrics,
model)``; an ``Assembler`` (``nvflare.app_common.aggregators.assembler``).
Parameters travel as dicts of arrays and plain values (``{"n_clusters": 3}``,
``{"count": None}``), never pickled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from ..compat.nvflare.apis.dxo import DXO
from ..compat.nvflare.app_common.abstract.learner import Learner
from ..compat.nvflare.app_common.aggregators.assembler import Assembler
from ..compat.nvflare.app_common.app_constant import AppConstants
from ..compat.shareables import flare_context
from ..errors import JobError
from ..files import inside, outside_file, write_atomic
from ..tracking.senders import AnalyticsSender
from ..transport.codec import ProtocolError, decode_model, encode_model
from ..types import Event, EventType, FLModel, ReturnCode, RunContext, Signal
from .aggregators import KIND_OF_PARAMS_TYPE, NUM_STEPS_KEY
from .base import Aggregator, Executor, ModelPersistor, flare_learner, site_logger

log = logging.getLogger(__name__)



class SKLearnExecutor(Executor):
    """Runs a scikit-learn learner written against FLARE's API (FLARE's ``SKLearnExecutor``).

    On ``train_task`` the learner gets the round (``current_round``) and the global
    parameters: from round 1 on it first ``validate(round, params, fl_ctx)``\\ s them and
    each of the metrics it returns is logged as a scalar at step ``round``; then
    ``train(round, params, fl_ctx)``'s parameters go back as ``WEIGHTS`` with the
    learner's ``n_samples`` as ``NUM_STEPS_CURRENT_ROUND``. ``initialize(parts,
    fl_ctx)`` is called when the run starts, ``finalize(fl_ctx)`` when it ends,
    ``abort(fl_ctx)`` when a task is aborted.

    The metrics go to the site's AnalyticsSender when the site has one (and so to the
    server's TensorBoard); otherwise into TensorBoard files in the site's run folder
    (``tb_events/``), where FLARE writes them. FLARE also writes the learner's
    scikit-learn models with joblib (pickle); flconfig does not write them.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "learner_id": {"minLength": 1},
        "train_task": {"minLength": 1},
    }

    def __init__(self, learner_id: str, train_task: str = "train") -> None:
        """
        Args:
            learner_id: id of the learner component (the job's FLARE-API Learner).
            train_task: the task name that validates (from round 1) and trains.
        """
        self.learner_id = learner_id
        self.train_task = train_task
        self._learner: Any = None
        self._writer: Any = None
        self._sender: Any = None  # the site's AnalyticsSender, False when it has none
        self._finalized = False

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """START_RUN: initialize the learner; ABORT_TASK: abort it; END_RUN: finalize it."""
        if event.type == EventType.START_RUN:
            self._initialized(ctx)
        elif self._learner is not None and event.type == EventType.ABORT_TASK:
            self._learner.abort(_fl_ctx(ctx))
        elif self._learner is not None and event.type == EventType.END_RUN and not self._finalized:
            self._finalized = True
            self._learner.finalize(_fl_ctx(ctx))
            if self._writer is not None:
                self._writer.close()

    def _initialized(self, ctx: RunContext) -> Any:
        if self._learner is not None:
            return self._learner

        learner = flare_learner(ctx, self.learner_id, Learner, "nvflare.app_common.abstract.learner_spec.Learner")
        learner.initialize(dict(getattr(ctx, "components", {})), _fl_ctx(ctx))
        self._learner = learner
        return learner

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Validate (from round 1) and train on the global parameters in ``data``."""
        if task_name != self.train_task:
            return FLModel.error(ReturnCode.TASK_UNKNOWN, f"SKLearnExecutor has no task {task_name!r}")
        if abort_signal.triggered:
            return FLModel.error(ReturnCode.TASK_ABORTED, "aborted")
        learner = self._initialized(ctx)
        current_round = data.meta.get("current_round", 0)
        params = dict(data.params)
        fl_ctx = _fl_ctx(ctx, current_round)
        name = type(learner).__name__
        try:
            if isinstance(current_round, int) and current_round > 0:
                metrics, _model = learner.validate(current_round, params, fl_ctx)
                for key, value in dict(metrics or {}).items():
                    self._log_value(ctx, str(key), value, current_round)
            result, _model = learner.train(current_round, params, fl_ctx)
        except Exception as exc:  # noqa: BLE001 - the job's code failed: the task's error result
            site_logger(ctx, log).error("%s failed in round %s: %s: %s", name, current_round, type(exc).__name__, exc)
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, f"{name}: {type(exc).__name__}: {exc}")
        if not isinstance(result, dict):
            return FLModel.error(ReturnCode.EMPTY_RESULT,
                                 f"{name}.train returned {type(result).__name__} parameters, not a dict")
        meta: dict[str, Any] = {}
        samples = getattr(learner, "n_samples", None)
        if isinstance(samples, (int, float)) and not isinstance(samples, bool):
            meta[NUM_STEPS_KEY] = samples
        return FLModel(params=result, meta=meta, params_type="FULL")

    def _log_value(self, ctx: RunContext, key: str, value: Any, step: int) -> None:
        if self._sender is None:
            found = [c for c in getattr(ctx, "components", {}).values() if isinstance(c, AnalyticsSender)]
            self._sender = found[0] if found else False
        if self._sender:
            self._sender.add_scalar(key, float(value), step)
            return
        if self._writer is None:
            from tensorboard.summary import Writer

            self._writer = Writer(str(Path(ctx.run_dir) / "tb_events"))
        self._writer.add_scalar(key, float(value), step=step)
        self._writer.flush()


class JoblibModelParamPersistor(ModelPersistor):
    """The global parameters of a scikit-learn job (FLARE's ``JoblibModelParamPersistor``).

    The first global model is the file ``model_path`` names (FLARE 2.9; an absolute path on
    the server), else the parameters saved under ``save_name`` in the server's run folder by
    an earlier run, else ``initial_params`` (settings such as ``{"n_clusters": 3}``; a
    ``model_path`` key there is read as the argument, as FLARE does). Each saved model
    replaces that file atomically.

    **File format: flconfig's model format, never pickle.** The file keeps FLARE's name
    (``model_param.joblib``) but holds the parameters as flconfig sends them (a JSON
    header and safetensors arrays); a joblib file left there by FLARE is not read, nor is a
    joblib or pickle file ``model_path`` names (it is refused: never unpickled).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "initial_params": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        "save_name": {"minLength": 1, "pattern": r"^(?!\.\.?$)[^/\\]+$",
                      "patternErrorMessage": "a file name without a folder"},
        "model_path": {"anyOf": [{"type": "null"}, {
            "type": "string", "pattern": r"^([/\\]|[A-Za-z]:)",
            "patternErrorMessage": "an absolute path of a file on the server (as FLARE requires)"}]},
    }

    def __init__(self, initial_params: dict | None = None, save_name: str = "model_param.joblib",
                 model_path: str | None = None) -> None:
        """
        Args:
            initial_params: the first global parameters (the learners' settings).
            save_name: the file name the global parameters are saved under.
            model_path: an absolute path of saved parameters to start from (a file
                flconfig saved; FLARE 2.9).
        """
        self.initial_params = initial_params if initial_params is not None else {}
        self.save_name = save_name
        self.model_path = model_path

    def load(self, ctx: RunContext) -> FLModel:
        """The saved parameters, or ``initial_params``; JobError for a file flconfig did not write."""

        initial = dict(self.initial_params or {})
        given = self.model_path or initial.pop("model_path", None)
        if given:
            source = Path(str(given))
            if source.is_absolute():
                source = outside_file(ctx, str(given), "model_path")
            if not source.is_absolute() or not source.is_file():
                raise JobError(f"persistor: model_path {str(given)!r} is not an absolute path of a file "
                               "on the server")
        path = Path(source) if given else inside(ctx.run_dir, self.save_name)
        if path.is_file():
            try:
                model = decode_model(path.read_bytes())
            except ProtocolError as exc:
                raise JobError(f"persistor: {path} is not a model flconfig saved ({exc}); it is never "
                               "unpickled: remove it to start from initial_params") from None
            return FLModel(params=model.params, params_type="FULL")
        if not initial:
            raise JobError("persistor: no initial parameters: give initial_params (the learners' settings, "
                           "such as {\"n_clusters\": 3}) or model_path")
        return FLModel(params=initial, params_type="FULL")

    def save(self, model: FLModel, ctx: RunContext) -> None:
        """Write the global parameters to ``save_name`` in the server's run folder."""

        path = inside(ctx.run_dir, self.save_name)
        write_atomic(path, encode_model(FLModel(params=model.params, params_type="FULL")))
        site_logger(ctx, log).info("saved the global parameters to %s", path)

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The saved parameters by file name, or None."""
        return self.load(ctx) if name in self.model_names(ctx) else None

    def model_names(self, ctx: RunContext) -> list[str]:
        """``[save_name]`` once the parameters were saved."""
        return [self.save_name] if inside(ctx.run_dir, self.save_name).is_file() else []


class CollectAndAssembleAggregator(Aggregator):
    """Collects the round's site results and lets the job's ``Assembler`` make the next
    global model of them (FLARE's ``CollectAndAssembleAggregator``).

    Each accepted result is stored as ``assembler.get_model_params(dxo)`` in the
    assembler's ``collection`` under the site's name; :meth:`aggregate` returns
    ``assembler.assemble(collection, fl_ctx)`` (its DXO's data as the parameters) and
    resets the assembler. A failed result, one whose kind is not the assembler's
    ``expected_data_kind``, or a second one from the same site in a round is refused
    and logged.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"assembler_id": {"minLength": 1}}

    def __init__(self, assembler_id: str) -> None:
        """
        Args:
            assembler_id: id of the assembler component (the job's FLARE-API Assembler).
        """
        self.assembler_id = assembler_id
        self._assembler: Any = None

    def _get_assembler(self, ctx: RunContext) -> Any:
        if self._assembler is None:
            assembler = ctx.get_component(self.assembler_id)
            if not isinstance(assembler, Assembler):
                what = "no component" if assembler is None else f"a {type(assembler).__name__}"
                raise JobError(f"aggregator: assembler_id '{self.assembler_id}' names {what}, not a FLARE "
                               "Assembler (nvflare.app_common.aggregators.assembler.Assembler)")
            assembler.initialize(_fl_ctx(ctx))
            self._assembler = assembler
        return self._assembler

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        """Store ``site``'s result in the assembler's collection; False (logged) to refuse it."""

        assembler = self._get_assembler(ctx)
        kind = ("METRICS" if not result.params and result.metrics
                else KIND_OF_PARAMS_TYPE.get(result.params_type, result.params_type))
        reason = None
        if result.rc != ReturnCode.OK:
            reason = f"its return code is {result.rc}"
        elif kind != assembler.get_expected_data_kind():
            reason = f"it holds {kind}, the assembler expects {assembler.get_expected_data_kind()}"
        elif site in assembler.collection:
            reason = "a result from this site was already accepted this round"
        if reason is not None:
            site_logger(ctx, log).warning("aggregator refused the result of site %s: %s", site, reason)
            return False
        data = result.metrics if kind == "METRICS" else result.params
        assembler.collection[site] = assembler.get_model_params(DXO(kind, data=dict(data), meta=dict(result.meta)))
        return True

    def aggregate(self, ctx: RunContext) -> FLModel:
        """The assembler's result for the round's collection; the assembler is reset."""

        assembler = self._get_assembler(ctx)
        if not assembler.collection:
            raise JobError("aggregator: no result was accepted this round, nothing to assemble")
        sites = list(assembler.collection)
        round_ = getattr(ctx, "props", {}).get("current_round")
        dxo = assembler.assemble(data=assembler.collection, fl_ctx=_fl_ctx(ctx, round_))
        assembler.reset()
        if not isinstance(dxo, DXO):
            raise JobError(f"aggregator: {type(assembler).__name__}.assemble returned a "
                           f"{type(dxo).__name__}, not a DXO")
        params_type = "DIFF" if dxo.data_kind == "WEIGHT_DIFF" else "FULL"
        return FLModel(params=dict(dxo.data or {}), params_type=params_type,
                       meta={"contributors": sites})

    def reset(self, ctx: RunContext | None = None) -> None:
        """Forget the round's collection."""
        if self._assembler is not None:
            self._assembler.reset()


class CollectAndAssembleModelAggregator(CollectAndAssembleAggregator):
    """FLARE 2.9's ``CollectAndAssembleModelAggregator``: the same collection and assembly,
    as the ``aggregator`` of a FedAvg workflow (a nested spec, as the k-means and SVM
    recipes export it) rather than a ScatterAndGather's ``aggregator_id``."""


def _fl_ctx(ctx: RunContext, current_round: Any = None) -> Any:
    props = {} if current_round is None else {AppConstants.CURRENT_ROUND: current_round}
    return flare_context(ctx, **props)


