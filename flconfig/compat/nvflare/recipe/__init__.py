"""FLARE's ``nvflare.recipe``: ready-made jobs (recipes), where they run (SimEnv, PocEnv,
ProdEnv) and what a script adds to them — served by flconfig (:mod:`flconfig.compat.jobapi`)."""

from __future__ import annotations

from .fed_task import FedTaskRecipe
from .fedavg import FedAvgRecipe
from .poc_env import PocEnv
from .prod_env import ProdEnv
from .run import Run
from .sim_env import SimEnv
from .utils import (
    add_cross_site_evaluation,
    add_experiment_tracking,
    add_final_global_evaluation,
    set_per_site_config,
    set_recipe_meta,
)

__all__ = ["FedAvgRecipe", "FedTaskRecipe", "PocEnv", "ProdEnv", "Run", "SimEnv", "add_cross_site_evaluation",
           "add_experiment_tracking", "add_final_global_evaluation", "set_per_site_config", "set_recipe_meta"]
