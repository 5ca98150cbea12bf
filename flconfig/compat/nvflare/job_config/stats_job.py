"""FLARE's ``nvflare.job_config.stats_job``: a federated statistics job.

The server runs a ``StatisticsController`` writing through a ``JsonStatsFileWriter``; each
site named in :meth:`StatsJob.setup_clients` gets the user's statistics generator, a
``StatisticsExecutor`` and FLARE's three privacy cleansers behind a
``StatisticsPrivacyFilter`` on its results.
"""

from __future__ import annotations

from typing import Any

from ...jobapi.standins import make
from .api import FedJob
from .defs import FilterType

_S = "nvflare.app_common.statistics"


class StatsJob(FedJob):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, name: str, statistic_configs: dict[str, Any], stats_generator: Any, output_path: str,
                 min_count: int = 10, min_noise_level: float = 0.1, max_noise_level: float = 0.3,
                 max_bins_percent: int = 10) -> None:
        super().__init__(name=name)
        self.statistic_configs = statistic_configs
        self.stats_generator = stats_generator
        self.output_path = output_path
        self.min_count = min_count
        self.min_noise_level = min_noise_level
        self.max_noise_level = max_noise_level
        self.max_bins_percent = max_bins_percent
        self.setup_server()

    def setup_server(self, server_name: str = "server") -> None:
        writer = make(f"{_S}.json_stats_file_persistor.JsonStatsFileWriter", output_path=self.output_path,
                      json_encoder_path="nvflare.app_common.utils.json_utils.ObjectEncoder")
        self.to(writer, server_name, id="stats_writer")
        controller = make("nvflare.app_common.workflows.statistics_controller.StatisticsController",
                          kind="workflow", statistic_configs=self.statistic_configs, writer_id="stats_writer",
                          enable_pre_run_task=False)
        self.to(controller, server_name, id="controller")

    def setup_clients(self, sites: list[str]) -> None:
        for site in sites:
            self.to(self.stats_generator, site, id="stats_generator")
            executor = make("nvflare.app_common.executors.statistics.statistics_executor.StatisticsExecutor",
                            kind="executor", generator_id="stats_generator")
            self.to(executor, site, tasks=["fed_stats_pre_run", "fed_stats"])
            ids = [
                self.to(make(f"{_S}.min_count_cleanser.MinCountCleanser", min_count=self.min_count), site,
                        id="min_count_cleanser"),
                self.to(make(f"{_S}.min_max_cleanser.AddNoiseToMinMax", min_noise_level=self.min_noise_level,
                             max_noise_level=self.max_noise_level), site, id="min_max_noise_cleanser"),
                self.to(make(f"{_S}.histogram_bins_cleanser.HistogramBinsCleanser",
                             max_bins_percent=self.max_bins_percent), site, id="hist_bins_cleanser"),
            ]
            privacy = make("nvflare.app_common.filters.statistics_privacy_filter.StatisticsPrivacyFilter",
                           kind="filter", result_cleanser_ids=ids)
            self.to(privacy, site, tasks=["fed_stats"], filter_type=FilterType.TASK_RESULT)
