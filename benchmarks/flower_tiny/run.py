"""The tiny workload of benchmarks/many_sites.py under Flower's simulation (Ray backend).

    python run.py N [cnn|numpy]   (in a venv with flwr[simulation], torch, scikit-learn;
                                   flconfig's examples on PYTHONPATH for the same data and model)

One FedAvg round over N clients, every client's result awaited: each measures the held-out
accuracy of the global model it received (flconfig's LearnerExecutor does, for the best-model
choice), trains one epoch on its 64 digits images (the training part cut into 1437 // 64
shares, reused in turn; batch 32, SGD lr 0.05, momentum 0.9, the same DigitsCNN) and then
measures its held-out accuracy again, as flconfig's DigitsLearner does. Prints
``FIT_RESULTS <n>`` once aggregated.

``numpy``: the workload that costs nothing, as ``many_sites.py --workload numpy``: the model
a 3×3 float32 array, each client adds 1 to it and returns one scalar (``train_loss``) with it;
torch is not imported. What is left is the framework's own cost.
"""

from __future__ import annotations

import sys

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation

N = int(sys.argv[1])
WORKLOAD = sys.argv[2] if len(sys.argv) > 2 else "cnn"
SHARES = 1437 // 64

if WORKLOAD == "cnn":
    import torch
    import torch.nn.functional as F

    from flconfig.examples.data import load_digits_site
    from flconfig.examples.models import DigitsCNN


def get_params(model: torch.nn.Module) -> list[np.ndarray]:
    return [v.detach().cpu().numpy() for v in model.state_dict().values()]


def set_params(model: torch.nn.Module, params: list[np.ndarray]) -> None:
    keys = list(model.state_dict())
    model.load_state_dict({k: torch.as_tensor(v) for k, v in zip(keys, params, strict=True)})


class DigitsClient(NumPyClient):
    def __init__(self, index: int) -> None:
        torch.set_num_threads(1)
        data = load_digits_site(SHARES, index % SHARES)
        self.x = torch.as_tensor(data.x_train, dtype=torch.float32) * data.scale
        self.y = torch.as_tensor(data.y_train)
        self.xt = torch.as_tensor(data.x_test, dtype=torch.float32) * data.scale
        self.yt = torch.as_tensor(data.y_test)
        self.model = DigitsCNN()

    def accuracy(self) -> float:
        self.model.eval()
        with torch.no_grad():
            return (self.model(self.xt).argmax(1) == self.yt).float().mean().item()

    def fit(self, parameters, config):
        set_params(self.model, parameters)
        initial = self.accuracy()
        opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.model.train()
        perm = torch.randperm(len(self.y))
        for i in range(0, len(perm), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss = F.cross_entropy(self.model(self.x[idx]), self.y[idx])
            loss.backward()
            opt.step()
        acc = self.accuracy()
        return get_params(self.model), len(self.y), {"validation_accuracy": acc,
                                                      "initial_accuracy": initial}


class NumpyClient(NumPyClient):
    """Adds 1 to the 3×3 model; one scalar back (as many_sites.py's NumpyLearner)."""

    def __init__(self) -> None:
        self.round = 0

    def fit(self, parameters, config):
        weights = np.asarray(parameters[0], dtype=np.float32) + 1
        loss = 1.0 / (self.round + 1)
        self.round += 1
        return [weights], 1, {"train_loss": loss}


def client_fn(context: Context):
    if WORKLOAD == "numpy":
        return NumpyClient().to_client()
    return DigitsClient(int(context.node_config["partition-id"])).to_client()


def initial_parameters() -> list[np.ndarray]:
    if WORKLOAD == "numpy":
        return [np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)]
    return get_params(DigitsCNN())


class CountingFedAvg(FedAvg):
    def aggregate_fit(self, server_round, results, failures):
        print(f"FIT_RESULTS {len(results)} FAILURES {len(failures)}", flush=True)
        return super().aggregate_fit(server_round, results, failures)


def server_fn(context: Context) -> ServerAppComponents:
    strategy = CountingFedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=N, min_available_clients=N,
        initial_parameters=ndarrays_to_parameters(initial_parameters()),
    )
    return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=1))


if __name__ == "__main__":
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=N,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
