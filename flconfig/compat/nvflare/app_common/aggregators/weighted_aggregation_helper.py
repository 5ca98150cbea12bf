"""FLARE's ``WeightedAggregationHelper``: a weighted mean of dicts of arrays or numbers."""

from __future__ import annotations

import re
import threading
from typing import Any


class WeightedAggregationHelper:
    """Adds up ``data`` dicts with weights; :meth:`get_result` is their weighted mean
    (entries matching ``exclude_vars`` are left out)."""

    def __init__(self, exclude_vars: str | None = None, weigh_by_local_iter: bool = True) -> None:
        self.lock = threading.Lock()
        self.exclude_vars = re.compile(exclude_vars) if exclude_vars else None
        self.weigh_by_local_iter = weigh_by_local_iter
        self.reset_stats()
        self.total: dict[str, Any] = {}
        self.counts: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []

    def reset_stats(self) -> None:
        self.total = {}
        self.counts = {}
        self.history = []

    def add(self, data: dict[str, Any], weight: float, contributor_name: str, contribution_round: Any) -> None:
        """Add one contribution."""
        with self.lock:
            for key, value in data.items():
                if self.exclude_vars is not None and self.exclude_vars.search(key):
                    continue
                # without weigh_by_local_iter the values are summed unweighted (homomorphic
                # encryption) but still divided by the weights, as in FLARE
                weighted = value * weight if self.weigh_by_local_iter else value
                self.total[key] = weighted if key not in self.total else self.total[key] + weighted
                self.counts[key] = self.counts.get(key, 0.0) + weight
            self.history.append({"contributor_name": contributor_name, "round": contribution_round,
                                 "weight": weight})

    def get_result(self) -> dict[str, Any]:
        """The weighted mean of every entry; the sums are reset."""
        with self.lock:
            result = {key: total * (1.0 / self.counts[key]) for key, total in self.total.items()}
            self.reset_stats()
            return result

    def get_history(self) -> list[dict[str, Any]]:
        return self.history

    def get_len(self) -> int:
        return len(self.get_history())
