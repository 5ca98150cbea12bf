"""`flconfig validate` over every job folder in NVIDIA FLARE's history (issue 9's bar).

Collects each job folder (a folder holding ``meta.json``/``meta.conf``/``meta.yml``) on
the given branches of a FLARE git repository, drops duplicates by content and the
folders that are not runnable jobs (``job_templates``, FLARE's own meta-validator test
fixtures), writes each to a temporary folder and checks it as ``flconfig validate``
does. Reports how many validate clean, how many have errors, whether any check
crashed, and the most common problems (by code and message pattern), which says
what to build next.

    python benchmarks/flare_jobs.py --repo /path/to/NVFlare.git [--branches 2.4,2.5,2.6,main]

Issue 9's bar: at least 130 of the 220 runnable job folders validate clean, none crashes.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

META_NAMES = ("meta.json", "meta.conf", "meta.yml", "meta.yaml")
#: Folders under these are not runnable jobs.
NOT_JOBS = re.compile(r"(^|/)(job_templates|test_configs|meta_validator|data/jobs/.*_invalid)(/|$)")
#: FLARE's job-validator fixtures: job folders broken on purpose (and a few valid ones) that
#: FLARE's unit tests submit; they are counted, but not among the runnable jobs.
VALIDATOR_FIXTURES = re.compile(r"(^|/)tests/unit_test/data/jobs/")


def runnable(where: str, files: list[tuple[str, str]]) -> bool:
    """A job FLARE could run as stored: not a validator fixture, and it has an app config
    (some example folders hold only a meta file, their apps made by a script)."""
    root = where.partition(":")[2]
    return not VALIDATOR_FIXTURES.search(root + "/") and any(
        re.search(r"(^|/)config/config_fed_(client|server)\.", path) for _, path in files)


def with_packages(python_path: list[Path], packages: Path | None) -> list[Path]:
    """The example's python path, plus the folder of installed packages if one was given."""
    return [*python_path, packages] if packages is not None else python_path


def tree(repo: Path, branch: str) -> list[tuple[str, str]]:
    """(blob, path) of every file on ``branch``."""
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", branch], capture_output=True,
                         text=True, check=False).stdout
    files = []
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            files.append((parts[2], path))
    return files


