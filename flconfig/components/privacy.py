"""FLARE's privacy filters: ExcludeVars, PercentilePrivacy and SVTPrivacy.

Each is a :class:`~flconfig.components.base.Filter` for ``task_result_filters`` (or
``task_data_filters``) that changes the parameters of a model on its way out, as
FLARE's filter of the same name does to a ``WEIGHTS`` or ``WEIGHT_DIFF`` DXO:

- :class:`ExcludeVars` leaves parameters out (by name or regular expression), so the
  server never sees them;
- :class:`PercentilePrivacy` shares only the largest changes (Shokri and Shmatikov,
  CCS '15), clipped;
- :class:`SVTPrivacy` shares a noisy fraction of the changes chosen by the Sparse
  Vector Technique (differential privacy), and records the privacy budget spent.

A model whose ``params_type`` is not among the filter's ``data_kinds`` (``FULL`` is
FLARE's ``WEIGHTS``, ``DIFF`` its ``WEIGHT_DIFF``), or whose return code is not OK,
passes unchanged. Torch tensors come back as tensors of their own dtype (integers rounded).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, ClassVar

import numpy as np

from ..types import FLModel, ReturnCode, RunContext
from .aggregators import KIND_OF_PARAMS_TYPE, NUM_STEPS_KEY, as_float64, restore_dtype
from .base import Filter

log = logging.getLogger(__name__)

#: Meta keys SVTPrivacy records the budget of one call and of the run under (FLARE's).
SVT_BUDGET_KEY = "svt_privacy_budget"
SVT_ACCOUNTANT_KEY = "svt_privacy_accountant"


class _DataKindFilter(Filter):
    """A filter of the parameters of WEIGHTS / WEIGHT_DIFF models (FLARE's DXOFilter)."""

    def _select_kinds(self, data_kinds: list[str] | None) -> list[str]:
        kinds = list(data_kinds) if data_kinds else ["WEIGHT_DIFF", "WEIGHTS"]
        unknown = [k for k in kinds if k not in ("WEIGHTS", "WEIGHT_DIFF")]
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: data_kinds {unknown} not supported; it filters "
                "'WEIGHTS' and 'WEIGHT_DIFF'"
            )
        return kinds

    def _applies(self, data: FLModel) -> bool:
        return data.rc == ReturnCode.OK and KIND_OF_PARAMS_TYPE.get(data.params_type) in self.data_kinds

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        """``data`` with its parameters filtered, or unchanged when the filter does not apply."""
        if not self._applies(data) or not data.params:
            return data
        data = FLModel(params=data.params, meta=dict(data.meta), metrics=data.metrics,
                       params_type=data.params_type, rc=data.rc)
        params = self.filter_params(data, ctx)
        if params is None:
            return data
        data.params = params
        return data

    def filter_params(self, data: FLModel, ctx: RunContext) -> dict[str, Any] | None:
        """The filtered parameters of ``data``, or None to leave it unchanged."""
        raise NotImplementedError

    data_kinds: list[str]


