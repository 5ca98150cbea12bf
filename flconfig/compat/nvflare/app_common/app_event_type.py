"""FLARE's ``AppEventType`` (the names flconfig's workflows fire them under)."""

from __future__ import annotations


class AppEventType:
    BEFORE_AGGREGATION = "_before_aggregation"
    END_AGGREGATION = "_end_aggregation"
    AFTER_AGGREGATION = "_after_aggregation"
    ROUND_STARTED = "_round_started"
    ROUND_DONE = "_round_done"
    INITIAL_MODEL_LOADED = "_initial_model_loaded"
    BEFORE_CONTRIBUTION_ACCEPT = "_before_contribution_accept"
    AFTER_CONTRIBUTION_ACCEPT = "_after_contribution_accept"
    GLOBAL_BEST_MODEL_AVAILABLE = "_global_best_model_available"
    LOCAL_BEST_MODEL_AVAILABLE = "_local_best_model_available"
    VALIDATION_RESULT_RECEIVED = "_validation_result_received"
    TRAINING_STARTED = "_training_started"
    TRAINING_FINISHED = "_training_finished"
