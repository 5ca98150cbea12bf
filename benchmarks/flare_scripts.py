"""`flconfig run` over every job script in NVIDIA FLARE's examples (issue 22).

For each ref of a FLARE git repository, takes every ``.py`` under ``examples/`` that
authors a job with the Recipe API (imports ``nvflare.recipe`` or an ``*.recipes`` module)
or the Job API (builds a ``FedJob``/``ScriptRunner``/``*Job`` from ``job_config``) and runs
``flconfig run --check --keep DIR SCRIPT`` on it unchanged, from its folder, with FLARE
not installed. Each outcome is one of: ``valid`` (every job it built checked clean),
``invalid`` (the first error line), ``refused by flconfig's API`` (a one-line
``job.py:N: error:`` from flconfig's stand-ins), ``nvflare module not served``,
``needs package X``, ``downloads data``, ``needs prepared data``, ``needs arguments``,
``no job built``, ``script error`` (the last line) or ``timeout``.

With ``--run``, each script that checked valid and needs no data that cannot be had here
(no dataset download, no prepared data that a download makes) is run for real with
``flconfig run`` (its ``--synthetic_data`` switch given where it has one, a local
``prepare_data.sh`` run first): completed, failed (the last error line) or timeout.
Scripts that submit to ``ProdEnv`` need a provisioned deployment and are not run.

With ``--flare-venv DIR`` (a venv with FLARE installed), each script is also exported
with FLARE itself (``--export --export-dir``, with ``Recipe.run``, ``FedJob.simulator_run``
and ``export_job`` redirected to the export) and every job folder FLARE writes is checked
with ``flconfig validate``: how many of FLARE's own exports validate clean.

    python benchmarks/flare_scripts.py --repo /path/to/NVFlare.git [--refs main,2.8,2.7]
        [--run] [--timeout 600] [--flare-venv DIR] [--only SUBSTR] [--keep DIR] [--out results.json]
    python benchmarks/flare_scripts.py --from-json results.json   # the report again

Scripts run with ``PYTHONPATH`` = the script's folder, its three parents and any ``src/``
beside those (as FLARE's READMEs set it), ``HF_HUB_OFFLINE=1``, and the arguments a few
scripts cannot start without (``EXTRA_ARGS``). Prints a markdown table per script and the
totals per ref; ``--out`` writes them as JSON, after each script.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# -- the census (the rule of the earlier census in the FLARE job-API spec, section 8) ------------

RECIPE_IMPORT = re.compile(r"^\s*(from|import)\s+nvflare\.(recipe\b|app_(opt|common)\.[\w.]*recipes\b)"
                           r"|^\s*from\s+nvflare\.recipe", re.M)
JOB_BUILD = re.compile(r"\bFedJob\s*\(|\bScriptRunner\s*\(|\w+Job\s*\(")
JOB_IMPORT = re.compile(r"nvflare\.job_config|from nvflare import [^\n]*(FedJob|FilterType)|job_config\.api|FedJob\b")

_LLM = "tutorials/self-paced-training/part-4_advanced_federated_learning/chapter-8_federated_LLM_training"
#: Arguments a script cannot start without (paths relative to ``examples/``), as its README gives them.
EXTRA_ARGS: dict[str, list[str]] = {
    "advanced/client-api-attach/job.py": ["--startup_kit_location", "/tmp"],
    "advanced/recipe-k8s/job.py": ["--startup-kit", "/tmp"],
    "hello-world/hello-flower/job.py": ["--job_name", "flwr", "--content_dir", "."],
    "advanced/llm_hf/job.py": ["--client_ids", "dolly", "--train_mode", "SFT"],
    f"{_LLM}/08.2_llm_sft/job.py": ["--client_ids", "dolly", "--train_mode", "SFT"],
    f"{_LLM}/08.3_llm_peft/job.py": ["--client_ids", "dolly", "oasst1", "--train_mode", "PEFT"],
    f"{_LLM}/08.4_llm_quantization/job.py": ["--client_ids", "dolly", "--train_mode", "SFT",
                                              "--quantize_mode", "float16"],
}
#: Arguments added for --run so that a CPU finishes the job within --timeout (the script's own
#: options: fewer synthetic samples, fewer batches).
RUN_ARGS: dict[str, list[str]] = {
    "hello-world/hello-pt/job.py": ["--train_size", "2000", "--test_size", "500"],
    "hello-world/hello-lightning/job.py": ["--limit_batches", "20"],
}
#: A script's own switch for synthetic data: given where a script has it, so it needs no download.
OFFLINE_SWITCH = "--synthetic_data"

# -- what a script needs to run (read from its folder) ---------------------------------------------

#: Reading data from the network: a script whose folder does this is not run with --run.
DOWNLOADS = [
    ("CIFAR-10", re.compile(r"\bCIFAR10\s*\(")), ("MNIST", re.compile(r"\b(Fashion)?MNIST\s*\(")),
    ("a torchvision download", re.compile(r"download\s*=\s*True")),
    ("a Hugging Face dataset", re.compile(r"\bload_dataset\s*\(")),
    ("a Hugging Face model", re.compile(r"\.from_pretrained\s*\(|snapshot_download\s*\(")),
    ("Kaggle data", re.compile(r"\bkaggle\b")), ("HIGGS", re.compile(r"\bHIGGS\b")),
    ("a download (wget/curl)", re.compile(r"\bwget\b|\bcurl\b|urlretrieve|requests\.get\s*\(")),
    ("MONAI data", re.compile(r"monai\.apps|DecathlonDataset|MedNISTDataset")),
    ("the credit-card data set", re.compile(r"creditcard")),
]
PREPARE_SCRIPTS = ("prepare_data.sh", "download_data.sh", "prepare_data.py", "download_data.py",
                   "data_split.py")

# -- reading an outcome --------------------------------------------------------------------------------

ERROR_LINE = re.compile(r"^\S+:\d+(?::\d+)?: error: .*$", re.M)
REFUSAL = re.compile(r"^(\S+:\d+): error: (\w+): (.*)$")
NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'(.*)")
NO_NAME = re.compile(r"ImportError: cannot import name '(\w+)' from '(?:flconfig\.compat\.)?([\w.]+)'")
NETWORK = re.compile(r"URLError|urlopen error|Name or service not known|Temporary failure in name resolution"
                     r"|Failed to establish a new connection|HTTPS?ConnectionPool|LocalEntryNotFoundError"
                     r"|offline mode is enabled|HF_HUB_OFFLINE|couldn't connect to|Network is unreachable"
                     r"|ConnectTimeout|gaierror|Downloading https?://")
NO_FILE = re.compile(r"FileNotFoundError|No such file or directory|EmptyDataError|does not exist", re.I)
ARGS = re.compile(r"the following arguments are required|error: argument|error: unrecognized arguments")
CHECKED = re.compile(r"^flconfig: job (\S+) is valid, written to (.+); not (run|submitted) \(--check\)$", re.M)
NO_KIT = "(the job is only checked: --check)"

#: Check outcomes in the order the totals list them.
CATEGORIES = ["valid", "invalid", "refused by flconfig's API", "nvflare module not served",
              "nvflare name not served", "needs package", "downloads data", "needs prepared data",
              "needs arguments", "interactive prompt", "no job built", "script error", "timeout"]


@dataclass
class Proc:
    """One finished (or killed) process: exit code, output tails, seconds."""

    rc: int
    out: str
    err: str
    seconds: float
    timed_out: bool = False


@dataclass
class Script:
    """One job script and what became of it."""

    path: str  #: relative to examples/
    api: str  #: "recipe" or "job"
    args: list[str] = field(default_factory=list)
    cwd: str = "."  #: relative to the script's folder
    check: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    flare: dict[str, Any] = field(default_factory=dict)


def tail(text: str, n: int = 40000) -> str:
    return text[-n:]


def run_proc(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Proc:
    """Run ``cmd`` in a session of its own; on timeout, kill the whole session (sites included)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    try:  # whatever the script left running in its session (a site, a POC service)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return Proc(proc.returncode, tail(out), tail(err), round(time.monotonic() - start, 1), timed_out)


