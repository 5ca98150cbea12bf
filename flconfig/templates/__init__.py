"""Job templates for ``flconfig init``: folders that validate and launch as created.

Each template is a folder beside this module, copied as it is into the new job's folder;
only the job's name changes (the meta's ``name``, a recipe's ``name=``), to the new
folder's name. The folders are package data: nothing in them is imported here.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import did_you_mean

HERE = Path(__file__).resolve().parent

#: What a template's files are written in: the format ``flconfig init --format`` names.
FORMATS = ("json", "yaml", "hocon", "python")


@dataclass(frozen=True)
class Template:
    """A job ``flconfig init`` can start from."""

    name: str
    #: One line: what the job does.
    summary: str
    #: Format -> the folder (beside this module) written in it; the first is the default.
    folders: dict[str, str]
    #: What to run next, ``{dir}`` standing for the new folder.
    next_steps: tuple[str, ...]

    def folder(self, fmt: str | None) -> Path:
        """The template's folder in ``fmt`` (None: its first); KeyError if it has none."""
        return HERE / self.folders[fmt or next(iter(self.folders))]


_CONFIG_STEPS = ("flconfig validate {dir}", "flconfig explain {dir}", "flconfig launch {dir}")

TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template("fedavg-tensorboard",
             "FedAvg on PyTorch (a small CNN on scikit-learn's digits), every site's metrics "
             "streamed to TensorBoard on the server; FLARE's component paths",
             {"json": "fedavg-tensorboard", "yaml": "fedavg-tensorboard-yaml"}, _CONFIG_STEPS),
    Template("client-api",
             "FedAvg with a training script written against FLARE's Client API "
             "(custom/train.py), metrics to TensorBoard; HOCON configs",
             {"hocon": "client-api"}, _CONFIG_STEPS),
    Template("numpy",
             "FLARE's hello-numpy: FedAvg of a NumPy array, then cross-site evaluation; "
             "no torch needed",
             {"json": "numpy"}, _CONFIG_STEPS),
    Template("recipe",
             "a FLARE Recipe API script (job.py with FedAvgRecipe and TensorBoard tracking, "
             "client.py written against the Client API, model.py)",
             # The script names client.py relative to the folder it runs in, as FLARE's do.
             {"python": "recipe"}, ("cd {dir} && flconfig run job.py", "cd {dir} && flconfig run job.py --export")),
)}

DEFAULT_TEMPLATE = "fedavg-tensorboard"


class TemplateError(ValueError):
    """A template or format that does not exist, or a folder that cannot take a new job."""


def create(template: str, dest: Path, fmt: str | None = None) -> list[Path]:
    """Write ``template`` (in ``fmt``) into the new folder ``dest``, named after it; the
    files written. TemplateError for an unknown template or format, or a ``dest`` that is
    a file or a folder with something in it."""
    found = TEMPLATES.get(template)
    if found is None:
        close = did_you_mean(template, TEMPLATES)
        raise TemplateError(f"no template {template!r}" + (f": {close}" if close else "") +
                            f" (the templates: {', '.join(TEMPLATES)}; flconfig init --list says what each is)")
    if fmt is not None and fmt not in found.folders:
        raise TemplateError(f"template {template!r} is written in {' or '.join(found.folders)}, "
                            f"not {fmt}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        what = "a file" if not dest.is_dir() else "a folder with files in it"
        raise TemplateError(f"{dest} is {what}: give a new or empty folder")
    source = found.folder(fmt)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    _rename(dest, job_name(dest))
    return written


def job_name(dest: Path) -> str:
    """The new job's name: its folder's, reduced to letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", dest.resolve().name).strip("-.") or "job"
    return name if name[0].isalnum() else f"job-{name}"


def _rename(dest: Path, name: str) -> None:
    """Give the job in ``dest`` the name ``name``, in whatever file names it."""
    meta_json = dest / "meta.json"
    if meta_json.is_file():
        meta = json.loads(meta_json.read_text())
        meta["name"] = name
        meta_json.write_text(json.dumps(meta, indent=2) + "\n")
    for meta_file, pattern, line in (
            (dest / "meta.yaml", r"^name: .*$", f"name: \"{name}\""),
            (dest / "meta.conf", r'^(\s*)name = ".*"$', rf'\g<1>name = "{name}"'),
            (dest / "job.py", r'^(\s*)name="[^"]*",$', rf'\g<1>name="{name}",')):
        if meta_file.is_file():
            text = meta_file.read_text()
            meta_file.write_text(re.sub(pattern, line, text, count=1, flags=re.MULTILINE))
