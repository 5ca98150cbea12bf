"""FLARE's ``nvflare.recipe.fedstats``: ``FedStatsRecipe``, federated statistics."""

from __future__ import annotations

from typing import Any

from ..job_config.stats_job import StatsJob
from .spec import Recipe


class FedStatsRecipe(Recipe):
    """Statistics (``statistic_configs``) of every listed site's data, computed by its
    ``stats_generator``, cleansed for privacy, combined and written by the server."""

    def __init__(self, name: str, stats_output_path: str, sites: list[str], statistic_configs: dict[str, Any],
                 stats_generator: Any, min_count: int = 10, min_noise_level: float = 0.1,
                 max_noise_level: float = 0.3, max_bins_percent: int = 10) -> None:
        job = StatsJob(name=name, statistic_configs=statistic_configs, stats_generator=stats_generator,
                       output_path=stats_output_path, min_count=min_count, min_noise_level=min_noise_level,
                       max_noise_level=max_noise_level, max_bins_percent=max_bins_percent)
        super().__init__(job)
        self.sites = list(sites)
        job.setup_clients(self.sites)
        self._client_apps_prepared = True
