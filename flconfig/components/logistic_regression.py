"""Federated logistic regression by Newton-Raphson: FLARE 2.9's ``FedAvgLR`` workflow and its
``LRModelPersistor`` (``nvflare.app_common.workflows.lr``; the ``FedAvgLrRecipe``, hello-lr).

The global model is one ``(n_features + 1, 1)`` array under ``numpy_key`` (the intercept
first). Each round every site computes, on its data and the global weights ``w``, the
gradient ``g = Xᵀ(y - p)`` and the Hessian ``H = Xᵀ diag(p(1 - p)) X`` of the log-likelihood
and sends ``params={"gradient": g, "hessian": H}`` with its number of samples as
``NUM_STEPS_CURRENT_ROUND``. The server averages both, weighted by the samples, and takes a
damped Newton step: ``w += damping_factor · solve(H + epsilon · I, g)``.

Standard library only at import time (the registry reads this file); numpy is imported
when the workflow runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..types import FLModel, ReturnCode, RunContext
from .base import ModelPersistor
from .fedavg import FedAvg
from .numpy_family import NUMPY_KEY, NPModelPersistor
from .shareable_generators import FullModelShareableGenerator

if TYPE_CHECKING:
    from ..types import ServerContext
    from .base import Aggregator, ModelPersistor, ShareableGenerator


class LRModelPersistor(NPModelPersistor):
    """The logistic regression's weights as one ``.npy`` file (FLARE's ``LRModelPersistor``).

    As NPModelPersistor (``<run folder>/<model_dir>/<model_name>``, or
    ``source_ckpt_file_full_name`` when that file exists), but the first model is zeros of
    shape ``(n_features + 1, 1)`` (float32).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"n_features": {"minimum": 1}}

    def __init__(self, model_dir: str = "models", model_name: str = "weights.npy", n_features: int = 13,
                 source_ckpt_file_full_name: str | None = None) -> None:
        """
        Args:
            model_dir: folder of the weights file, inside the server's run folder.
            model_name: the weights file's name.
            n_features: the number of features (the weights have one more: the intercept).
            source_ckpt_file_full_name: a ``.npy`` file that, when it exists, holds the first
                weights.
        """
        super().__init__(model_dir=model_dir, model_name=model_name,
                         model=[[0.0] for _ in range(n_features + 1)],
                         source_ckpt_file_full_name=source_ckpt_file_full_name)
        self.n_features = n_features


class _NewtonRaphsonStep(FullModelShareableGenerator):
    """The next weights from the averaged gradient and Hessian: a damped Newton step."""

    def __init__(self, damping_factor: float, epsilon: float) -> None:
        self.damping_factor = damping_factor
        self.epsilon = epsilon

    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        import numpy as np

        if aggregated.rc != ReturnCode.OK:
            return super().shareable_to_learnable(aggregated, ctx)
        current = (getattr(ctx, "props", None) or {}).get("global_model")
        if not isinstance(current, FLModel) or NUMPY_KEY not in current.params:
            raise JobError(f"FedAvgLR: the global model has no {NUMPY_KEY!r} weights")
        missing = [key for key in ("gradient", "hessian") if key not in aggregated.params]
        if missing:
            raise JobError(f"FedAvgLR: the sites' results lack {' and '.join(missing)}: a site sends "
                           "FLModel(params={'gradient': g, 'hessian': H}) (FLARE's hello-lr client)")
        weights = np.asarray(current.params[NUMPY_KEY])
        gradient = np.asarray(aggregated.params["gradient"], dtype=np.float64)
        hessian = np.asarray(aggregated.params["hessian"], dtype=np.float64)
        if hessian.shape != (weights.shape[0], weights.shape[0]) or gradient.shape[0] != weights.shape[0]:
            raise JobError(f"FedAvgLR: the gradient {gradient.shape} and Hessian {hessian.shape} do not fit the "
                           f"weights {weights.shape} (n_features + 1 rows)")
        step = self.damping_factor * np.linalg.solve(hessian + self.epsilon * np.eye(hessian.shape[0]), gradient)
        updated = (weights + step.reshape(weights.shape)).astype(weights.dtype)
        return FLModel(params={**current.params, NUMPY_KEY: updated}, meta=dict(current.meta),
                       metrics=dict(aggregated.metrics), params_type="FULL")


