"""Where a launch's sites run: GPUs for the process backend, resources for Ray's actors.

Pure planning, no Ray and no torch: :func:`gpu_groups` spreads sites over ``--gpus`` as
FLARE's simulator does (site i on GPU i mod n, each worker process hosting the sites of
one GPU); :func:`site_resources` and :func:`plan_actors` say what each site needs and how
the sites are grouped into Ray actors; :func:`visible_gpus` and :func:`cuda_problem` tell,
cheaply, whether this machine has a CUDA GPU at all.

How an actor reserves resources (docs/scaling.md says the same to users): an actor hosting
k sites trains one of them at a time, so it reserves what one site needs (``--site-cpus``,
``--site-gpus``, or the site's ``resource_spec`` in the job's meta), not k times that; its
sites take turns on it. The launch starts as many actors as the cluster's nodes hold at
once (at most one per site), so 1,024 sites fit a 2-CPU cluster: two actors of 512.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import LaunchError

#: CPUs one site needs while it trains, unless the command line or the job says.
DEFAULT_SITE_CPUS = 1.0
#: Where Linux's NVIDIA driver lists the GPUs it drives, one folder each.
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"
#: The keys of a site's ``resource_spec`` entry read as its CPUs and GPUs: Ray's names and
#: FLARE's (its GPU resource manager's ``num_of_gpus``).
CPU_KEYS = ("num_cpus",)
GPU_KEYS = ("num_gpus", "num_of_gpus")


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,1"`` as (0, 1); ValueError saying what is wrong with anything else."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"--gpus takes GPU indices separated by commas, e.g. 0,1; got {text!r}")
    bad = [item for item in items if not item.isdigit()]
    if bad:
        raise ValueError(f"--gpus takes GPU indices (0, 1, ...), not {', '.join(repr(b) for b in bad)}")
    gpus = tuple(int(item) for item in items)
    twice = sorted({g for g in gpus if gpus.count(g) > 1})
    if twice:
        raise ValueError(f"--gpus names GPU {', '.join(map(str, twice))} twice")
    return gpus


def gpu_groups(sites: Sequence[str], gpus: Sequence[int], processes: int | None = None,
               apps: Mapping[str, str] | None = None) -> list[tuple[int, list[str]]]:
    """(GPU, the sites of one worker process) for every process: site i on GPU i mod n, as
    FLARE's simulator places them; one process per GPU, or ``processes`` shared out between
    the GPUs (each at least one). With ``apps``, a process hosts the sites of one app only."""
    if not gpus:
        raise ValueError("no GPUs to place the sites on")
    on: dict[int, list[str]] = {gpu: [] for gpu in gpus}
    for i, site in enumerate(sites):
        on[gpus[i % len(gpus)]].append(site)
    used = [gpu for gpu in gpus if on[gpu]]
    groups: list[tuple[int, list[str]]] = []
    for n, gpu in enumerate(used):
        share = 1 if processes is None else max(1, processes // len(used) + (n < processes % len(used)))
        groups.extend((gpu, group) for group in split(on[gpu], share, apps))
    return groups


def split(sites: Sequence[str], count: int, apps: Mapping[str, str] | None = None) -> list[list[str]]:
    """``sites`` dealt round-robin into ``count`` groups (fewer when there are fewer sites),
    and apart by app where ``apps`` (site -> app) says they differ."""
    by_key: dict[str, list[str]] = {}
    for site in sites:
        by_key.setdefault(apps.get(site, "") if apps else "", []).append(site)
    groups: list[list[str]] = []
    for members in by_key.values():
        share = max(1, min(len(members), round(count * len(members) / max(1, len(sites)))))
        mine: list[list[str]] = [[] for _ in range(share)]
        for i, site in enumerate(members):
            mine[i % share].append(site)
        groups.extend(mine)
    return groups


@dataclass(frozen=True)
class SiteResources:
    """What one site needs while it trains: CPUs and GPUs, fractions allowed."""

    cpus: float = DEFAULT_SITE_CPUS
    gpus: float = 0.0

    def label(self) -> str:
        """E.g. ``1 CPU, 0.5 GPU``."""
        text = f"{self.cpus:g} CPU"
        return text + (f", {self.gpus:g} GPU" if self.gpus else "")


def site_resources(sites: Sequence[str], resource_spec: object = None, cpus: float | None = None,
                   gpus: float | None = None, default_cpus: float | None = None,
                   default_gpus: float | None = None) -> dict[str, SiteResources]:
    """What each site needs: ``cpus``/``gpus`` from the command line where given, else the
    site's entry in the job's ``resource_spec`` (``num_cpus``; ``num_gpus`` or FLARE's
    ``num_of_gpus``), else ``default_cpus``/``default_gpus`` (the job's meta ``launch``),
    else 1 CPU and no GPU. LaunchError for a value that is not a number at least 0."""
    spec = resource_spec if isinstance(resource_spec, Mapping) else {}
    found: dict[str, SiteResources] = {}
    for site in sites:
        entry = spec.get(site)
        entry = entry if isinstance(entry, Mapping) else {}
        site_cpus = cpus if cpus is not None else _number(
            entry, CPU_KEYS, site, DEFAULT_SITE_CPUS if default_cpus is None else default_cpus)
        site_gpus = gpus if gpus is not None else _number(
            entry, GPU_KEYS, site, 0.0 if default_gpus is None else default_gpus)
        found[site] = SiteResources(site_cpus, site_gpus)
    return found


def _number(entry: Mapping[str, object], keys: Sequence[str], site: str, default: float) -> float:
    for key in keys:
        if key in entry:
            value = entry[key]
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise LaunchError(f"the job's resource_spec gives {site} {key} {value!r}: "
                                  "use a number at least 0")
            return float(value)
    return default


@dataclass(frozen=True)
class ActorPlan:
    """One Ray actor: the sites it hosts and what it reserves (one site's needs: its
    sites train one at a time)."""

    sites: tuple[str, ...]
    cpus: float
    gpus: float

    @property
    def threads(self) -> int:
        """Torch threads for its training: its whole CPUs, at least one."""
        return max(1, int(self.cpus))


def plan_actors(sites: Sequence[str], needs: Mapping[str, SiteResources],
                nodes: Sequence[tuple[float, float]], actors: int | None = None,
                apps: Mapping[str, str] | None = None) -> list[ActorPlan]:
    """Group ``sites`` into Ray actors: ``actors`` of them, else as many as the cluster's
    nodes (each node's CPUs and GPUs) hold at once, each reserving one site's needs, at most
    one per site. Sites with different needs, or different apps, never share an actor.
    LaunchError when no node can hold a site."""
    for site in sites:
        need = needs[site]
        if _fits(need, nodes) == 0:
            cpus, gpus = max(nodes, default=(0.0, 0.0), key=lambda n: (n[1] if need.gpus else 0, n[0]))
            have = f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else ", no GPU")
            raise LaunchError(f"{site} needs {need.label()} and no Ray node has that "
                              f"(the largest: {have})")
    kinds: dict[SiteResources, list[str]] = {}
    for site in sites:
        kinds.setdefault(needs[site], []).append(site)
    plans: list[ActorPlan] = []
    for need, members in kinds.items():
        if actors is not None:
            count = round(actors * len(members) / len(sites))
        else:
            count = _fits(need, nodes)
        count = max(1, min(count, len(members)))
        plans.extend(ActorPlan(tuple(group), need.cpus, need.gpus)
                     for group in split(members, count, apps))
    return plans


def _fits(need: SiteResources, nodes: Sequence[tuple[float, float]]) -> int:
    """How many actors reserving ``need`` the ``nodes`` (CPUs, GPUs each) hold at once
    (a large number where a need is nothing at all)."""
    total = 0
    for cpus, gpus in nodes:
        room = [cpus / need.cpus if need.cpus else math.inf, gpus / need.gpus if need.gpus else math.inf]
        fit = min(room)
        total += 1 << 20 if fit == math.inf else int(fit + 1e-9)
    return total


def visible_gpus() -> int | None:
    """How many CUDA GPUs this machine shows, found without importing torch: 0 where
    ``CUDA_VISIBLE_DEVICES`` hides them all, else the NVIDIA driver's list of GPUs, else
    ``nvidia-smi -L``; None when nothing says (no driver, no nvidia-smi)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return 0
    try:
        count = len(os.listdir(NVIDIA_GPUS))
    except OSError:
        count = 0
    if count:
        return count
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))


