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

``--run`` (issue 22) then **runs**, unchanged, every runnable folder that validates clean
and whose data and packages are on this machine, under ``flconfig launch`` and, with
``--flare-venv DIR``, under FLARE's own simulator from that venv (``python -m
nvflare.private.fed.app.simulator.simulator JOB -w WS -n N -t N``, the same N sites; the
example setup's folder on ``PYTHONPATH`` where flconfig gets it with ``--python-path``), and
reports how many complete under each. A folder is left out, with the reason, when its code
imports a package that is not installed here or names an absolute path (a data file or
folder) that does not exist here; what each needs is listed. flconfig completes a job when
``flconfig launch`` exits 0; FLARE when its simulator exits 0 with nothing in any
participant's ``error_log.txt`` (FLARE's simulator exits 0 for many failed jobs).

    python benchmarks/flare_jobs.py --repo CLONE --example-path --run --flare-venv /tmp/flare-venv
"""

from __future__ import annotations

import argparse
import ast
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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


#: An absolute path written in a config or in job code: data a job reads (or a folder it writes).
ABSOLUTE_PATH = re.compile(r"^(/|~/)[\w.+-]+(/[\w.+-]*)*$")
#: Absolute paths that are not data: the machine's own folders.
SYSTEM_PATHS = ("/dev/", "/proc/", "/sys/", "/usr/", "/bin/", "/etc/")


def needs_here(folders: list[Path]) -> list[str]:
    """What a job's files need that this machine lacks: packages their Python code imports
    (anywhere in a file) that are not installed here, and absolute paths written in its
    configs or code (string values, not f-strings or ``{var}`` templates) that do not exist
    here. ``nvflare`` and modules of the job's own folders do not count."""
    from flconfig.registry.introspect import installed_location

    # the job's own modules and packages (namespace packages too), wherever they lie in it
    local = {p.stem if p.suffix == ".py" else p.name for f in folders for p in f.rglob("*")
             if p.suffix == ".py" or p.is_dir()}
    missing_packages: set[str] = set()
    paths: set[str] = set()
    for folder in folders:
        for file in sorted(folder.rglob("*")):
            if not file.is_file():
                continue
            if file.suffix == ".py":
                try:
                    tree = ast.parse(file.read_text(errors="replace"))
                except (SyntaxError, ValueError):
                    continue
                for node in ast.walk(tree):
                    names: list[str] = []
                    if isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module]
                    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                        paths.add(node.value)
                    for name in names:
                        top = name.split(".")[0]
                        if (top != "nvflare" and top not in local and top not in sys.stdlib_module_names
                                and installed_location(top) is None):
                            missing_packages.add(top)
            elif file.suffix in (".json", ".conf", ".yml", ".yaml") or file.name.endswith(".default"):
                paths.update(re.findall(r'"([^"\n]*)"', file.read_text(errors="replace")))
    missing_paths = sorted(p for p in paths if ABSOLUTE_PATH.match(p) and not p.startswith(SYSTEM_PATHS)
                           and not Path(p).expanduser().exists())
    return [f"package {p}" for p in sorted(missing_packages)] + [f"path {p}" for p in missing_paths]


def _tail(text: str) -> str:
    """The last line of a run's output that says what went wrong (or the last line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"(Error|Exception|failed|error)\b", line):
            return line[:240]
    return lines[-1][:240] if lines else ""


def _run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """(exit code, output, seconds) of ``command`` in a session of its own; at ``timeout`` the
    whole session (the tool's own child processes too) is killed and the code is None."""
    import signal

    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, env=env, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        try:  # what a finished run left behind goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        out.seek(0)
        return code, out.read(), round(time.monotonic() - started, 1)


def run_flconfig(job: Path, ws: Path, python_path: list[Path], timeout: float) -> dict[str, object]:
    """``flconfig launch JOB`` (with the example setup's ``--python-path``): completed when it exits 0."""
    command = [sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws)]
    for folder in python_path:
        command += ["--python-path", str(folder)]
    code, output, seconds = _run(command, timeout)
    why = "" if code == 0 else (f"timed out after {timeout:g} s" if code is None else _tail(output))
    return {"ok": code == 0, "seconds": seconds, "why": why}


def hidden_packages(names: list[str], folder: Path) -> list[Path]:
    """A folder to put first on FLARE's ``PYTHONPATH`` in which each of ``names`` fails to
    import as a package that is not installed (a broken install, such as a torchvision built
    for another torch, raises RuntimeError where FLARE's optional imports expect ImportError)."""
    if not names:
        return []
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n")
    return [folder]


def run_flare(venv: Path, job: Path, ws: Path, sites: list[str], named: bool, python_path: list[Path],
              timeout: float) -> dict[str, object]:
    """FLARE's simulator from ``venv`` on the same sites: completed when it exits 0 and no
    participant logged an error in its ``error_log.txt``."""
    command = [str(venv / "bin" / "python"), "-m", "nvflare.private.fed.app.simulator.simulator", str(job),
               "-w", str(ws), "-n", str(len(sites)), "-t", str(len(sites))]
    if named:
        command += ["-c", ",".join(sites)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in python_path)}
    code, output, seconds = _run(command, timeout, env)
    if code is None:
        return {"ok": False, "seconds": seconds, "why": f"timed out after {timeout:g} s"}
    errors = [line for log in sorted(ws.glob("*/error_log.txt"))
              for line in log.read_text(errors="replace").splitlines() if line.strip()]
    ok = code == 0 and not errors
    why = "" if ok else (_tail("\n".join(errors)) if errors else _tail(output))
    return {"ok": ok, "seconds": seconds, "why": why}


