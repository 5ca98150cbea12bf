"""FLARE class paths and the flconfig classes that stand in for them.

A job written for NVIDIA FLARE names its components by FLARE's dotted paths.
Each path below, current or from an older FLARE release, resolves to the
flconfig class with the same arguments. flconfig never imports ``nvflare``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_C = "flconfig.components"
_T = "flconfig.tracking"

#: FLARE class path -> flconfig class path.
FLARE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # Executors
        "nvflare.app_common.executors.learner_executor.LearnerExecutor": f"{_C}.learner_executor.LearnerExecutor",
        "nvflare.app_common.executors.model_learner_executor.ModelLearnerExecutor": f"{_C}.model_learner_executor.ModelLearnerExecutor",
        # The Client API in process: 2.9's one executor, 2.4-2.6's in-process ones
        "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor": f"{_C}.client_api.ClientAPIExecutor",
        "nvflare.app_common.executors.in_process_client_api_executor.InProcessClientAPIExecutor": f"{_C}.client_api.InProcessClientAPIExecutor",
        "nvflare.app_opt.pt.in_process_client_api_executor.PTInProcessClientAPIExecutor": f"{_C}.client_api.PTInProcessClientAPIExecutor",
        # The Client API in a process of its own (2.4-2.6), and what its configs name with it
        "nvflare.app_common.executors.client_api_launcher_executor.ClientAPILauncherExecutor": f"{_C}.client_api_launcher.ClientAPILauncherExecutor",
        "nvflare.app_opt.pt.client_api_launcher_executor.PTClientAPILauncherExecutor": f"{_C}.client_api_launcher.PTClientAPILauncherExecutor",
        "nvflare.app_common.launchers.subprocess_launcher.SubprocessLauncher": f"{_C}.client_api_launcher.SubprocessLauncher",
        "nvflare.fuel.utils.pipe.cell_pipe.CellPipe": f"{_C}.client_api_launcher.CellPipe",
        "nvflare.fuel.utils.pipe.file_pipe.FilePipe": f"{_C}.client_api_launcher.FilePipe",
        "nvflare.app_common.widgets.metric_relay.MetricRelay": f"{_C}.client_api_launcher.MetricRelay",
        "nvflare.app_common.widgets.external_configurator.ExternalConfigurator": f"{_C}.client_api_launcher.ExternalConfigurator",
        # Workflows
        "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather": f"{_C}.scatter_and_gather.ScatterAndGather",
        "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval": f"{_C}.cross_site_model_eval.CrossSiteModelEval",
        "nvflare.app_common.workflows.cross_site_eval.CrossSiteEval": f"{_C}.cross_site_model_eval.CrossSiteEval",
        "nvflare.app_common.workflows.fedavg.FedAvg": f"{_C}.fedavg.FedAvg",
        "nvflare.app_common.workflows.scaffold.Scaffold": f"{_C}.scaffold.Scaffold",
        "nvflare.app_common.workflows.cyclic_ctl.CyclicController": f"{_C}.cyclic.CyclicController",
        "nvflare.app_common.workflows.cyclic.Cyclic": f"{_C}.cyclic.Cyclic",
        "nvflare.app_common.workflows.initialize_global_weights.InitializeGlobalWeights": f"{_C}.initialize_global_weights.InitializeGlobalWeights",
        # FLARE 2.9's one-task workflows (FedTaskRecipe, FedEvalRecipe) and its Newton-Raphson
        # logistic regression (FedAvgLrRecipe)
        "nvflare.app_common.workflows.cmd_task_controller.CmdTaskController": f"{_C}.task_controllers.CmdTaskController",
        "nvflare.app_opt.pt.recipes.fedeval.EvalController": f"{_C}.task_controllers.EvalController",
        "nvflare.app_common.workflows.lr.fedavg.FedAvgLR": f"{_C}.logistic_regression.FedAvgLR",
        "nvflare.app_common.workflows.lr.np_persistor.LRModelPersistor": f"{_C}.logistic_regression.LRModelPersistor",
        # Aggregators and shareable generators
        "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator": f"{_C}.aggregators.InTimeAccumulateWeightedAggregator",
        "nvflare.app_common.aggregators.InTimeAccumulateWeightedAggregator": f"{_C}.aggregators.InTimeAccumulateWeightedAggregator",
        "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator": f"{_C}.shareable_generators.FullModelShareableGenerator",
        "nvflare.app_common.shareablegenerators.FullModelShareableGenerator": f"{_C}.shareable_generators.FullModelShareableGenerator",
        "nvflare.app_opt.pt.fedopt.PTFedOptModelShareableGenerator": f"{_C}.fedopt.PTFedOptModelShareableGenerator",
        "nvflare.app_opt.pt.PTFedOptModelShareableGenerator": f"{_C}.fedopt.PTFedOptModelShareableGenerator",
        # PyTorch persistor and locator: nvflare.app_opt.pt since 2.3,
        # nvflare.app_common.pt before (PTModelLocator is the 2.0 name).
        "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor": f"{_C}.persistors.PTFileModelPersistor",
        "nvflare.app_opt.pt.PTFileModelPersistor": f"{_C}.persistors.PTFileModelPersistor",
        "nvflare.app_common.pt.pt_file_model_persistor.PTFileModelPersistor": f"{_C}.persistors.PTFileModelPersistor",
        "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator": f"{_C}.model_locators.PTFileModelLocator",
        "nvflare.app_opt.pt.PTFileModelLocator": f"{_C}.model_locators.PTFileModelLocator",
        "nvflare.app_common.pt.pt_file_model_locator.PTFileModelLocator": f"{_C}.model_locators.PTFileModelLocator",
        "nvflare.app_common.pt.pt_model_locator.PTModelLocator": f"{_C}.model_locators.PTFileModelLocator",
        # NumPy (the hello-numpy jobs)
        "nvflare.app_common.np.np_model_persistor.NPModelPersistor": f"{_C}.numpy_family.NPModelPersistor",
        "nvflare.app_common.np.np_trainer.NPTrainer": f"{_C}.numpy_family.NPTrainer",
        "nvflare.app_common.np.np_validator.NPValidator": f"{_C}.numpy_family.NPValidator",
        "nvflare.app_common.np.np_model_locator.NPModelLocator": f"{_C}.numpy_family.NPModelLocator",
        "nvflare.app_common.np.np_formatter.NPFormatter": f"{_C}.numpy_family.NPFormatter",
        # scikit-learn
        "nvflare.app_opt.sklearn.sklearn_executor.SKLearnExecutor": f"{_C}.sklearn_family.SKLearnExecutor",
        "nvflare.app_opt.sklearn.joblib_model_param_persistor.JoblibModelParamPersistor": f"{_C}.sklearn_family.JoblibModelParamPersistor",
        "nvflare.app_common.aggregators.collect_and_assemble_aggregator.CollectAndAssembleAggregator": f"{_C}.sklearn_family.CollectAndAssembleAggregator",
        "nvflare.app_common.aggregators.collect_and_assemble_model_aggregator.CollectAndAssembleModelAggregator": f"{_C}.sklearn_family.CollectAndAssembleModelAggregator",
        "nvflare.app_opt.sklearn.kmeans_assembler.KMeansAssembler": f"{_C}.sklearn_assemblers.KMeansAssembler",
        "nvflare.app_opt.sklearn.svm_assembler.SVMAssembler": f"{_C}.sklearn_assemblers.SVMAssembler",
        # Federated statistics
        "nvflare.app_common.workflows.statistics_controller.StatisticsController": f"{_C}.statistics.controller.StatisticsController",
        "nvflare.app_common.executors.statistics.statistics_executor.StatisticsExecutor": f"{_C}.statistics.executor.StatisticsExecutor",
        "nvflare.app_common.statistics.json_stats_file_persistor.JsonStatsFileWriter": f"{_C}.statistics.writer.JsonStatsFileWriter",
        "nvflare.app_common.filters.statistics_privacy_filter.StatisticsPrivacyFilter": f"{_C}.statistics.privacy.StatisticsPrivacyFilter",
        "nvflare.app_common.statistics.min_count_cleanser.MinCountCleanser": f"{_C}.statistics.privacy.MinCountCleanser",
        "nvflare.app_common.statistics.min_max_cleanser.AddNoiseToMinMax": f"{_C}.statistics.privacy.AddNoiseToMinMax",
        "nvflare.app_common.statistics.histogram_bins_cleanser.HistogramBinsCleanser": f"{_C}.statistics.privacy.HistogramBinsCleanser",
        # Privacy filters
        "nvflare.app_common.filters.exclude_vars.ExcludeVars": f"{_C}.privacy.ExcludeVars",
        "nvflare.app_common.filters.ExcludeVars": f"{_C}.privacy.ExcludeVars",
        "nvflare.app_common.filters.percentile_privacy.PercentilePrivacy": f"{_C}.privacy.PercentilePrivacy",
        "nvflare.app_common.filters.PercentilePrivacy": f"{_C}.privacy.PercentilePrivacy",
        "nvflare.app_common.filters.svt_privacy.SVTPrivacy": f"{_C}.privacy.SVTPrivacy",
        "nvflare.app_common.filters.SVTPrivacy": f"{_C}.privacy.SVTPrivacy",
        # Quantization
        "nvflare.app_opt.pt.quantization.quantizer.ModelQuantizer": f"{_C}.quantization.ModelQuantizer",
        "nvflare.app_opt.pt.quantization.dequantizer.ModelDequantizer": f"{_C}.quantization.ModelDequantizer",
        # Widgets
        "nvflare.app_common.widgets.event_recorder.EventRecorder": f"{_C}.event_recorder.EventRecorder",
        "nvflare.app_common.widgets.event_recorder.ServerEventRecorder": f"{_C}.event_recorder.ServerEventRecorder",
        "nvflare.app_common.widgets.event_recorder.ClientEventRecorder": f"{_C}.event_recorder.ClientEventRecorder",
        "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator": f"{_C}.validation_json.ValidationJsonGenerator",
        "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector": f"{_C}.model_selection.IntimeModelSelector",
        "nvflare.app_common.widgets.intime_model_selection_handler.IntimeModelSelectionHandler": f"{_C}.model_selection.IntimeModelSelector",
        "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent": f"{_T}.convert.ConvertToFedEvent",
        "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter": f"{_C}.metrics_artifacts.MetricsArtifactWriter",
        # Accepted, nothing to do: flconfig keeps every site's log and sends it to the server,
        # has no FOBS to register decomposers with, and streams large models in chunks itself
        "nvflare.app_common.logging.job_log_streamer.JobLogStreamer": f"{_C}.job_logs.JobLogStreamer",
        "nvflare.app_common.logging.job_log_receiver.JobLogReceiver": f"{_C}.job_logs.JobLogReceiver",
        "nvflare.app_common.widgets.decomposer_reg.DecomposerRegister": f"{_C}.serialization.DecomposerRegister",
        "nvflare.app_opt.tensor_stream.server.TensorServerStreamer": f"{_C}.serialization.TensorServerStreamer",
        "nvflare.app_opt.tensor_stream.client.TensorClientStreamer": f"{_C}.serialization.TensorClientStreamer",
        # Experiment tracking: senders
        "nvflare.app_common.widgets.streaming.AnalyticsSender": f"{_T}.senders.AnalyticsSender",
        "nvflare.app_opt.tracking.tb.tb_writer.TBWriter": f"{_T}.senders.TBWriter",
        "nvflare.app_opt.tracking.mlflow.mlflow_writer.MLflowWriter": f"{_T}.senders.MLflowWriter",
        "nvflare.app_opt.tracking.wandb.wandb_writer.WandBWriter": f"{_T}.senders.WandBWriter",
        # Experiment tracking: receivers. The TensorBoard receiver lived in
        # nvflare.app_common.pt (2.0-2.2), then nvflare.app_opt.tracking, then
        # nvflare.app_opt.tracking.tb. MLflow's was spelled MLFlowReceiver first.
        "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver": f"{_T}.receivers.tensorboard.TBAnalyticsReceiver",
        "nvflare.app_opt.tracking.tb_receiver.TBAnalyticsReceiver": f"{_T}.receivers.tensorboard.TBAnalyticsReceiver",
        "nvflare.app_common.pt.tb_receiver.TBAnalyticsReceiver": f"{_T}.receivers.tensorboard.TBAnalyticsReceiver",
        "nvflare.app_opt.tracking.mlflow.mlflow_receiver.MLflowReceiver": f"{_T}.receivers.mlflow.MLflowReceiver",
        "nvflare.app_opt.tracking.wandb.wandb_receiver.WandBReceiver": f"{_T}.receivers.wandb.WandBReceiver",
        "nvflare.app_opt.tracking.mlflow.mlflow_receiver.MLFlowReceiver": f"{_T}.receivers.mlflow.MLflowReceiver",
    }
)


def flconfig_path(flare_path: str) -> str | None:
    """The flconfig class path standing in for a FLARE class path, or None."""
    return FLARE_ALIASES.get(flare_path)
