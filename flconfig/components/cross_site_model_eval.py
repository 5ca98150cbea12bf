"""CrossSiteModelEval: every site validates every model (FLARE's ``CrossSiteModelEval``)."""

from __future__ import annotations

from .base import (
    Controller,
    check_bool,
    check_int,
    check_number,
    check_relative_path,
    check_str,
    check_str_list,
)


class CrossSiteModelEval(Controller):
    """Collects the sites' models (``submit_model``) and the server's models (from
    the model locator), then asks every site to validate each of them.
    """

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
        self.task_check_period = check_number("task_check_period", task_check_period, positive=True)
        self.cross_val_dir = check_relative_path("cross_val_dir", cross_val_dir)
        self.submit_model_timeout = check_int("submit_model_timeout", submit_model_timeout)
        self.validation_timeout = check_int("validation_timeout", validation_timeout)
        self.model_locator_id = check_str("model_locator_id", model_locator_id, empty=True)
        self.formatter_id = check_str("formatter_id", formatter_id, empty=True)
        self.submit_model_task_name = check_str("submit_model_task_name", submit_model_task_name)
        self.validation_task_name = check_str("validation_task_name", validation_task_name)
        self.cleanup_models = check_bool("cleanup_models", cleanup_models)
        self.participating_clients = (
            None
            if participating_clients is None
            else check_str_list("participating_clients", participating_clients)
        )
        self.wait_for_clients_timeout = check_int(
            "wait_for_clients_timeout", wait_for_clients_timeout
        )