def run_clean_jobs(candidates: list[tuple[str, Path, list[Path], list[str], bool]], ns: argparse.Namespace,
                   tmp: Path) -> dict[str, object]:
    """Run each clean folder whose needs are met here under flconfig (and FLARE); the report."""
    needs: dict[str, list[str]] = {}
    results: dict[str, dict[str, object]] = {}
    for n, (where, job, python_path, sites, named) in enumerate(candidates):
        if ns.only and not re.search(ns.only, where):
            continue
        lacking = needs_here([job, *python_path])
        if lacking:
            needs[where] = lacking
            continue
        row: dict[str, object] = {"sites": len(sites)}
        row["flconfig"] = run_flconfig(job, tmp / f"run-{n:04d}-flconfig", python_path, ns.run_timeout)
        if ns.flare_venv is not None:
            hide = hidden_packages(ns.flare_hide, tmp / "flare-hidden")
            row["flare"] = run_flare(ns.flare_venv, job, tmp / f"run-{n:04d}-flare", sites, named,
                                     [*hide, *python_path], ns.run_timeout)
        results[where] = row
        print(f"{where}: flconfig {'completed' if row['flconfig']['ok'] else 'FAILED'}"  # type: ignore[index]
              + (f", FLARE {'completed' if row['flare']['ok'] else 'FAILED'}" if "flare" in row else ""),  # type: ignore[index]
              file=sys.stderr, flush=True)
    ran = len(results)
    by_need = collections.Counter(item.split(" ")[0] + " " + (item.split(" ", 1)[1] if item.startswith("package")
                                                              else "(a file or folder)")
                                  for items in needs.values() for item in set(items))
    flconfig_ok = [w for w, r in results.items() if r["flconfig"]["ok"]]  # type: ignore[index]
    flare_ok = [w for w, r in results.items() if "flare" in r and r["flare"]["ok"]]  # type: ignore[index]
    return {
        "clean_runnable": len(candidates),
        "needs_what_is_not_here": len(needs),
        "needs_by_kind": by_need.most_common(),
        "needs": needs,
        "ran": ran,
        "flconfig_completed": len(flconfig_ok),
        "flare_completed": len(flare_ok) if ns.flare_venv is not None else None,
        "both_completed": len(set(flconfig_ok) & set(flare_ok)),
        "only_flconfig": sorted(set(flconfig_ok) - set(flare_ok)) if ns.flare_venv is not None else None,
        "only_flare": sorted(set(flare_ok) - set(flconfig_ok)),
        "flconfig_failures": {w: r["flconfig"]["why"] for w, r in results.items()  # type: ignore[index]
                              if not r["flconfig"]["ok"]},  # type: ignore[index]
        "flare_failures": {w: r["flare"]["why"] for w, r in results.items()  # type: ignore[index]
                           if "flare" in r and not r["flare"]["ok"]},  # type: ignore[index]
        "runs": results,
    }


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
    parser.add_argument("--run", action="store_true",
                        help="run every runnable folder that validates clean and whose data and packages "
                             "are here, under flconfig launch (and FLARE's simulator with --flare-venv)")
    parser.add_argument("--flare-venv", type=Path, metavar="DIR",
                        help="with --run: a venv with nvflare installed, whose simulator runs the same folders")
    parser.add_argument("--flare-hide", action="append", default=[], metavar="PACKAGE",
                        help="with --flare-venv: a package of that venv FLARE's runs see as not installed "
                             "(one that is installed but broken there; repeatable)")
    parser.add_argument("--run-timeout", type=float, default=300.0, metavar="S",
                        help="with --run: seconds each run may take (default 300)")
    parser.add_argument("--only", metavar="REGEX", help="with --run: only the folders whose name matches")
    parser.add_argument("--run-report", type=Path, metavar="FILE",
                        help="with --run: write every run's result to this JSON file")
    ns = parser.parse_args()
    from flconfig.errors import errors_only
    from flconfig.validate.loader import inspect_job

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
    #: (where, folder, python path, client sites, named in deploy_map) of each runnable clean folder
    to_run: list[tuple[str, Path, list[Path], list[str], bool]] = []
    run_report: dict[str, object] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for n, (_digest, (where, files)) in enumerate(sorted(jobs.items(), key=lambda kv: kv[1][0])):
            dest = Path(tmp) / f"{n:04d}-{PurePosixPath(where).name}"
            write_job(ns.repo, files, dest)
            try:
                job, problems = inspect_job(dest)
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
                        job, with_path = inspect_job(dest, python_path=with_packages([path_dir], ns.packages))
                    except Exception:  # noqa: BLE001 - a crash is what this counts
                        crashed.append((where, traceback.format_exc(limit=3)))
                        continue
                    if not errors_only(with_path) and runnable(where, files):
                        clean_beside.append(where)
                        _note_unserved(unserved, where, with_path)
                        if job is not None:
                            to_run.append((where, dest, with_packages([path_dir], ns.packages),
                                           job.client_sites(), bool(job.meta.client_sites())))
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
                    if job is not None:
                        to_run.append((where, dest, [], job.client_sites(), bool(job.meta.client_sites())))
            if ns.list:
                print(f"{'clean' if not errors else 'ERRORS'}  {where}"
                      + "".join(f"\n    {p.code}: {p.message}" for p in errors[:3]))
        if ns.run:
            run_report = run_clean_jobs(to_run, ns, Path(tmp))
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
    if run_report is not None:
        runs = run_report.pop("runs")
        if ns.run_report:
            ns.run_report.write_text(json.dumps({**run_report, "runs": runs}, indent=1))
        result["run"] = run_report
    print(json.dumps(result, indent=2))
    if ns.dump:
        ns.dump.write_text(json.dumps(dump, indent=1))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
