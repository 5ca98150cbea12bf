"""ScatterAndGather: the FedAvg workflow (FLARE's ``ScatterAndGather``)."""

from __future__ import annotations

from .base import Controller, check_bool, check_int, check_number, check_str


class ScatterAndGather(Controller):
    """Each round, sends the global model to the sites as a train task, aggregates
    the results and turns them into the next global model.
    """

    def __init__(
        self,
        min_clients: int = 1000,
        num_rounds: int = 5,
        start_round: int = 0,
        wait_time_after_min_received: int = 10,
        aggregator_id: str = "aggregator",
        persistor_id: str = "",
        shareable_generator_id: str = "shareable_generator",
        train_task_name: str = "train",
        train_timeout: int = 0,
        ignore_result_error: bool | None = None,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
        persist_every_n_rounds: int = 1,
        snapshot_every_n_rounds: int = 1,
    ) -> None:
        """
        Args:
            min_clients: results needed before a round may end. FLARE's default
                of 1000 is meant to be overridden with the number of sites.
            num_rounds: rounds to run.
            start_round: number of the first round (to continue a run).
            wait_time_after_min_received: seconds to wait for more results once
                ``min_clients`` have answered.
            aggregator_id: id of the Aggregator that combines the results.
            persistor_id: id of the ModelPersistor that loads the initial model
                and saves the global model; empty for none.
            shareable_generator_id: id of the ShareableGenerator that converts
                between the global model and task data.
            train_task_name: name of the task sent to the sites.
            train_timeout: seconds a site has for a train task; 0 for no limit.
            ignore_result_error: what a failed site result does. False: stop the
                job; True: skip the result; None: skip it while ``min_clients``
                can still be reached, stop otherwise.
            allow_empty_global_weights: start even when the persistor gives an
                empty model.
            task_check_period: seconds between checks of the task's progress.
            persist_every_n_rounds: save the global model every N rounds (and
                after the last); 0 to save only after the last.
            snapshot_every_n_rounds: snapshot the workflow state every N
                rounds; 0 for never.
        """
        self.min_clients = check_int("min_clients", min_clients, minimum=1)
        self.num_rounds = check_int("num_rounds", num_rounds)
        self.start_round = check_int("start_round", start_round)
        self.wait_time_after_min_received = check_int(
            "wait_time_after_min_received", wait_time_after_min_received
        )
        self.aggregator_id = check_str("aggregator_id", aggregator_id)
        self.persistor_id = check_str("persistor_id", persistor_id, empty=True)
        self.shareable_generator_id = check_str("shareable_generator_id", shareable_generator_id)
        self.train_task_name = check_str("train_task_name", train_task_name)
        self.train_timeout = check_int("train_timeout", train_timeout)
        self.ignore_result_error = (
            None
            if ignore_result_error is None
            else check_bool("ignore_result_error", ignore_result_error)
        )
        self.allow_empty_global_weights = check_bool(
            "allow_empty_global_weights", allow_empty_global_weights
        )
        self.task_check_period = check_number("task_check_period", task_check_period, positive=True)
        self.persist_every_n_rounds = check_int("persist_every_n_rounds", persist_every_n_rounds)
        self.snapshot_every_n_rounds = check_int("snapshot_every_n_rounds", snapshot_every_n_rounds)