def device_for_process(gpu: int) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of a worker process on ``--gpus`` index ``gpu``: the
    index itself, or, where this machine's ``CUDA_VISIBLE_DEVICES`` already picks GPUs,
    the one at that place in its list (``--gpus`` counts the GPUs the launcher sees)."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[gpu] if gpu < len(visible) else str(gpu)


def cuda_problem(device: str | None, gpus: Sequence[int]) -> str | None:
    """Why the sites cannot train on CUDA here, or None: asked for (``--device cuda``, or
    ``--gpus`` without ``--device cpu``) on a machine that shows no CUDA GPU, or ``--gpus``
    naming a GPU it does not have."""
    wants = (device or "").startswith("cuda") or (bool(gpus) and device != "cpu")
    if not wants:
        return None
    asked = f"--device {device}" if (device or "").startswith("cuda") else "--gpus"
    count = visible_gpus()
    if not count:
        why = ("CUDA_VISIBLE_DEVICES hides every GPU" if count == 0 and os.environ.get("CUDA_VISIBLE_DEVICES") is not None
               else "this machine shows no CUDA GPU (no NVIDIA driver, nvidia-smi finds none)")
        return f"{asked}: {why}; use --device cpu (or --device auto: CUDA where there is one)"
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        count = len([d for d in chosen.split(",") if d.strip()])
    missing = sorted(g for g in gpus if g >= count)
    if missing:
        where = "CUDA_VISIBLE_DEVICES shows" if chosen is not None else "this machine has"
        return (f"--gpus {','.join(map(str, gpus))}: {where} {count} GPU(s), 0 to {count - 1}; "
                f"there is no GPU {', '.join(map(str, missing))}")
    return None
