"""The tiny CNN workload's own cost, without any framework: what one site of
``many_sites.py`` asks of its learner (initialize it, validate the global model, train one
epoch of 64 digits images), warm, on one torch thread, in this process.

    python benchmarks/learner_cost.py [N]      (N sites, default 200; prints ms a site)

At 1,024 sites, N × this is the CPU a framework cannot save; the rest of the run's CPU is
the framework's (RESULTS.md, issue 24).
"""

from __future__ import annotations

import sys
import time
import types

import torch

from flconfig.examples.digits import DigitsLearner, params_to_numpy
from flconfig.examples.models import DigitsCNN
from flconfig.types import FLModel

#: Images a site trains on: the digits' training part cut into shares of 64, as many_sites.py.
SHARES = 1437 // 64
WARM_UP = 5


class _Running:
    triggered = False


def one_site(index: int, sites: int, params: dict[str, object]) -> None:
    """One site's task: build its learner, validate the global model, train one epoch."""
    learner = DigitsLearner(num_sites=SHARES, epochs=1, seed=0)
    ctx = types.SimpleNamespace(client_sites=[f"site-{i}" for i in range(1, sites + 1)],
                                site_name=f"site-{index + 1}", device=None)
    learner.initialize({}, ctx)  # type: ignore[arg-type]
    learner.validate(FLModel(params=params, params_type="FULL"), ctx, _Running())  # type: ignore[arg-type]
    learner.train(FLModel(params=params, params_type="FULL"), ctx, _Running())  # type: ignore[arg-type]


def main() -> int:
    sites = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    torch.set_num_threads(1)
    params = params_to_numpy(DigitsCNN())
    for i in range(WARM_UP):  # torch's first calls (and torch._dynamo's import) are not a site's cost
        one_site(i, sites, params)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(sites):
        one_site(i, sites, params)
    print(f"{sites} sites: {(time.process_time() - cpu) / sites * 1000:.1f} ms CPU a site, "
          f"{(time.perf_counter() - wall) / sites * 1000:.1f} ms wall a site")
    return 0


if __name__ == "__main__":
    sys.exit(main())