class ExcludeVars(_DataKindFilter):
    """Leaves parameters out of the model a site sends (FLARE's ``ExcludeVars``).

    ``exclude_vars`` is a list of parameter names, or a regular expression searched in
    each name. None, an empty string or any other value excludes nothing (as in
    FLARE). A regular expression that matches no parameter is logged as a warning.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "exclude_vars": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}},
                                   {"type": "string", "format": "regex"}]},
        "data_kinds": {"type": ["array", "null"], "items": {"enum": ["WEIGHTS", "WEIGHT_DIFF"]}},
    }

    def __init__(self, exclude_vars: list[str] | str | None = None, data_kinds: list[str] | None = None) -> None:
        """
        Args:
            exclude_vars: the names of the parameters to leave out, or a regular
                expression; None leaves everything in.
            data_kinds: which models to filter: ``WEIGHTS`` (full weights),
                ``WEIGHT_DIFF`` (differences), or both (the default).
        """
        self.exclude_vars = exclude_vars
        self.data_kinds = self._select_kinds(data_kinds)
        self._names: set[str] | None = None
        self._pattern: re.Pattern[str] | None = None
        if isinstance(exclude_vars, list) and all(isinstance(v, str) for v in exclude_vars):
            self._names = set(exclude_vars)
        elif isinstance(exclude_vars, str) and exclude_vars:
            self._pattern = re.compile(exclude_vars)

    def filter_params(self, data: FLModel, ctx: RunContext) -> dict[str, Any] | None:
        """The parameters whose names are not excluded."""
        if self._names is None and self._pattern is None:
            return None
        names, pattern = self._names, self._pattern
        kept = {name: value for name, value in data.params.items()
                if not ((names is not None and name in names)
                        or (pattern is not None and pattern.search(name)))}
        if pattern is not None and len(kept) == len(data.params):
            log.warning("ExcludeVars: no parameter matches the regular expression %r", self.exclude_vars)
        return kept


class PercentilePrivacy(_DataKindFilter):
    """Shares only the largest changes, clipped (FLARE's ``PercentilePrivacy``).

    Each parameter is divided by the result's ``NUM_STEPS_CURRENT_ROUND``; the entries
    whose absolute value is below the ``percentile``-th percentile of all absolute
    values become 0, the rest are clipped to ``[-gamma, gamma]``, and all are scaled
    back by the step count. Scalars pass unchanged. A ``gamma`` of 0 or less, or a
    ``percentile`` outside 0..100, leaves the model unchanged (as in FLARE).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "percentile": {"type": "number"},
        "gamma": {"type": "number"},
        "data_kinds": {"type": ["array", "null"], "items": {"enum": ["WEIGHTS", "WEIGHT_DIFF"]}},
    }

    def __init__(self, percentile: float = 10, gamma: float = 0.01, data_kinds: list[str] | None = None) -> None:
        """
        Args:
            percentile: only absolute changes above this percentile (0..100) are shared.
            gamma: the largest absolute change shared; larger ones are clipped to it.
            data_kinds: which models to filter: ``WEIGHTS``, ``WEIGHT_DIFF``, or both (the default).
        """
        self.percentile = percentile
        self.gamma = gamma
        self.data_kinds = self._select_kinds(data_kinds)

    def filter_params(self, data: FLModel, ctx: RunContext) -> dict[str, Any] | None:
        """The parameters with the small changes zeroed and the rest clipped."""
        if self.gamma <= 0 or not 0 <= self.percentile <= 100:
            return None
        steps = float(data.meta.get(NUM_STEPS_KEY, 1) or 1)
        converted = {name: as_float64(value) for name, value in data.params.items()}
        arrays = {name: values / steps for name, (values, _) in converted.items()}
        cutoff = float(np.percentile(np.concatenate([np.abs(a).ravel() for a in arrays.values()]),
                                     self.percentile))
        out: dict[str, Any] = {}
        for name, delta in arrays.items():
            if delta.ndim == 0:
                out[name] = data.params[name]
                continue
            delta[(delta > -cutoff) & (delta < cutoff)] = 0.0
            out[name] = restore_dtype(np.clip(delta, -self.gamma, self.gamma) * steps, converted[name][1])
        return out


