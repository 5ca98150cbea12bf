"""The Ray backend on a two-node Ray cluster on this machine (issue 24): a head and a second
raylet (``ray.cluster_utils.Cluster``, 2 CPUs each), then ``benchmarks/many_sites.py
--backend ray --ray-address`` at each number of sites, against the cluster.

    python benchmarks/ray_two_nodes.py [--sites 64,1024] [-- more many_sites.py options]

Memory counts every process of the cluster (its raylets, GCS and actors), as
``many_sites.py`` does for ``--backend ray``. Needs ``flconfig[ray]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", default="64,1024")
    parser.add_argument("rest", nargs="*", help="more many_sites.py options (after --)")
    ns = parser.parse_args()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ok = True
    try:
        for sites in (int(s) for s in ns.sites.split(",")):
            done = subprocess.run([sys.executable, str(HERE / "many_sites.py"), "--sites", str(sites),
                                   "--backend", "ray", "--ray-address", cluster.address, *ns.rest],
                                  capture_output=True, text=True, timeout=1800)
            out = done.stdout
            result = json.loads(out[out.index("{"):]) if "{" in out else {"pass": False}
            ok = ok and done.returncode == 0 and bool(result.get("pass"))
            print(json.dumps({"sites": sites, "nodes": 2, **{k: result.get(k) for k in (
                "wall_s", "peak_rss_all_processes_mb", "peak_pss_all_processes_mb",
                "sites_with_scalars_in_tensorboard", "pass")}}), flush=True)
    finally:
        cluster.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
