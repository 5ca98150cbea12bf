"""The example job, written with FLARE's Recipe API as FLARE's TensorBoard example writes
it: FedAvg over two sites training ``model.SimpleNetwork`` with ``client.py``, each site's
metrics streamed to TensorBoard on the server.

    flconfig run job.py                      # simulate it on this machine
    flconfig run job.py --export             # write the job folder (./fl_job) instead
    python job.py                            # the same script under FLARE itself
"""

import argparse

from model import SimpleNetwork
from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
from nvflare.recipe import SimEnv
from nvflare.recipe.utils import add_experiment_tracking

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_rounds", type=int, default=5)
    parser.add_argument("--workspace_root", default="/tmp/nvflare/jobs/workdir")
    args = parser.parse_args()

    recipe = FedAvgRecipe(
        name="fedavg_tensorboard",
        min_clients=2,
        num_rounds=args.num_rounds,
        model=SimpleNetwork(),
        train_script="client.py",
    )
    add_experiment_tracking(recipe, "tensorboard", tracking_config={"tb_folder": "tb_events"})

    env = SimEnv(num_clients=2, workspace_root=args.workspace_root)
    run = recipe.execute(env)
    print()
    print("Result can be found in:", run.get_result())
    print("Job Status is:", run.get_status())
    print()
