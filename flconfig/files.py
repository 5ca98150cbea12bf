"""Paths a config names: joined inside a folder, found inside one, written whole."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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
    only a regular file that really lies inside ``custom`` (no link out)."""
    if wanted.is_absolute() or ".." in wanted.parts:
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
