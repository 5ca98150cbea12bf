"""FLARE 2.9's scikit-learn assemblers: ``KMeansAssembler`` and ``SVMAssembler``
(``nvflare.app_opt.sklearn``), which its k-means and SVM recipes name beside a FedAvg whose
``aggregator`` is a ``CollectAndAssembleModelAggregator``.

They are FLARE ``Assembler``\\ s (:mod:`flconfig.compat.nvflare.app_common.aggregators.assembler`):
the aggregator collects each site's result through :meth:`get_model_params` and calls
:meth:`assemble` once the round's results are in. scikit-learn is imported when they
assemble, not before.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..compat.nvflare.apis.dxo import DXO
from ..compat.nvflare.apis.fl_context import FLContext
from ..compat.nvflare.app_common.aggregators.assembler import Assembler


def _round(fl_ctx: FLContext) -> Any:
    return fl_ctx.get_prop("current_round")


class KMeansAssembler(Assembler):
    """Federated k-means by mini-batch updates (FLARE's ``KMeansAssembler``).

    Sites send ``{"center": (k, d) array, "count": (k,) array or None}``. Round 0: the
    sites' initial centers (k-means++ on their data) are clustered once more into ``k``
    global centers. Later rounds: each global center moves to the count-weighted mean of
    itself (weighted by all the counts so far) and the sites' centers. The global model is
    ``{"center": (k, d) array}``.
    """

    def __init__(self) -> None:
        super().__init__(data_kind="WEIGHTS")
        self.center: Any = None
        self.count: Any = None
        self.n_cluster = 0

    def get_model_params(self, dxo: DXO) -> dict[str, Any]:
        return {"center": dxo.data["center"], "count": dxo.data["count"]}

    def assemble(self, data: dict[str, Any], fl_ctx: FLContext) -> DXO:
        import numpy as np

        if _round(fl_ctx) == 0 or self.center is None:
            from sklearn.cluster import KMeans

            centers = [np.asarray(record["center"], dtype=float) for record in self.collection.values()]
            self.n_cluster = centers[0].shape[0]
            self.count = np.zeros([self.n_cluster])
            self.center = KMeans(n_clusters=self.n_cluster).fit(np.concatenate(centers)).cluster_centers_
        else:
            for index in range(self.n_cluster):
                total = self.center[index] * self.count[index]
                for record in self.collection.values():
                    count = np.asarray(record["count"], dtype=float)
                    total = total + np.asarray(record["center"], dtype=float)[index] * count[index]
                    self.count[index] += count[index]
                if self.count[index] > 0:
                    self.center[index] = total / self.count[index]
        return DXO(data_kind=self.expected_data_kind, data={"center": self.center})


class SVMAssembler(Assembler):
    """Federated SVM from the sites' support vectors (FLARE's ``SVMAssembler``).

    Round 0: the sites' support vectors (``{"support_x", "support_y"}``) are concatenated
    and a global ``SVC(kernel)`` is fit on them; its support vectors are the global model.
    Later rounds send the same global support vectors back (for validation).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"kernel": {"enum": ["linear", "poly", "rbf", "sigmoid"]}}

    def __init__(self, kernel: str = "rbf") -> None:
        """
        Args:
            kernel: the global SVC's kernel.
        """
        super().__init__(data_kind="WEIGHTS")
        self.kernel = kernel
        self.support_x: Any = None
        self.support_y: Any = None

    def get_model_params(self, dxo: DXO) -> dict[str, Any]:
        return {"support_x": dxo.data["support_x"], "support_y": dxo.data["support_y"]}

    def assemble(self, data: dict[str, Any], fl_ctx: FLContext) -> DXO:
        import numpy as np

        if _round(fl_ctx) == 0 or self.support_x is None:
            from sklearn.svm import SVC

            x = np.concatenate([np.asarray(r["support_x"]) for r in self.collection.values()])
            y = np.concatenate([np.asarray(r["support_y"]) for r in self.collection.values()])
            svm = SVC(kernel=self.kernel).fit(x, y)
            self.support_x, self.support_y = x[svm.support_], y[svm.support_]
        return DXO(data_kind=self.expected_data_kind, data={"support_x": self.support_x, "support_y": self.support_y})
