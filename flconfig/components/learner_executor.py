"""LearnerExecutor: runs a site's train, validate and submit_model tasks on a Learner."""

from __future__ import annotations

from .base import Executor, check_str


class LearnerExecutor(Executor):
    """Routes FLARE's three learner tasks to the :class:`~flconfig.components.base.Learner`
    named by ``learner_id`` (FLARE's ``LearnerExecutor``).

    The learner is looked up, and initialised with the site's components, on
    the first task, as FLARE does.
    """

    def __init__(
        self,
        learner_id: str,
        train_task: str = "train",
        submit_model_task: str = "submit_model",
        validate_task: str = "validate",
    ) -> None:
        """
        Args:
            learner_id: id of the Learner component that does the work.
            train_task: task name that trains: the learner validates the
                incoming global model, then trains on it.
            submit_model_task: task name that returns the site's model for
                cross-site evaluation.
            validate_task: task name that validates a model sent by the server.
        """
        self.learner_id = check_str("learner_id", learner_id)
        self.train_task = check_str("train_task", train_task)
        self.submit_model_task = check_str("submit_model_task", submit_model_task)
        self.validate_task = check_str("validate_task", validate_task)
        tasks = [self.train_task, self.submit_model_task, self.validate_task]
        if len(set(tasks)) != len(tasks):
            raise ValueError(
                "train_task, submit_model_task and validate_task must be different task names,"
                f" got {tasks}"
            )