class FedAvgLR(FedAvg):
    """Federated Newton-Raphson logistic regression (FLARE 2.9's ``FedAvgLR``; see the module
    docstring for the computation).

    Each round goes to ``num_clients`` sites (task ``train``); the sites' gradients and
    Hessians are averaged weighted by their ``NUM_STEPS_CURRENT_ROUND`` (the samples), the
    weights take a step of ``damping_factor`` (with ``epsilon`` added to the Hessian's
    diagonal) and are saved every round. The persistor is the component ``persistor_id``
    names, else an ``LRModelPersistor(model_dir, model_name, n_features)``.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "damping_factor": {"exclusiveMinimum": 0},
        "epsilon": {"minimum": 0},
        "n_features": {"minimum": 1},
        "model_dir": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
                      "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
        "model_name": {"minLength": 1, "pattern": r"^(?!\.\.?$)[^/\\]+$",
                       "patternErrorMessage": "a file name without a folder"},
    }
    #: Without a persistor component FedAvgLR makes its own LRModelPersistor.
    DEFAULT_REF_OPTIONAL: ClassVar[dict[str, str]] = {"persistor_id": "*"}
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "aggregator": {"*": "FedAvgLR averages the gradients and Hessians itself (FLARE's "
                            "WeightedAggregationHelper): leave aggregator out"},
    }

    def __init__(
        self,
        damping_factor: float,
        epsilon: float = 1.0,
        model_dir: str = "models",
        model_name: str = "weights.npy",
        n_features: int = 13,
        aggregator: Any = None,
        persistor: Any = None,
        num_clients: int = 3,
        num_rounds: int = 5,
        start_round: int = 0,
        memory_gc_rounds: int = 0,
        persistor_id: str = "persistor",
    ) -> None:
        """
        Args:
            damping_factor: the Newton step's factor (the step size).
            epsilon: added to the Hessian's diagonal before it is solved (regularization).
            model_dir: folder of the default persistor's weights file.
            model_name: the default persistor's weights file.
            n_features: the number of features.
            aggregator: FLARE's WeightedAggregationHelper (not supported: the built-in one).
            persistor: a persistor component (a nested NPModelPersistor), instead of
                ``persistor_id``'s.
            num_clients: sites trained each round.
            num_rounds: rounds to run.
            start_round: the first round's number.
            memory_gc_rounds: run the garbage collector every this many rounds (0: never).
            persistor_id: id of the persistor; when it names no component, an
                LRModelPersistor of ``model_dir``, ``model_name`` and ``n_features``.
        """
        super().__init__(num_clients=num_clients, num_rounds=num_rounds, start_round=start_round,
                         persistor_id=persistor_id, memory_gc_rounds=memory_gc_rounds)
        self.damping_factor = damping_factor
        self.epsilon = epsilon
        self.model_dir = model_dir
        self.model_name = model_name
        self.n_features = n_features
        self.lr_aggregator = aggregator
        self.persistor = persistor

    def _parts(self, ctx: ServerContext) -> tuple[Aggregator, ShareableGenerator]:
        aggregator, _ = super()._parts(ctx)
        step = _NewtonRaphsonStep(self.damping_factor, self.epsilon)
        step.id = f"{self.id or 'FedAvgLR'}.newton_raphson"
        return aggregator, step

    def _find_persistor(self, ctx: ServerContext) -> ModelPersistor | None:
        if isinstance(self.persistor, ModelPersistor):
            return self.persistor
        if self.persistor_id and ctx.get_component(self.persistor_id) is not None:
            return super()._find_persistor(ctx)
        default = LRModelPersistor(model_dir=self.model_dir, model_name=self.model_name, n_features=self.n_features)
        default.id = f"{self.id or 'FedAvgLR'}.persistor"
        return default