# -- census ------------------------------------------------------------------------------------------


def extract(repo: Path, ref: str, dest: Path) -> tuple[str, int]:
    """Write ``examples/`` of ``ref`` under ``dest``; (the ref's commit, files the repository
    lacks). Blob by blob rather than ``git archive``: a partial mirror lacks its largest
    blobs (data files), which archive refuses."""
    git = ["git", "-C", str(repo)]
    commit = subprocess.run([*git, "rev-parse", f"{ref}^{{commit}}"], capture_output=True, text=True,
                            check=True).stdout.strip()
    listing = subprocess.run([*git, "ls-tree", "-r", "-z", commit, "examples"], capture_output=True,
                             check=True).stdout.decode(errors="surrogateescape")
    files = []
    for entry in listing.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            files.append((parts[0], parts[2], path))
    batch = subprocess.run([*git, "cat-file", "--batch"], input="".join(f"{b}\n" for _, b, _ in files).encode(),
                           capture_output=True, check=True).stdout
    offset, missing = 0, 0
    for mode, _, path in files:
        header_end = batch.index(b"\n", offset)
        header = batch[offset:header_end].split()
        if header[-1] == b"missing":
            offset, missing = header_end + 1, missing + 1
            continue
        size = int(header[2])
        data = batch[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            target.symlink_to(data.decode(errors="surrogateescape"))
        else:
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    return commit, missing


def census(tree: Path) -> list[Script]:
    """The job scripts under ``tree/examples``."""
    found = []
    for path in sorted((tree / "examples").rglob("*.py")):
        src = path.read_text(errors="replace")
        rel = path.relative_to(tree / "examples").as_posix()
        if RECIPE_IMPORT.search(src):
            api = "recipe"
        elif JOB_BUILD.search(src) and (JOB_IMPORT.search(src) or "job_config" in src):
            api = "job"
        else:
            continue
        # a script with a switch for synthetic data gets it: it then needs no download
        script = Script(rel, api, args=[*EXTRA_ARGS.get(rel, []), *([OFFLINE_SWITCH] if OFFLINE_SWITCH in src else [])])
        # a script kept in src/ that names its files as "src/...": its README runs it from the parent
        if path.parent.name == "src" and re.search(r"[\"']src/", src):
            script.cwd = ".."
        found.append(script)
    return found


def python_path(folder: Path) -> list[str]:
    """The folder, its three parents and any ``src/`` beside those."""
    dirs = [folder, *list(folder.parents)[:3]]
    return [str(d) for d in dirs] + [str(d / "src") for d in dirs if (d / "src").is_dir()]


def example_files(script_path: Path) -> list[Path]:
    """The .py and .sh files of a script's example: its folder (and the parent of a job*/code/src/
    setup-* folder), two levels deep."""
    dirs = [script_path.parent]
    if script_path.parent.name.startswith(("job", "code", "src", "setup-")):
        dirs.append(script_path.parent.parent)
    files: list[Path] = []
    for d in dirs:
        files += [p for p in d.rglob("*") if p.suffix in (".py", ".sh") and len(p.relative_to(d).parts) <= 3]
    return files


def data_needs(script_path: Path, offline_switch: bool) -> tuple[list[str], Path | None]:
    """(what the example downloads, a local prepare_data.sh to run first) for --run."""
    files = example_files(script_path)
    prepare = next((p for p in files if p.name in PREPARE_SCRIPTS and p.parent in
                    (script_path.parent, script_path.parent.parent)), None)
    if offline_switch:
        return [], None
    text = "\n".join(p.read_text(errors="replace") for p in files)
    downloads = [name for name, pattern in DOWNLOADS if pattern.search(text)]
    if prepare is not None and not downloads and prepare.suffix != ".sh":
        downloads.append(f"data made by {prepare.name} (arguments unknown)")
    return downloads, (prepare if prepare is not None and prepare.suffix == ".sh" and not downloads else None)


# -- classification ---------------------------------------------------------------------------------


def local_module(name: str, folders: list[Path]) -> bool:
    """Whether the module ``name`` (dotted) is a file or package of the example itself."""
    rel = Path(*name.split("."))
    return any((d / rel.with_suffix(".py")).is_file() or (d / rel / "__init__.py").is_file() for d in folders)


def failure(proc: Proc, folders: list[Path]) -> tuple[str, str]:
    """(category, detail) of a script that stopped before its jobs checked clean."""
    if proc.timed_out:
        return "timeout", f"after {proc.seconds:.0f} s"
    text = proc.err + "\n" + proc.out
    lines = [ln.strip() for ln in proc.err.splitlines() if ln.strip()] or \
            [ln.strip() for ln in proc.out.splitlines() if ln.strip()] or [f"exit {proc.rc}"]
    if "flconfig run: the job is invalid" in proc.err or "the job is invalid" in proc.err:
        first = ERROR_LINE.search(proc.err)
        return "invalid", first.group(0) if first else lines[-1]
    missing = NO_MODULE.search(text)
    if missing:
        name = missing.group(1)
        if name.split(".")[0] == "nvflare":
            return "nvflare module not served", name
        top = name.split(".")[0]
        if local_module(name, folders):
            return "script error", f"its own module {top!r} is not importable: {missing.group(0)}"
        return "needs package", top
    no_name = NO_NAME.search(text)
    if no_name and no_name.group(2).startswith("nvflare"):
        return "nvflare name not served", f"{no_name.group(2)}.{no_name.group(1)}"
    if NETWORK.search(text):
        downloading = re.search(r"Downloading (https?://\S+)", text)
        return "downloads data", downloading.group(1) if downloading else next(
            (ln for ln in reversed(lines) if NETWORK.search(ln)), lines[-1])
    refusal = REFUSAL.match(lines[-1])
    if refusal and "Traceback" not in proc.err:
        return "refused by flconfig's API", lines[-1]
    if ARGS.search(proc.err):
        return "needs arguments", next((ln for ln in lines if ARGS.search(ln)), lines[-1])
    if "EOFError" in text:
        return "interactive prompt", lines[-1]
    if NO_FILE.search(lines[-1]):
        return "needs prepared data", lines[-1]
    return "script error", lines[-1]


def example_folders(script_path: Path) -> list[Path]:
    """Where a script's own modules live: its folder, the folders above it on its PYTHONPATH,
    and their subfolders two levels down."""
    roots = [Path(p) for p in python_path(script_path.parent)]
    return [*roots, *[d for r in roots[:2] for d in r.glob("*/") if d.is_dir()]]


def jobs_in(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("meta.json")) if folder.is_dir() else []


def validate(flconfig: list[str], folder: Path) -> tuple[bool, str]:
    """``flconfig validate`` of one job folder: (clean, its first error)."""
    proc = subprocess.run([*flconfig, "validate", "--format", "json", str(folder)], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return False, tail(proc.stderr or proc.stdout, 300).strip()
    errors = [p for p in report.get("problems", []) if p.get("severity") == "error"]
    if not errors:
        return True, ""
    first = errors[0]
    where = os.path.relpath(first["file"], folder) if first.get("file") else ""
    return False, f"{where}:{first.get('line', '')}: {first['code']}: {first['message']}"


# -- the three passes ---------------------------------------------------------------------------------


#: Folders put first on every script's PYTHONPATH (--packages).
PACKAGES: list[str] = []


def script_env(script_path: Path, extra: dict[str, str], *, own_folder: bool = True,
               packages: bool = True) -> dict[str, str]:
    """The environment a script runs in. ``own_folder=False`` leaves the script's folder off
    PYTHONPATH (``python job.py`` puts it on ``sys.path`` anyway): a real run's sites inherit
    PYTHONPATH, and there the job's modules must come from its ``custom/`` folder."""
    path = python_path(script_path.parent)
    if not own_folder:
        path = [p for p in path if p != str(script_path.parent)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([*(PACKAGES if packages else []), *path]))
    env.update(extra)
    return env


def do_check(script: Script, tree: Path, keep: Path, flconfig: list[str], timeout: float) -> None:
    path = tree / "examples" / script.path
    cwd = (path.parent / script.cwd).resolve()
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="flare-scripts-ws-") as ws:
        started = time.time()
        proc = run_proc([*flconfig, "run", "--check", "--keep", str(keep), str(path), *script.args], cwd,
                        script_env(path, {"NVFLARE_SIMULATOR_WORKSPACE_ROOT": ws,
                                          "FLCONFIG_POC_DIR": str(Path(ws) / "poc")}), timeout)
    envs = [m.group(3) for m in CHECKED.finditer(proc.out)]
    kept = jobs_in(keep)
    result: dict[str, Any] = {"rc": proc.rc, "seconds": proc.seconds, "jobs": len(kept),
                              "env": ("prod" if NO_KIT in proc.out else "sim" if "run" in envs else
                                      "submitted" if envs else "")}
    if proc.rc == 0 and not proc.timed_out and not kept:
        # a script that only exports (export_job / recipe.export) writes where it likes: find it
        exported = exported_by(proc.out, cwd) or [
            j for j in exported_since(tree / "examples", started) if keep not in j.parents]
        result["exported_only"] = True
        checks = [(j, *validate(flconfig, j)) for j in exported]
        bad = [f"{j.name}: {why}" for j, ok, why in checks if not ok]
        result["jobs"] = len(exported)
        result["category"], result["detail"] = (
            ("no job built", "exit 0, no job written") if not exported else
            ("invalid", bad[0]) if bad else ("valid", "exported only; the export validates clean"))
    elif proc.rc == 0 and not proc.timed_out:
        result["category"], result["detail"] = "valid", f"{len(kept)} job(s)"
    else:
        result["category"], result["detail"] = failure(proc, example_folders(path))
        errors = list(dict.fromkeys(m.group(0).split(": error: ", 1)[1] for m in ERROR_LINE.finditer(proc.err)))
        if errors:
            result["errors"] = [re.sub(r"/tmp/[\w./-]+?/(app\w*/)", r"\1", e)[:400] for e in errors[:12]]
    result["stdout"], result["stderr"] = proc.out[-2500:], proc.err[-2500:]
    script.check = result


def exported_since(root: Path, started: float) -> list[Path]:
    """Job folders written under ``root`` (or FLARE's /tmp/nvflare) since ``started``."""
    found = []
    for base in (root, Path("/tmp/nvflare/jobs")):
        if base.is_dir():
            found += [p.parent for p in base.rglob("meta.json") if p.stat().st_mtime >= started - 1]
    return sorted(set(found))


#: What FLARE's (and flconfig's) ``export_job`` prints: where the job folder was written.
EXPORTED_AT = re.compile(r"^job-config is at\s+(\S+)\s*$", re.M)


def exported_by(out: str, cwd: Path) -> list[Path]:
    """The job folders a script said it exported (``job-config is at PATH``)."""
    folders = [(cwd / m.group(1)).resolve() for m in EXPORTED_AT.finditer(out)]
    return sorted({f for f in folders if (f / "meta.json").is_file()})


def do_run(script: Script, tree: Path, flconfig: list[str], timeout: float) -> None:
    path = tree / "examples" / script.path
    src = path.read_text(errors="replace")
    check = script.check
    if check.get("category") != "valid":
        script.run = {"outcome": "not run", "detail": "check not valid"}
        return
    if check.get("exported_only"):
        script.run = {"outcome": "not run", "detail": "the script only exports a job"}
        return
    if check.get("env") == "prod" or (check.get("env") == "submitted" and "ProdEnv" in src and "PocEnv" not in src):
        script.run = {"outcome": "not run", "detail": "needs a provisioned deployment (ProdEnv)"}
        return
    downloads, prepare = data_needs(path, OFFLINE_SWITCH in script.args)
    if downloads:
        script.run = {"outcome": "not run", "detail": "needs data it downloads: " + ", ".join(downloads)}
        return
    cwd = (path.parent / script.cwd).resolve()
    src_args = set(re.findall(r"[\"'](--[\w-]+)[\"']", src))
    pairs = RUN_ARGS.get(script.path, [])
    args = [*script.args, *[a for opt, val in zip(pairs[::2], pairs[1::2], strict=True) if opt in src_args for a in (opt, val)]]
    with tempfile.TemporaryDirectory(prefix="flare-scripts-run-") as ws:
        env = script_env(path, {"NVFLARE_SIMULATOR_WORKSPACE_ROOT": ws, "FLCONFIG_POC_DIR": str(Path(ws) / "poc"),
                                "PATH": f"{Path(flconfig[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
                         own_folder=False)
        if prepare is not None:
            prep = run_proc(["bash", str(prepare)], prepare.parent, env, 300)
            if prep.rc != 0:
                script.run = {"outcome": "not run", "detail": f"{prepare.name} failed: "
                              + (prep.err.strip().splitlines() or ["?"])[-1]}
                return
        proc = run_proc([*flconfig, "run", str(path), *args], cwd, env, timeout)
        if (Path(ws) / "poc").is_dir():
            subprocess.run([*flconfig, "poc", "stop", "--dir", str(Path(ws) / "poc")], capture_output=True,
                           check=False, timeout=120)
    text = proc.out + proc.err
    status = re.findall(r"(?:Job )?Status(?: is)?: (\S+)", text)
    result: dict[str, Any] = {"rc": proc.rc, "seconds": proc.seconds, "args": args,
                              "prepared": prepare.name if prepare else "", "status": status[-1] if status else ""}
    bad_status = any(s.startswith(("FINISHED:EXECUTION_EXCEPTION", "FINISHED:ABORTED", "FAILED")) for s in status)
    if proc.timed_out:
        result["outcome"], result["detail"] = "timeout", f"after {proc.seconds:.0f} s"
    elif proc.rc == 0 and not bad_status:
        result["outcome"], result["detail"] = "completed", f"{proc.seconds:.0f} s"
    else:
        errors = [ln.strip() for ln in text.splitlines()
                  if re.search(r"error|exception|failed|Traceback", ln, re.I) and ln.strip()]
        result["outcome"] = "failed"
        result["detail"] = errors[-1] if errors else f"exit {proc.rc}, status {result['status']}"
    result["stdout"], result["stderr"] = proc.out[-3000:], proc.err[-3000:]
    script.run = result


#: Runs a job script under FLARE with its run redirected to an export into ``outdir``.
FLARE_EXPORT = r'''
import os, runpy, sys, warnings
script, outdir, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.argv = [script, *extra, "--export", "--export-dir", outdir]
warnings.simplefilter("ignore")
try:  # a torchvision wheel whose fake-op registration fails with this torch: make that non-fatal
    import torch.library as L
    _register_fake = L.register_fake
    def register_fake(op, *a, **k):
        if not (isinstance(op, str) and op.startswith("torchvision::")):
            return _register_fake(op, *a, **k)
        try:
            made = _register_fake(op, *a, **k)
        except Exception:
            return lambda f: f
        def deco(f):
            try:
                return made(f)
            except Exception:
                return f
        return deco if callable(made) else made
    L.register_fake = register_fake
except ImportError:
    pass
import nvflare.recipe.spec as spec  # reads --export / --export-dir
from nvflare.job_config.api import FedJob
from nvflare.recipe import prod_env
_export_job = FedJob.export_job
FedJob.export_job = lambda self, job_root=None, *a, **k: _export_job(self, outdir)
def simulator_run(self, *a, **k):
    _export_job(self, outdir)
    return 0
FedJob.simulator_run = simulator_run
def prod_init(self, startup_kit_location=None, *a, **k):  # no kit needed to export
    spec.ExecEnv.__init__(self, None)
    self.startup_kit_location = startup_kit_location
prod_env.ProdEnv.__init__ = prod_init
def run(self, env, *a, **k):
    self.export(outdir)
    raise SystemExit(0)
spec.Recipe.run = run
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
'''


def do_flare(script: Script, tree: Path, flare_python: Path, wrapper: Path, out: Path,
             flconfig: list[str], timeout: float) -> None:
    path = tree / "examples" / script.path
    cwd = (path.parent / script.cwd).resolve()
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="flare-scripts-flare-") as ws:
        proc = run_proc([str(flare_python), str(wrapper), str(path), str(out), *script.args], cwd,
                        script_env(path, {"NVFLARE_SIMULATOR_WORKSPACE_ROOT": ws}, packages=False), timeout)
    jobs = jobs_in(out)
    if not jobs:
        category, detail = failure(proc, example_folders(path))
        script.flare = {"exported": False, "category": category, "detail": detail, "stderr": proc.err[-1500:]}
        return
    checks = [(j, *validate(flconfig, j)) for j in jobs]
    bad = [f"{j.name}/{why}" for j, ok, why in checks if not ok]
    script.flare = {"exported": True, "jobs": len(jobs), "valid": not bad, "detail": bad[0] if bad else ""}


# -- the report --------------------------------------------------------------------------------------------


def totals(scripts: list[Script], ran: bool, flare: bool) -> dict[str, Any]:
    cats = collections.Counter(s.check.get("category", "not checked") for s in scripts)
    result: dict[str, Any] = {"scripts": len(scripts), "recipe": sum(s.api == "recipe" for s in scripts),
                              "job": sum(s.api == "job" for s in scripts),
                              "check": {c: cats[c] for c in [*CATEGORIES, "not checked"] if cats[c]},
                              "needs package": dict(collections.Counter(
                                  s.check["detail"] for s in scripts
                                  if s.check.get("category") == "needs package").most_common())}
    if ran:
        outcomes = collections.Counter(s.run.get("outcome", "not run") for s in scripts)
        why = collections.Counter(s.run["detail"].split(":")[0] for s in scripts
                                  if s.run.get("outcome") == "not run" and s.check.get("category") == "valid")
        result["run"] = dict(outcomes.most_common())
        result["valid but not run"] = dict(why.most_common())
    if flare:
        exported = [s for s in scripts if s.flare.get("exported")]
        result["flare exported"] = len(exported)
        result["flare exports flconfig-valid"] = sum(bool(s.flare.get("valid")) for s in exported)
    return result


def cell(text: str, n: int = 110) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def short(path: str) -> str:
    return path.replace("tutorials/self-paced-training/", "tut/")


def row(s: Script, ran: bool, flare: bool) -> str:
    check = s.check.get("category", "—")
    detail = s.check.get("detail", "")
    cells = [short(s.path) + (" " + " ".join(s.args) if s.args else "") + (" (from ..)" if s.cwd != "." else ""),
             s.api[0].upper(), check, cell(detail)]
    if ran:
        cells.append(cell(f"{s.run.get('outcome', '—')}: {s.run.get('detail', '')}", 90))
    if flare:
        f = s.flare
        cells.append("—" if not f else cell(
            (f"{f['jobs']} job(s), " + ("valid" if f["valid"] else f"invalid: {f['detail']}")) if f["exported"]
            else f"not exported: {f['category']}: {f['detail']}", 90))
    return "| " + " | ".join(cells) + " |"


def same(a: Script, b: Script) -> bool:
    return (a.check.get("category"), a.check.get("detail"), a.run.get("outcome"), a.flare.get("valid"),
            a.flare.get("exported")) == (b.check.get("category"), b.check.get("detail"), b.run.get("outcome"),
                                          b.flare.get("valid"), b.flare.get("exported"))


def report(results: dict[str, Any]) -> str:
    refs = results["refs"]
    ran, flare = results.get("run", False), bool(results.get("flare_venv"))
    out = ["| ref | scripts (Recipe/Job) | check valid | invalid | refused by API | nvflare not served | "
           "needs package | downloads data | needs prepared data | needs args | other script error | "
           "no job | timeout |" + (" run completed | run failed |" if ran else "")
           + (" FLARE exported | of those flconfig-valid |" if flare else ""),
           "|---" * (13 + 2 * ran + 2 * flare) + "|"]
    for ref, data in refs.items():
        t = data["totals"]
        c = t["check"]
        out.append(
            f"| {ref} | {t['scripts']} ({t['recipe']}/{t['job']}) | {c.get('valid', 0)} | {c.get('invalid', 0)} | "
            f"{c.get(CATEGORIES[2], 0)} | {c.get(CATEGORIES[3], 0) + c.get(CATEGORIES[4], 0)} | "
            f"{c.get('needs package', 0)} | {c.get('downloads data', 0)} | {c.get('needs prepared data', 0)} | "
            f"{c.get('needs arguments', 0)} | {c.get('script error', 0) + c.get('interactive prompt', 0)} | "
            f"{c.get('no job built', 0)} | {c.get('timeout', 0)} |"
            + (f" {t['run'].get('completed', 0)} | {t['run'].get('failed', 0) + t['run'].get('timeout', 0)} |"
               if ran else "")
            + (f" {t['flare exported']} | {t['flare exports flconfig-valid']} |" if flare else ""))
    first: dict[str, Script] = {}
    for n, (ref, data) in enumerate(refs.items()):
        scripts = [Script(**s) for s in data["scripts"]]
        t = data["totals"]
        out += ["", f"### {ref} ({data['commit'][:10]}): {t['scripts']} scripts", "",
                "Packages missing: " + (", ".join(f"{k} {v}" for k, v in t["needs package"].items()) or "none")]
        if ran:
            out.append("Valid but not run: " + (", ".join(f"{k} {v}" for k, v in t["valid but not run"].items())
                                                or "none"))
        shown = scripts if n == 0 else [s for s in scripts if s.path not in first or not same(s, first[s.path])]
        if n:
            out.append(f"Only the {len(shown)} scripts new on {ref} or whose outcome differs from "
                       f"{next(iter(refs))}:")
        out += ["", "| script (examples/…) | API | `flconfig run --check` | detail |"
                + (" `flconfig run` |" if ran else "") + (" FLARE 2.9 export → `flconfig validate` |" if flare else ""),
                "|---" * (4 + ran + flare) + "|"]
        out += [row(s, ran, flare) for s in shown]
        if n == 0:
            first = {s.path: s for s in scripts}
    return "\n".join(out)


def flconfig_version() -> str:
    """flconfig's commit, and how many files differ from it (the tree measured)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, check=False).stdout.splitlines()
    return head.stdout.strip() + (f" + {len(dirty)} changed files" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="a git repository (or bare git folder) of NVIDIA/NVFlare")
    parser.add_argument("--refs", default="main,2.8,2.7")
    parser.add_argument("--flare-venv", type=Path, metavar="DIR",
                        help="a venv with FLARE installed: also export each script with FLARE and validate that")
    parser.add_argument("--run", action="store_true", help="also run each valid script that needs no download")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each --run (default 600)")
    parser.add_argument("--check-timeout", type=float, default=120, help="seconds for each check or export")
    parser.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                        help="only the scripts whose path holds SUBSTR (repeatable)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each checked job under DIR/<ref>/<script> (FLARE's exports under "
                             "DIR/flare-export/<ref>/<script>)")
    parser.add_argument("--packages", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of packages put first on every script's PYTHONPATH (repeatable), "
                             "e.g. torchvision where flconfig's venv lacks it; not for the FLARE exports")
    parser.add_argument("--out", type=Path, help="write the results as JSON (after each script)")
    parser.add_argument("--from-json", type=Path, nargs="+", metavar="FILE",
                        help="print the report of earlier results (the refs of several files together)")
    ns = parser.parse_args()
    if ns.from_json:
        loaded = [json.loads(f.read_text()) for f in ns.from_json]
        merged = {**loaded[0], "refs": {r: d for one in loaded for r, d in one["refs"].items()}}
        print(report(merged))
        return 0
    if ns.repo is None:
        parser.error("--repo is required")
    PACKAGES[:] = [str(p.resolve()) for p in ns.packages]
    flconfig = [str(Path(sys.executable).with_name("flconfig"))]
    if not Path(flconfig[0]).exists():
        flconfig = [sys.executable, "-m", "flconfig"]
    flare_python = ns.flare_venv / "bin" / "python" if ns.flare_venv else None
    results: dict[str, Any] = {"benchmark": "flare_scripts", "repo": str(ns.repo), "run": ns.run,
                               "packages": PACKAGES, "argv": sys.argv[1:], "flconfig": flconfig_version(),
                               "flare_venv": str(ns.flare_venv or ""), "refs": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flare-scripts-") as tmp:
        keep_root = ns.keep or Path(tmp) / "keep"
        wrapper = Path(tmp) / "flare_export.py"
        wrapper.write_text(FLARE_EXPORT)
        for ref in [r for r in ns.refs.split(",") if r]:
            tree = Path(tmp) / ref
            commit, missing = extract(ns.repo, ref, tree)
            scripts = census(tree)
            print(f"{ref} ({commit[:10]}, {missing} blobs absent from the repository): {len(scripts)} job scripts "
                  f"({sum(s.api == 'recipe' for s in scripts)} Recipe, {sum(s.api == 'job' for s in scripts)} Job)",
                  file=sys.stderr, flush=True)
            chosen = [s for s in scripts if not ns.only or any(o in s.path for o in ns.only)]
            ref_started = time.monotonic()
            for n, script in enumerate(chosen, 1):
                ident = re.sub(r"[^\w.-]+", "--", short(script.path).removesuffix(".py"))[-90:]
                do_check(script, tree, keep_root / ref / ident, flconfig, ns.check_timeout)
                if ns.run:
                    do_run(script, tree, flconfig, ns.timeout)
                if flare_python:
                    do_flare(script, tree, flare_python, wrapper, keep_root / "flare-export" / ref / ident, flconfig,
                             ns.check_timeout)
                print(f"[{ref} {n}/{len(chosen)}] {script.path}: {script.check['category']}: "
                      f"{script.check['detail'][:150]}"
                      + (f" | run {script.run.get('outcome')}: {script.run.get('detail', '')[:100]}" if ns.run else "")
                      + (f" | FLARE {'exported' if script.flare.get('exported') else 'not exported'}"
                         f"{', valid' if script.flare.get('valid') else ''}" if flare_python else ""),
                      file=sys.stderr, flush=True)
                results["refs"][ref] = {"commit": commit, "absent_blobs": missing,
                                        "seconds": round(time.monotonic() - ref_started),
                                        "totals": totals(chosen[:n], ns.run, bool(flare_python)),
                                        "scripts": [asdict(s) for s in chosen[:n]]}
                if ns.out:
                    ns.out.write_text(json.dumps(results, indent=1))
            shutil.rmtree(tree, ignore_errors=True)
    results["seconds"] = round(time.monotonic() - started)
    if ns.out:
        ns.out.write_text(json.dumps(results, indent=1))
    print(report(results))
    print(json.dumps({ref: d["totals"] for ref, d in results["refs"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
