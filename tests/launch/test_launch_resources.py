"""Where a launch's sites run: GPUs for worker processes, resources for Ray actors
(flconfig.launch.resources), planned without Ray, torch or a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from flconfig.errors import LaunchError
from flconfig.launch.resources import (
    ActorPlan,
    SiteResources,
    cuda_problem,
    device_for_process,
    gpu_groups,
    parse_gpus,
    plan_actors,
    site_resources,
    visible_gpus,
)

SITES = [f"site-{i}" for i in range(1, 6)]


def test_gpus_are_indices_separated_by_commas() -> None:
    assert parse_gpus("0,1") == (0, 1)
    assert parse_gpus(" 3 , 1") == (3, 1)
    for text, says in (("a,b", "not 'a', 'b'"), ("0,0", "names GPU 0 twice"), ("-1", "not '-1'"),
                       ("", "e.g. 0,1"), ("0,,1", "e.g. 0,1"), ("1.5", "not '1.5'")):
        with pytest.raises(ValueError, match=says):
            parse_gpus(text)


def test_sites_go_round_robin_over_the_gpus_one_process_per_gpu() -> None:
    # As FLARE's simulator: site i on GPU i mod n.
    assert gpu_groups(SITES, (0, 1)) == [(0, ["site-1", "site-3", "site-5"]), (1, ["site-2", "site-4"])]
    assert gpu_groups(SITES, (3, 1, 2)) == [(3, ["site-1", "site-4"]), (1, ["site-2", "site-5"]),
                                            (2, ["site-3"])]
    # More GPUs than sites: the spare ones get no process.
    assert gpu_groups(["site-1"], (0, 1)) == [(0, ["site-1"])]


def test_processes_are_shared_out_between_the_gpus_never_mixing_two() -> None:
    groups = gpu_groups(SITES + ["site-6"], (0, 1), processes=4)
    assert groups == [(0, ["site-1", "site-5"]), (0, ["site-3"]), (1, ["site-2", "site-6"]), (1, ["site-4"])]
    # An odd count: the first GPUs take one more.
    assert [gpu for gpu, _ in gpu_groups(SITES + ["site-6"], (0, 1), processes=3)] == [0, 0, 1]
    # A process hosts one app's sites only.
    apps = {"site-1": "a", "site-3": "b", "site-5": "a", "site-2": "a", "site-4": "a"}
    assert gpu_groups(SITES, (0, 1), apps=apps) == [(0, ["site-1", "site-5"]), (0, ["site-3"]),
                                                    (1, ["site-2", "site-4"])]


def test_a_process_sees_its_gpu_by_the_index_the_launcher_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_for_process(1) == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # the launcher itself sees two of eight
    assert device_for_process(1) == "6"


def test_a_site_needs_what_the_command_line_says_else_the_jobs_resource_spec() -> None:
    spec = {"site-1": {"num_of_gpus": 1, "mem_per_gpu_in_GiB": 4}, "site-2": {"num_cpus": 2, "num_gpus": 0.5}}
    needs = site_resources(["site-1", "site-2", "site-3"], spec)
    assert needs == {"site-1": SiteResources(1.0, 1.0), "site-2": SiteResources(2.0, 0.5),
                     "site-3": SiteResources(1.0, 0.0)}
    assert set(site_resources(["site-1", "site-2"], spec, cpus=0.5, gpus=0.25).values()) == {
        SiteResources(0.5, 0.25)}
    # The job's meta "launch" gives every site's default; a site's resource_spec entry wins.
    assert site_resources(["site-1", "site-2", "site-3"], spec, default_cpus=2, default_gpus=0.25) == {
        "site-1": SiteResources(2.0, 1.0), "site-2": SiteResources(2.0, 0.5), "site-3": SiteResources(2.0, 0.25)}
    with pytest.raises(LaunchError, match="resource_spec gives site-1 num_gpus 'one': use a number at least 0"):
        site_resources(["site-1"], {"site-1": {"num_gpus": "one"}})


def test_an_actor_reserves_one_sites_needs_so_a_thousand_sites_fit_two_cpus() -> None:
    sites = [f"site-{i}" for i in range(1, 1025)]
    needs = site_resources(sites)
    plans = plan_actors(sites, needs, [(2, 0)])
    assert [(len(p.sites), p.cpus, p.gpus) for p in plans] == [(512, 1.0, 0.0), (512, 1.0, 0.0)]
    assert sorted(s for p in plans for s in p.sites) == sorted(sites)


def test_actors_fill_the_clusters_gpus_and_follow_an_asked_count() -> None:
    needs = site_resources(SITES, gpus=0.5)
    assert len(plan_actors(SITES, needs, [(16, 1)])) == 2  # two halves of one GPU
    assert len(plan_actors(SITES, site_resources(SITES), [(64, 0)])) == 5  # one a site
    assert len(plan_actors(SITES, site_resources(SITES), [(64, 0)], actors=2)) == 2
    assert ActorPlan(("site-1",), 2.5, 0).threads == 2 and ActorPlan(("site-1",), 0.5, 0).threads == 1


def test_sites_with_different_needs_never_share_an_actor() -> None:
    needs = site_resources(SITES, {"site-2": {"num_gpus": 1}})
    plans = plan_actors(SITES, needs, [(8, 2)])
    gpu_plans = [p for p in plans if p.gpus]
    assert [p.sites for p in gpu_plans] == [("site-2",)]
    assert all("site-2" not in p.sites for p in plans if not p.gpus)


def test_a_site_that_needs_more_than_the_cluster_is_refused_by_name() -> None:
    needs = site_resources(SITES, {"site-3": {"num_gpus": 1}})
    with pytest.raises(LaunchError, match=r"site-3 needs 1 CPU, 1 GPU and no Ray node has that \(the largest: 4 CPU, no GPU\)"):
        plan_actors(SITES, needs, [(4, 0), (2, 0)])
    # Two nodes' resources together are not one node's: 2 CPUs here and 1 GPU there hold no site.
    with pytest.raises(LaunchError, match=r"site-3 needs 1 CPU, 1 GPU and no Ray node has that \(the largest: 0 CPU, 1 GPU\)"):
        plan_actors(SITES, needs, [(2, 0), (0, 1)])


def test_actors_fit_each_node_not_the_clusters_sum() -> None:
    # Half a GPU and a CPU a site: the GPU node has 2 CPUs, so 2 actors there, not 4 (the
    # cluster's 2 GPUs would hold 4 if its CPUs elsewhere counted).
    needs = site_resources(SITES, gpus=0.5)
    plans = plan_actors(SITES, needs, [(2, 0), (2, 2)])
    assert [p.sites for p in plans] == [("site-1", "site-3", "site-5"), ("site-2", "site-4")]
    # CPUs only: each node holds its own share.
    assert len(plan_actors(SITES, site_resources(SITES, cpus=1.5), [(2, 0), (3, 0)])) == 3


def test_cuda_is_refused_where_the_machine_shows_no_gpu(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
    assert cuda_problem("cuda", ()) == ("--device cuda: CUDA_VISIBLE_DEVICES hides every GPU; use --device "
                                       "cpu (or --device auto: CUDA where there is one)")
    assert cuda_problem(None, (0, 1)).startswith("--gpus: CUDA_VISIBLE_DEVICES hides every GPU")
    # Nothing asked of CUDA: nothing to check (auto falls back to the CPU in the learner).
    assert cuda_problem("cpu", (0, 1)) is None
    assert cuda_problem("auto", ()) is None
    assert cuda_problem(None, ()) is None


def test_gpus_the_machine_lacks_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A driver's list of two GPUs, as /proc/driver/nvidia/gpus shows it.
    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / bus).mkdir()
    monkeypatch.setattr("flconfig.launch.resources.NVIDIA_GPUS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == 2
    assert cuda_problem("cuda", (0, 1)) is None
    assert cuda_problem(None, (1, 2, 3)) == ("--gpus 1,2,3: this machine has 2 GPU(s), 0 to 1; "
                                             "there is no GPU 2, 3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert cuda_problem(None, (0, 1)) == ("--gpus 0,1: CUDA_VISIBLE_DEVICES shows 1 GPU(s), 0 to 0; "
                                          "there is no GPU 1")