def job_folders(repo: Path, branches: list[str]) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Content hash -> (where, [(blob, path inside the job)]) of each distinct job folder."""
    jobs: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for branch in branches:
        files = tree(repo, branch)
        roots = sorted({str(PurePosixPath(p).parent) for _, p in files
                        if PurePosixPath(p).name in META_NAMES and not NOT_JOBS.search(p)})
        for root in roots:
            prefix = root + "/"
            inside = sorted((b, p[len(prefix):]) for b, p in files if p.startswith(prefix))
            # a job folder nested in another one is its own job: leave its files to it
            inside = [(b, p) for b, p in inside
                      if not any(p.startswith(r[len(prefix):] + "/") for r in roots
                                 if r != root and r.startswith(prefix))]
            digest = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
            jobs.setdefault(digest, (f"{branch}:{root}", inside))
    return jobs


def beside_the_job(branch_files: list[tuple[str, str]], root: str,
                   modules: set[str]) -> list[tuple[str, str]]:
    """The Python files FLARE's example instructions put on ``PYTHONPATH`` for a job at ``root``.

    FLARE's examples keep learners and networks in a package beside the job (``pt/``,
    ``learners/``, ...) and their READMEs say ``export PYTHONPATH=...`` to the folder that
    holds it (``src/`` in condist-fl's start script), or ``cp -r custom/ job_configs/JOB/app/``
    from a ``custom/`` folder beside the jobs (the prostate and brats examples). For each
    top-level package in ``modules``, the nearest folder above the job that holds it (itself,
    or in its ``custom/`` or ``src/``) is taken; its
    ``.py`` files are returned as (blob, path from that folder).
    """
    found: list[tuple[str, str]] = []
    for top in sorted(modules):
        folder = PurePosixPath(root).parent
        while str(folder) not in ("", "."):
            for prefix in (f"{folder}/", f"{folder}/custom/", f"{folder}/src/"):
                if any(p.startswith(f"{prefix}{top}/") or p == f"{prefix}{top}.py" for _, p in branch_files):
                    break
            package = [(b, p[len(prefix):]) for b, p in branch_files if p.startswith(f"{prefix}{top}/")
                       and p.endswith(".py")]
            module = [(b, p[len(prefix):]) for b, p in branch_files if p == f"{prefix}{top}.py"]
            if package or module:
                found.extend(package or module)
                break
            folder = folder.parent
    return found


def write_job(repo: Path, files: list[tuple[str, str]], dest: Path) -> None:
    blobs = "\n".join(b for b, _ in files) + "\n"
    out = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"], input=blobs.encode(),
                         capture_output=True, check=True).stdout
    offset = 0
    for _, path in files:
        header_end = out.index(b"\n", offset)
        size = int(out[offset:header_end].split()[2])
        data = out[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def pattern(message: str) -> str:
    """A problem's message with its names taken out, to count alike problems together."""
    message = re.sub(r" at /\S+", "", message)  # a position inside the temporary folder
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", message)[:110]


def _note_unserved(unserved: dict[str, list[str]], where: str, problems: list) -> None:
    """Record the FLARE imports of a clean job's code that flconfig does not serve yet
    (validate's ``flare-api-not-supported`` warnings): such a job validates but fails
    when a site imports that code."""
    found = [re.sub(r" at /\S+", "", p.message).split(", but")[0] for p in problems
             if p.code == "flare-api-not-supported"]
    if found:
        unserved[where] = found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a git repository of NVIDIA/NVFlare")
    parser.add_argument("--branches", default="2.4,2.5,2.6,HEAD")
    parser.add_argument("--top", type=int, default=25, help="how many problem patterns to list")
    parser.add_argument("--list", action="store_true", help="print each job's result")
    parser.add_argument("--dump", type=Path, help="write every job's errors to this JSON file")
    parser.add_argument("--example-path", action="store_true",
                        help="also check each job that names modules beside it with --python-path "
                             "set to the example folder, as FLARE's example READMEs set PYTHONPATH")
    parser.add_argument("--packages", type=Path, metavar="DIR",
                        help="with --example-path: a folder of the packages the examples' "
                             "requirements name (pip install --no-deps --target DIR monai), on the "
                             "python path of every job that names a module outside it, as FLARE "
                             "finds them installed")
    ns = parser.parse_args()
    from flconfig.config.job import inspect_job
    from flconfig.errors import errors_only

    branches = [b for b in ns.branches.split(",") if b]
    jobs = job_folders(ns.repo, branches)
    trees = {branch: tree(ns.repo, branch) for branch in branches} if ns.example_path else {}
    clean_beside: list[str] = []
    beside_errors: dict[str, list] = {}
    clean, failing, crashed = [], [], []
    by_pattern: collections.Counter[str] = collections.Counter()
    jobs_by_pattern: dict[str, set[str]] = collections.defaultdict(set)
    dump: dict[str, dict[str, object]] = {}
    runnable_jobs: list[str] = []
    #: jobs that validate clean but whose code imports FLARE API flconfig does not serve yet
    unserved: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (_digest, (where, files)) in enumerate(sorted(jobs.items(), key=lambda kv: kv[1][0])):
            dest = Path(tmp) / f"{n:04d}-{PurePosixPath(where).name}"
            write_job(ns.repo, files, dest)
            try:
                _, problems = inspect_job(dest)
            except Exception:  # noqa: BLE001 - a crash is what this counts
                crashed.append((where, traceback.format_exc(limit=3)))
                continue
            errors = errors_only(problems)
            outside = {p.message.split("'")[1].split(".")[0] for p in errors
                       if p.code == "path-not-allowed" and p.message.count("'") >= 2}
            if ns.example_path and outside:
                branch, _, root = where.partition(":")
                beside = beside_the_job(trees[branch], root, outside)
                if beside or ns.packages is not None:
                    path_dir = Path(tmp) / f"{n:04d}-pythonpath"
                    path_dir.mkdir()
                    write_job(ns.repo, beside, path_dir)
                    try:
                        _, with_path = inspect_job(dest, python_path=with_packages([path_dir], ns.packages))
                    except Exception:  # noqa: BLE001 - a crash is what this counts
                        crashed.append((where, traceback.format_exc(limit=3)))
                        continue
                    if not errors_only(with_path) and runnable(where, files):
                        clean_beside.append(where)
                        _note_unserved(unserved, where, with_path)
                    beside_errors[where] = errors_only(with_path)
            is_runnable = runnable(where, files)
            if is_runnable:
                runnable_jobs.append(where)
            dump[where] = {"runnable": is_runnable,
                           "errors": [{"code": p.code, "message": p.message,
                                       "where": str(p.position or "")}
                                      for p in beside_errors.get(where, errors)]}
            if errors:
                failing.append(where)
                for found in {f"{p.code}: {pattern(p.message)}" for p in errors}:
                    by_pattern[found] += 1
                    jobs_by_pattern[found].add(where)
            else:
                clean.append(where)
                if is_runnable:
                    _note_unserved(unserved, where, problems)
            if ns.list:
                print(f"{'clean' if not errors else 'ERRORS'}  {where}"
                      + "".join(f"\n    {p.code}: {p.message}" for p in errors[:3]))
    result = {
        "benchmark": "flare_jobs",
        "branches": ns.branches,
        "job_folders": len(jobs),
        "runnable": len(runnable_jobs),
        "clean": len(clean),
        "runnable_clean": len(set(clean) & set(runnable_jobs)),
        "runnable_clean_with_example_path": (
            len(set(clean) & set(runnable_jobs)) + len(clean_beside) if ns.example_path else None),
        "with_errors": len(failing),
        "crashed": len(crashed),
        "crashes": [c for c in crashed[:5]],
        "top_problems": [{"jobs": count, "problem": name} for name, count in by_pattern.most_common(ns.top)],
        "clean_but_unserved_flare_imports": len(unserved),
        "unserved_flare_imports": collections.Counter(
            m for ms in unserved.values() for m in set(ms)).most_common(ns.top),
        "bar": {"clean": 130, "crashed": 0},
        "pass": len(set(clean) & set(runnable_jobs)) >= 130 and not crashed,
    }
    print(json.dumps(result, indent=2))
    if ns.dump:
        ns.dump.write_text(json.dumps(dump, indent=1))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
