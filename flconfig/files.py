"""Paths a config names: joined inside a folder, found inside one, written whole."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import JobError


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True if ``path``'s real location (links followed) lies inside the real ``root``."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (OSError, ValueError):
        return False


def inside(base: str | os.PathLike[str], relative: str) -> Path:
    """``base / relative``, resolved; ValueError if it leaves ``base``.

    Components join the folders and file names of their args to the run directory with
    it, so a path in a config can never write outside, whatever built the component.
    """
    root = Path(base).resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"{relative!r} leaves the run directory {root}")
    return path


def outside_file(ctx: Any, value: str, what: str) -> Path:
    """The file an argument names by absolute path outside the job (``what``: the argument,
    for the message), if the participant lets jobs read such files (``ctx.outside_files``:
    a run on the user's own machine does; a deployed server or site only where its kit says
    ``"allow_outside_files": true``). A path inside the participant's run folder is always
    allowed. Raises :class:`~flconfig.errors.JobError` saying so otherwise; the file is
    never opened to say it. A context that does not say is taken to allow nothing."""
    path = Path(value)
    if getattr(ctx, "outside_files", False):
        return path.expanduser()
    run_dir = getattr(ctx, "run_dir", None)
    if run_dir is not None and is_within(path, run_dir):
        return path.resolve()
    raise JobError(f"{what}: {value!r} is a file of this machine outside the job, and this participant "
                   "does not let jobs read such files (its operator can allow it with "
                   "\"allow_outside_files\": true in its kit)")


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The bytes go to a temporary file in the same folder, which is flushed to
    disk, given ``mode`` (``0o600``: this user only, for files holding tokens)
    and then renamed over ``path``. Raises ``OSError``; no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def find_script(custom: Path, wanted: Path) -> Path | None:
    """The file of ``custom`` whose path ends with ``wanted`` (FLARE's lookup), nearest the top;
    only a regular file that really lies inside ``custom`` (no link out).

    An absolute ``wanted`` (FLARE's ScriptRunner writes the script's absolute path when
    ``job.py`` gives one, and copies the file into ``custom/``) is that copy: the file of
    its name in ``custom`` (nearest the top), never the path itself."""
    if wanted.is_absolute():
        wanted = Path(wanted.name)
    if ".." in wanted.parts:
        return None
    root = custom.resolve()
    candidates = sorted(root.rglob(wanted.name), key=lambda p: (len(p.parts), str(p)))
    for path in candidates:
        if path.parts[-len(wanted.parts):] != wanted.parts or not path.is_file():
            continue
        real = path.resolve()
        if real == root or root in real.parents:
            return path
    return None


#: Interpreter options a Client API command may pass to Python (nothing that runs other code).
PYTHON_OPTIONS = ("-u", "-B", "-O", "-OO", "-E", "-s", "-I", "-q")


def python_command(command: str | list[str], custom: Path) -> tuple[list[str], Path, list[str]]:
    """``(options, script, args)`` of a Client API launch command such as
    ``python3 -u custom/train.py --epochs 2``: a Python interpreter, options from
    :data:`PYTHON_OPTIONS`, then a script that is a file inside ``custom`` (the path
    relative to the app folder, ``custom/x.py``, or to ``custom`` itself). Anything else
    raises ValueError saying why: a config never runs a program of its choosing."""
    import re
    import shlex

    tokens = shlex.split(command) if isinstance(command, str) else [str(t) for t in command]
    if not tokens:
        raise ValueError("the command is empty: give 'python3 -u custom/<script>.py ...'")
    if not re.fullmatch(r"python(\d+(\.\d+)?)?", Path(tokens[0]).name):
        raise ValueError(f"the command runs {tokens[0]!r}: flconfig runs only a Python script of the "
                         "app's custom/ folder ('python3 -u custom/<script>.py ...')")
    options: list[str] = []
    rest = tokens[1:]
    while rest and rest[0].startswith("-"):
        if rest[0] not in PYTHON_OPTIONS:
            raise ValueError(f"the command passes {rest[0]!r} to Python: not supported (only "
                             f"{', '.join(PYTHON_OPTIONS)}, then a script of custom/)")
        options.append(rest.pop(0))
    if not rest:
        raise ValueError("the command names no script: give 'python3 -u custom/<script>.py ...'")
    written, args = rest[0], rest[1:]
    root = custom.resolve()
    for base in (custom.parent, custom):
        candidate = (base / written).resolve()
        if candidate.is_file() and (root in candidate.parents):
            return options, candidate, args
    raise ValueError(f"the command's script {written!r} is not a file of the app's custom/ folder")


class FolderInUse(Exception):
    """Another process holds the folder's lock; ``holder`` is its pid, if it said."""

    def __init__(self, folder: Path, holder: int | None) -> None:
        super().__init__(str(folder))
        self.folder = folder
        self.holder = holder


def lock_folder(folder: Path, name: str) -> object:
    """Take the exclusive lock ``folder/name`` (made with the folder if missing) for as long
    as this process lives or until the returned handle is closed; the file holds our pid.
    Raises :class:`FolderInUse` when another process holds it, OSError when the folder
    cannot be made or written."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / name, "a+")  # noqa: SIM115 - held while the caller runs
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        text = handle.read().strip()
        handle.close()
        raise FolderInUse(folder, int(text) if text.isdigit() else None) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle

