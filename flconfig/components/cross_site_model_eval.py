"""CrossSiteModelEval: every site validates every model (FLARE's ``CrossSiteModelEval``)."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..files import inside
from ..types import FLModel, ReturnCode, Signal
from .base import (
    AppEventType,
    Controller,
    ModelLocator,
    ModelPersistor,
    lookup_component,
    site_logger,
)
from .validation_json import validation_entry, write_json

if TYPE_CHECKING:
    from ..types import ServerContext

log = logging.getLogger(__name__)

#: Prefix that tells server models from site models in the results (FLARE's).
SERVER_MODEL_PREFIX = "SRV_"
#: The model ``submit_model`` asks the sites for (FLARE's ``ModelName.BEST_MODEL``).
SUBMIT_MODEL_NAME = "best_model"
#: Name of the results file inside ``cross_val_dir``.
RESULTS_FILE_NAME = "cross_val_results.json"
#: ``ctx.props`` key of the results once the workflow is done.
RESULTS_PROP = "cross_val_results"


class CrossSiteModelEval(Controller):
    """Collects the sites' models (``submit_model``) and the server's models (from
    the model locator), then asks every site to validate each of them.

    Site models are named by their site (``site-1``), server models by the
    locator's name with the ``SRV_`` prefix (``SRV_FL_global_model.pt``).
    Each validation result fires ``_validation_result_received`` (see
    :class:`~flconfig.components.validation_json.ValidationJsonGenerator`);
    when the workflow ends, also when aborted, the results are written as
    ``{site: {model: metrics}}`` to
    ``<run dir>/<cross_val_dir>/cross_val_results.json`` (atomically) and
    left in ``ctx.props["cross_val_results"]``. Failed validations are left
    out of the file and logged.

    A site that is lost, or does not answer within the timeout, is reported
    and the others go on. Models are kept in memory and never written, so
    ``cleanup_models`` has nothing to remove; ``task_check_period`` is
    accepted for compatibility (results are waited for without polling); a
    ``formatter_id`` component is checked to exist but not used: the
    workflow reports its progress itself.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "task_check_period": {"exclusiveMinimum": 0},
        "cross_val_dir": {
            "minLength": 1,
            "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
            "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')",
        },
        "submit_model_timeout": {"minimum": 0},
        "validation_timeout": {"minimum": 0},
        "submit_model_task_name": {"minLength": 1},
        "validation_task_name": {"minLength": 1},
        "participating_clients": {"minItems": 1, "items": {"type": "string", "minLength": 1}},
        "wait_for_clients_timeout": {"minimum": 0},
    }

    def __init__(
        self,
        task_check_period: float = 0.5,
        cross_val_dir: str = "cross_site_val",
        submit_model_timeout: int = 600,
        validation_timeout: int = 6000,
        model_locator_id: str = "",
        formatter_id: str = "",
        submit_model_task_name: str = "submit_model",
        validation_task_name: str = "validate",
        cleanup_models: bool = False,
        participating_clients: list[str] | None = None,
        wait_for_clients_timeout: int = 300,
    ) -> None:
        """
        Args:
            task_check_period: seconds between checks of the tasks' progress.
            cross_val_dir: folder, relative to the server's run directory,
                where models and results are kept.
            submit_model_timeout: seconds a site has to submit its model.
            validation_timeout: seconds a site has to validate one model.
            model_locator_id: id of the ModelLocator that provides the server's
                models; empty to evaluate only the sites' models.
            formatter_id: id of a component that formats the results; empty
                for none.
            submit_model_task_name: name of the task that asks for a site's model.
            validation_task_name: name of the task that asks for a validation.
            cleanup_models: delete the saved models when the workflow ends.
            participating_clients: the sites taking part; None for all.
            wait_for_clients_timeout: seconds to wait for the participating
                sites to connect.
        """
        self.task_check_period = float(task_check_period)
        self.cross_val_dir = cross_val_dir
        self.submit_model_timeout = submit_model_timeout
        self.validation_timeout = validation_timeout
        self.model_locator_id = model_locator_id
        self.formatter_id = formatter_id
        self.submit_model_task_name = submit_model_task_name
        self.validation_task_name = validation_task_name
        self.cleanup_models = cleanup_models
        self.participating_clients = (
            None if participating_clients is None else list(participating_clients)
        )
        self.wait_for_clients_timeout = wait_for_clients_timeout

        #: ``{site: {model name: metrics}}`` of the last run of this workflow.
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self._locator: ModelLocator | None = None

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    # -- lifecycle ------------------------------------------------------------------

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Look up the model locator (and check the formatter id)."""
        owner = self._owner()
        self._locator = (
            lookup_component(ctx, owner, "model_locator_id", self.model_locator_id, ModelLocator)
            if self.model_locator_id
            else None
        )
        if self.formatter_id:
            if ctx.get_component(self.formatter_id) is None:
                raise JobError(
                    f"{owner}: formatter_id '{self.formatter_id}' names no component; "
                    "remove formatter_id or add that component"
                )
            site_logger(ctx, log).info("%s: formatter_id is accepted for compatibility and not used", owner)
        self.results = {}

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Drop the reference to the model locator."""
        self._locator = None

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Collect the models, have every site validate each, write the results file."""
        if getattr(ctx, "comm", None) is None:
            raise JobError(f"{self._owner()}: the server has no link to the sites (ctx.comm)")
        sites = self._wait_for_sites(abort_signal, ctx)
        if not sites:
            return
        self.results = {site: {} for site in sites}
        try:
            models = self._collect_models(sites, abort_signal, ctx)
            for name, model in models.items():
                if abort_signal.triggered:
                    break
                self._validate(name, model, sites, abort_signal, ctx)
        finally:
            self._write_results(ctx)

    # -- steps ----------------------------------------------------------------------

    def _wait_for_sites(self, abort_signal: Signal, ctx: ServerContext) -> list[str] | None:
        """The sites taking part: all connected ones, or the connected ``participating_clients``."""
        wanted = self.participating_clients
        deadline = time.monotonic() + self.wait_for_clients_timeout
        while True:
            alive = ctx.comm.alive_sites()
            present = alive if wanted is None else [s for s in wanted if s in alive]
            if present and (wanted is None or len(present) == len(wanted)):
                return present
            if abort_signal.triggered:
                return None
            if time.monotonic() >= deadline:
                missing = [] if wanted is None else [s for s in wanted if s not in alive]
                if present:
                    site_logger(ctx, log).warning(
                        "%s: %s not connected after %d s; evaluating with %s",
                        self._owner(), ", ".join(missing), self.wait_for_clients_timeout,
                        ", ".join(present),
                    )  # fmt: skip
                    return present
                ctx.progress(
                    f"cross-site evaluation skipped: no site connected within "
                    f"{self.wait_for_clients_timeout} s"
                )
                return None
            abort_signal.wait(0.1)

    def _collect_models(
        self, sites: list[str], abort_signal: Signal, ctx: ServerContext
    ) -> dict[str, FLModel]:
        models: dict[str, FLModel] = {}
        if self.submit_model_task_name:
            request = FLModel(meta={"submit_model_name": SUBMIT_MODEL_NAME})
            submitted = self._broadcast(
                self.submit_model_task_name, request, sites, self.submit_model_timeout,
                abort_signal, ctx,
            )  # fmt: skip
            for site in sites:
                result = submitted.get(site)
                if result is None:
                    problem = "sent no model (lost, or past submit_model_timeout)"
                elif result.rc != ReturnCode.OK:
                    problem = f"failed to submit its model: {result.rc}: {result.meta.get('error') or 'no message'}"
                elif not result.params:
                    problem = "submitted an empty model"
                else:
                    models[site] = result
                    continue
                site_logger(ctx, log).warning("cross-site evaluation: site %s %s", site, problem)
        if abort_signal.triggered:
            return models
        models.update(self._server_models(ctx))
        if not models:
            site_logger(ctx, log).warning("cross-site evaluation: there is no model to validate")
        return models

    def _server_models(self, ctx: ServerContext) -> dict[str, FLModel]:
        """The server's models to validate, by their name in the results (``SRV_<name>``)."""
        models: dict[str, FLModel] = {}
        if self._locator is not None:
            for name in self._locator.get_model_names(ctx):
                model = self._locator.locate_model(name, ctx)
                if model is None or not model.params:
                    site_logger(ctx, log).warning(
                        "cross-site evaluation: the model locator has no model %r", name
                    )
                    continue
                models[SERVER_MODEL_PREFIX + name] = model
        return models

    def _validate(
        self, name: str, model: FLModel, sites: list[str], abort_signal: Signal, ctx: ServerContext
    ) -> None:
        data = FLModel(
            params=model.params, params_type=model.params_type, meta={"model_owner": name}
        )
        results = self._broadcast(
            self.validation_task_name, data, sites, self.validation_timeout, abort_signal, ctx
        )
        for site, result in results.items():
            ctx.fire_event(
                AppEventType.VALIDATION_RESULT_RECEIVED,
                {"model_owner": name, "data_client": site, "result": result},
            )
            entry = validation_entry(result)
            if entry is None:
                site_logger(ctx, log).warning(
                    "cross-site evaluation: site %s failed to validate %s: %s: %s",
                    site, name, result.rc, result.meta.get("error") or "no message",
                )  # fmt: skip
            else:
                self.results.setdefault(site, {})[name] = entry
        missing = [site for site in sites if site not in results]
        if missing and not abort_signal.triggered:
            site_logger(ctx, log).warning(
                "cross-site evaluation: no validation of %s from %s", name, ", ".join(missing)
            )
        done = sorted(site for site, r in results.items() if r.rc == ReturnCode.OK)
        ctx.progress(f"cross-site evaluation: {name} validated by {', '.join(done) or 'no site'}")

    def _broadcast(
        self,
        task_name: str,
        data: FLModel,
        sites: list[str],
        timeout: int,
        abort_signal: Signal,
        ctx: ServerContext,
    ) -> dict[str, FLModel]:
        # One result is enough to go on; the others are waited for until they
        # arrive, their site is lost, or the timeout passes (0: no limit).
        return ctx.comm.broadcast_and_wait(
            task_name,
            data,
            sites,
            min_responses=1,
            wait_time_after_min_received=timeout if timeout > 0 else math.inf,
            timeout=timeout,
            abort=abort_signal,
        )

    def _write_results(self, ctx: ServerContext) -> None:
        path = inside(ctx.run_dir, self.cross_val_dir) / RESULTS_FILE_NAME
        write_json(path, self.results)
        ctx.props[RESULTS_PROP] = self.results
        ctx.progress(f"cross-site evaluation results: {path}")



class CrossSiteEval(CrossSiteModelEval):
    """FLARE 2.5's ModelController version of cross-site evaluation (FLARE's
    ``CrossSiteEval``): the sites' best models and the server's ``server_models``, read
    from the persistor (``persistor_id``) by name, each validated by every site.

    The results file is CrossSiteModelEval's, with the server's models under their own
    names (``FL_global_model.pt``), as FLARE's CrossSiteEval writes them.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "server_models": {"items": {"type": "string", "minLength": 1}},
    }

    def __init__(
        self,
        persistor_id: str = "persistor",
        cross_val_dir: str = "cross_site_val",
        submit_model_timeout: int = 600,
        validation_timeout: int = 6000,
        server_models: list[str] = ["FL_global_model.pt"],  # noqa: B006 - FLARE's default, copied
        participating_clients: list[str] | None = None,
        ignore_result_error: bool = False,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
    ) -> None:
        """
        Args:
            persistor_id: id of the persistor the server's models are read from ("" for none).
            cross_val_dir: folder, relative to the server's run directory, of the results.
            submit_model_timeout: seconds a site has to submit its model.
            validation_timeout: seconds a site has to validate one model.
            server_models: the names of the persistor's models to validate.
            participating_clients: the sites taking part; None for all.
            ignore_result_error: accepted for FLARE's configs: a failed validation is
                logged and left out either way.
            allow_empty_global_weights: accepted for FLARE's configs.
            task_check_period: accepted for FLARE's configs.
        """
        super().__init__(task_check_period=task_check_period, cross_val_dir=cross_val_dir,
                         submit_model_timeout=submit_model_timeout, validation_timeout=validation_timeout,
                         participating_clients=participating_clients)
        self.persistor_id = persistor_id
        self.server_models = list(server_models)
        self.ignore_result_error = ignore_result_error
        self.allow_empty_global_weights = allow_empty_global_weights
        self._persistor: ModelPersistor | None = None

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Look up the persistor."""
        super().start_controller(ctx)
        self._persistor = (lookup_component(ctx, self._owner(), "persistor_id", self.persistor_id, ModelPersistor)
                           if self.persistor_id else None)

    def _server_models(self, ctx: ServerContext) -> dict[str, FLModel]:
        models: dict[str, FLModel] = {}
        if self._persistor is None:
            return models
        for name in self.server_models:
            model = self._persistor.get_model(name, ctx)
            if model is None or not model.params:
                site_logger(ctx, log).warning("cross-site evaluation: the persistor has no model %r (it has %s)",
                                     name, ", ".join(self._persistor.model_names(ctx)) or "none")
                continue
            models[name] = model
        return models