class SVTPrivacy(_DataKindFilter):
    """Shares a noisy ``fraction`` of the changes, chosen by the Sparse Vector Technique
    (FLARE's ``SVTPrivacy``, as FLARE 2.7 and later compute it).

    Of the ``n = ceil(fraction * size)`` entries to share, each is accepted when its
    clipped absolute change plus Laplace noise (scale ``2 gamma n / epsilon_query``)
    reaches a noisy threshold (``tau`` plus Laplace noise of scale
    ``gamma / epsilon_threshold``); ``n`` of the accepted entries are drawn (with
    replacement unless ``replace`` is false) and shared clipped to ``[-gamma, gamma]``
    plus Laplace noise of scale ``2 gamma n / epsilon_release``; every other entry is 0.
    Changes are divided by ``NUM_STEPS_CURRENT_ROUND`` first and scaled back after.
    Scalars pass unchanged (and are not covered by the guarantee).

    ``epsilon`` is split between the threshold and the query as the standard SVT does
    unless ``epsilon_threshold``/``epsilon_query`` are given; ``epsilon_release``
    defaults to ``n * noise_var``. Each call's budget is recorded in the result's meta
    under ``svt_privacy_budget``, the run's sum under ``svt_privacy_accountant``
    (:meth:`privacy_spent`).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "epsilon": {"type": "number", "exclusiveMinimum": 0},
        "noise_var": {"type": "number"},
        "gamma": {"type": "number", "exclusiveMinimum": 0},
        "tau": {"type": "number"},
        "data_kinds": {"type": ["array", "null"], "items": {"enum": ["WEIGHTS", "WEIGHT_DIFF"]}},
        "replace": {"type": "boolean"},
        "epsilon_threshold": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "epsilon_query": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "epsilon_release": {"type": ["number", "null"], "exclusiveMinimum": 0},
    }

    def __init__(
        self,
        fraction: float = 0.1,
        epsilon: float = 0.1,
        noise_var: float = 0.1,
        gamma: float = 1e-5,
        tau: float = 1e-6,
        data_kinds: list[str] | None = None,
        replace: bool = True,
        epsilon_threshold: float | None = None,
        epsilon_query: float | None = None,
        epsilon_release: float | None = None,
    ) -> None:
        """
        Args:
            fraction: the fraction of the entries shared (0..1).
            epsilon: the privacy budget of choosing the entries (threshold and query).
            noise_var: sets the release budget when ``epsilon_release`` is not given
                (``n * noise_var``), as FLARE's older releases used it.
            gamma: the clipping bound of a shared change.
            tau: the threshold before noise.
            data_kinds: which models to filter: ``WEIGHTS``, ``WEIGHT_DIFF``, or both (the default).
            replace: draw the shared entries from the accepted ones with replacement.
            epsilon_threshold: the budget of the threshold's noise (default: the standard split).
            epsilon_query: the budget of the query's noise (default: the rest of ``epsilon``).
            epsilon_release: the budget of the released values' noise.
        """
        self.fraction = fraction
        self.epsilon = epsilon
        self.noise_var = noise_var
        self.gamma = gamma
        self.tau = tau
        self.data_kinds = self._select_kinds(data_kinds)
        self.replace = replace
        self.epsilon_threshold = epsilon_threshold
        self.epsilon_query = epsilon_query
        self.epsilon_release = epsilon_release
        self._lock = threading.Lock()
        self._spent = 0.0
        self._calls = 0

    def privacy_spent(self) -> float:
        """The total epsilon this filter has spent in the run (pure composition)."""
        with self._lock:
            return self._spent

    def budget(self, n_upload: int) -> tuple[float, float, float]:
        """(threshold, query, release) epsilons for sharing ``n_upload`` entries.

        Raises ValueError when the given budgets do not add up or are not positive.
        """
        given_threshold, given_query = self.epsilon_threshold, self.epsilon_query
        if given_threshold is None and given_query is None:
            threshold = self.epsilon / (1.0 + (2.0 * n_upload) ** (2.0 / 3.0))
            query = self.epsilon - threshold
        elif given_threshold is None:
            query = float(given_query)  # type: ignore[arg-type]
            threshold = self.epsilon - query
        else:
            threshold = float(given_threshold)
            query = self.epsilon - threshold if given_query is None else float(given_query)
        if threshold <= 0 or query <= 0 or not np.isclose(threshold + query, self.epsilon):
            raise ValueError(
                f"SVTPrivacy: epsilon_threshold ({threshold}) and epsilon_query ({query}) must be "
                f"positive and add up to epsilon ({self.epsilon})"
            )
        release = self.epsilon_release if self.epsilon_release is not None else n_upload * self.noise_var
        if release <= 0:
            raise ValueError("SVTPrivacy: noise_var must be > 0 when epsilon_release is not given")
        return float(threshold), float(query), float(release)

    def filter_params(self, data: FLModel, ctx: RunContext) -> dict[str, Any] | None:
        """The parameters with a noisy fraction of their entries shared, the rest 0."""
        steps = float(data.meta.get(NUM_STEPS_KEY, 1) or 1)
        names = sorted(data.params)
        converted = {name: as_float64(data.params[name]) for name in names}
        arrays = {name: converted[name][0] / steps for name in names}
        vectors = [name for name in names if arrays[name].ndim > 0]
        flat = (np.concatenate([arrays[n].ravel() for n in vectors]) if vectors else np.zeros(0))
        if flat.size == 0:
            return None
        n_upload = int(min(np.ceil(flat.size * self.fraction), flat.size))
        shared = np.zeros_like(flat)
        if n_upload > 0:
            eps_threshold, eps_query, eps_release = self.budget(n_upload)
            threshold = self.tau + np.random.laplace(scale=self.gamma / eps_threshold)
            query_scale = self.gamma * 2.0 * n_upload / eps_query
            response = np.abs(np.clip(flat, -self.gamma, self.gamma))
            accepted = np.zeros(flat.size, dtype=bool)
            passes = 0
            while accepted.sum() < n_upload:
                passes += 1
                candidates = np.flatnonzero(~accepted)
                noisy = response[candidates] + np.random.laplace(scale=query_scale, size=candidates.size)
                accepted[candidates[noisy >= threshold]] = True
            chosen = np.random.choice(np.flatnonzero(accepted), size=n_upload, replace=self.replace)
            noise = np.random.laplace(scale=self.gamma * 2.0 * n_upload / eps_release, size=n_upload)
            shared[chosen] = np.clip(flat[chosen], -self.gamma, self.gamma) + noise
            self._account(data, n_upload, passes, eps_threshold, eps_query, eps_release,
                          scalars=len(vectors) < len(names))
        out: dict[str, Any] = {}
        start = 0
        for name in names:
            if arrays[name].ndim == 0:
                out[name] = data.params[name]
                continue
            size = arrays[name].size
            out[name] = restore_dtype(shared[start:start + size].reshape(arrays[name].shape) * steps,
                                      converted[name][1])
            start += size
        return out

    def _account(self, data: FLModel, n_upload: int, passes: int, eps_threshold: float,
                 eps_query: float, eps_release: float, scalars: bool) -> None:
        total = eps_threshold + eps_query + eps_release
        with self._lock:
            self._spent += total
            self._calls += 1
            spent, calls = self._spent, self._calls
        data.meta[SVT_BUDGET_KEY] = {
            "accountant": "pure_dp_sum", "delta": 0.0, "round": data.meta.get("current_round"),
            "epsilon_total": total, "epsilon_threshold": eps_threshold, "epsilon_query": eps_query,
            "epsilon_release": eps_release, "n_upload": n_upload, "acceptance_passes": passes,
            "has_scalar_passthrough": scalars,
        }
        data.meta[SVT_ACCOUNTANT_KEY] = {"accountant": "pure_dp_sum", "delta": 0.0,
                                         "epsilon_total": spent, "calls": calls}
        log.info("SVTPrivacy: this call spent epsilon %.6g, the run %.6g", total, spent)
