"""FLARE's ``StatisticsPrivacyCleanser``: a privacy rule applied to a site's statistics."""

from __future__ import annotations

from abc import ABC, abstractmethod


class StatisticsPrivacyCleanser(ABC):
    """Removes (or changes) what a site's statistics must not reveal; StatisticsPrivacyFilter
    applies each of its ``result_cleanser_ids`` in turn.

    ``statistics`` is ``{statistic: {dataset: {feature: value}}}`` (a histogram's value is
    a :class:`~nvflare.app_common.abstract.statistics_spec.Histogram`).
    """

    @abstractmethod
    def apply(self, statistics: dict, client_name: str) -> tuple[dict, bool]:  # type: ignore[type-arg]
        """The cleansed statistics and whether anything changed."""

    def cleanse(self, statistics: dict, statistic_keys: list[str],  # type: ignore[type-arg]
                validation_result: dict[str, dict[str, bool]]) -> tuple[dict, bool]:  # type: ignore[type-arg]
        """Drop, from each statistic of ``statistic_keys`` but count, the features whose
        ``validation_result[dataset][feature]`` is False."""
        changed = False
        for key in statistic_keys:
            if key == "count" or key not in statistics:
                continue
            for dataset in list(statistics[key]):
                for feature in list(statistics[key][dataset]):
                    if not validation_result.get(dataset, {}).get(feature, True):
                        statistics[key][dataset].pop(feature, None)
                        changed = True
        return statistics, changed
