"""FLARE's ``AppConstants``, ``ModelName``, ``ValidateType`` (the names job code uses)."""

from __future__ import annotations


class AppConstants:
    CURRENT_ROUND = "current_round"
    START_ROUND = "start_round"
    NUM_ROUNDS = "num_rounds"
    CONTRIBUTION_ROUND = "contribution_round"
    GLOBAL_MODEL = "global_model"
    MODEL_WEIGHTS = "_model_weights_"
    TASK_TRAIN = "train"
    TASK_VALIDATION = "validate"
    TASK_SUBMIT_MODEL = "submit_model"
    TASK_GET_WEIGHTS = "get_weights"
    TASK_CONFIGURE = "configure"
    MODEL_OWNER = "_model_owner_"
    SUBMIT_MODEL_NAME = "submit_model_name"
    VALIDATE_TYPE = "_validate_type"
    DEFAULT_MODEL_DIR = "models"
    DEFAULT_PERSISTOR_ID = "persistor"
    DEFAULT_AGGREGATOR_ID = "aggregator"
    DEFAULT_SHAREABLE_GENERATOR_ID = "shareable_generator"
    DEFAULT_MODEL_LOCATOR_ID = "model_locator"
    DEFAULT_FORMATTER_ID = "formatter"
    CROSS_VAL_DIR = "cross_site_val"
    LOG_DIR = "model_log_dir"
    CLIENT_UNKNOWN = "unknown"
    AGGREGATION_RESULT = "_aggregation_result"
    DXO = "DXO"


class ModelName:
    BEST_MODEL = "best_model"
    FINAL_MODEL = "final_model"


class ValidateType:
    BEFORE_TRAIN_VALIDATE = "before_train_validate"
    MODEL_VALIDATE = "model_validate"


class DefaultCheckpointFileName:
    """The file names FLARE's PyTorch persistor saves under (flconfig's too, in FLARE's format)."""

    GLOBAL_MODEL = "FL_global_model.pt"
    BEST_GLOBAL_MODEL = "best_FL_global_model.pt"


class ModelFormat:
    """FLARE's names of model file formats."""

    PT_CHECKPOINT = "pt_checkpoint"
    TORCH_SCRIPT = "torch_script"
    PT_ONNX = "pt_onnx"
    TF_CHECKPOINT = "tf_checkpoint"
    KERAS = "keras_model"


class EnvironmentKey:
    """Keys of FLARE's ``environment.json``."""

    CHECKPOINT_DIR = "APP_CKPT_DIR"
    CHECKPOINT_FILE_NAME = "APP_CKPT"


class AlgorithmConstants:
    """Meta keys of algorithm-specific data (SCAFFOLD's control terms)."""

    SCAFFOLD_CTRL_DIFF = "scaffold_c_diff"
    SCAFFOLD_CTRL_GLOBAL = "scaffold_c_global"
    SCAFFOLD_CTRL_AGGREGATOR_ID = "scaffold_ctrl_aggregator"


class StatisticsConstants(AppConstants):
    """The names federated statistics use (FLARE's ``StatisticsConstants``)."""

    STATS_COUNT = "count"
    STATS_FAILURE_COUNT = "failure_count"
    STATS_MEAN = "mean"
    STATS_SUM = "sum"
    STATS_VAR = "var"
    STATS_STDDEV = "stddev"
    STATS_HISTOGRAM = "histogram"
    STATS_QUANTILE = "quantile"
    STATS_MAX = "max"
    STATS_MIN = "min"
    STATS_FEATURES = "stats_features"
    STATS_GLOBAL_MEAN = "global_mean"
    STATS_GLOBAL_COUNT = "global_count"
    STATS_BINS = "bins"
    STATS_BIN_RANGE = "range"
    STATS_TARGET_STATISTICS = "statistics"
    STATS_DIGEST_COORD = "digest_coord"
    FED_STATS_PRE_RUN = "fed_stats_pre_run"
    FED_STATS_TASK = "fed_stats"
    STATISTICS_TASK_KEY = "fed_stats_task_key"
    STATS_1st_STATISTICS = "fed_stats_1st_statistics"
    STATS_2nd_STATISTICS = "fed_stats_2nd_statistics"
    GLOBAL = "Global"
    LOCAL = "Local"
    NAME = "Name"
    ordered_statistics = {
        STATS_1st_STATISTICS: [STATS_COUNT, STATS_SUM, STATS_MEAN, STATS_MIN, STATS_MAX, STATS_QUANTILE],
        STATS_2nd_STATISTICS: [STATS_FAILURE_COUNT, STATS_HISTOGRAM, STATS_VAR, STATS_STDDEV],
    }
    PRE_RUN_RESULT = "fed_stats_pre_run_result"
