"""Job folders and results as zip archives, packed and unpacked as hostile input.

What the server unpacks comes from an admin, what a site unpacks from the
server: every name is checked (relative, no ``..``, no links, no device files),
and the total size and number of files are capped before and while extracting.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import FlconfigError

#: Folders never packed: caches and version control.
SKIPPED = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ipynb_checkpoints"})
MAX_FILES = 20_000
#: Errors of writing a member that its name causes, not the disk.
_MEMBER_ERRNOS = frozenset({errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG,
                            errno.EILSEQ, errno.EINVAL})


class ArchiveError(FlconfigError):
    """A folder that cannot be packed, or an archive that must not be unpacked."""


def pack_folder(folder: Path, *, max_bytes: int, skip: frozenset[str] = SKIPPED) -> bytes:
    """``folder``'s files as a zip (names relative to it); :class:`ArchiveError` for a
    link, a special file, or more than ``max_bytes`` of files."""
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in skip)
            for name in [*dirs, *sorted(files)]:
                path = Path(root) / name
                rel = path.relative_to(folder).as_posix()
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    raise ArchiveError(f"{path}: a link; a job folder is sent as plain files only")
                if stat.S_ISDIR(st.st_mode):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise ArchiveError(f"{path}: not a regular file")
                total += st.st_size
                if total > max_bytes:
                    raise ArchiveError(f"{folder}: more than {max_bytes // 2**20} MiB of files")
                zf.write(path, rel)
    return buf.getvalue()


def pack_files(files: dict[str, Path]) -> bytes:
    """A zip of ``files`` (archive name -> file), for downloads; missing files are skipped."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, path in sorted(files.items()):
            if path.is_file() and not path.is_symlink():
                zf.write(path, name)
    return buf.getvalue()


def safe_name(name: str) -> PurePosixPath:
    """``name`` as a relative path inside the archive's folder, or :class:`ArchiveError`."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or "\0" in name or path.is_absolute()
            or any(part in ("..", "") for part in path.parts) or name.startswith("/")):
        raise ArchiveError(f"archive member {name[:200]!r}: not a plain relative path")
    return path


def unpack(data: bytes, dest: Path, *, max_bytes: int, max_files: int = MAX_FILES) -> list[str]:
    """Extract the zip ``data`` into the new folder ``dest``; the names extracted.
    :class:`ArchiveError` (and nothing left behind but what was checked) for a bad archive."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"not a zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise ArchiveError(f"the archive holds {len(infos)} files, more than {max_files}")
        declared = 0
        for info in infos:
            safe_name(info.filename.rstrip("/") if info.is_dir() else info.filename)
            mode = info.external_attr >> 16
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ArchiveError(f"archive member {_shown(info.filename)}: not a plain file or folder")
            declared += info.file_size
        if declared > max_bytes:
            raise ArchiveError(f"the archive unpacks to {declared // 2**20} MiB, more than "
                               f"{max_bytes // 2**20} MiB")
        _check_layout(infos, dest)
        dest.mkdir(parents=True, exist_ok=False)
        try:
            return _extract(zf, infos, dest, max_bytes)
        except BaseException as exc:
            shutil.rmtree(dest, ignore_errors=True)  # nothing half-written is left behind
            if isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError)):
                raise ArchiveError(f"a damaged archive ({exc})") from None
            raise


def _shown(name: str) -> str:
    """A member's name for a message: quoted, and cut short when it is very long."""
    return repr(name) if len(name) <= 120 else f"{name[:100]!r}... ({len(name)} characters)"


def _check_layout(infos: list[zipfile.ZipInfo], dest: Path) -> None:
    """:class:`ArchiveError` naming the first member that cannot be written under ``dest``:
    a name given twice, a file that another member needs as a folder, a name (or a part
    of it) too long for the file system."""
    try:
        where = _existing(dest)
        name_max, path_max = os.pathconf(where, "PC_NAME_MAX"), os.pathconf(where, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    base = len(os.fsencode(str(dest.absolute()))) + 1
    seen: dict[tuple[str, ...], str] = {}
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}  # every folder a member needs -> the first such member
    for info in infos:
        name = info.filename
        parts = safe_name(name.rstrip("/")).parts
        for part in parts:
            if len(os.fsencode(part)) > name_max:
                raise ArchiveError(f"archive member {_shown(name)}: a name of {len(os.fsencode(part))} "
                                   f"bytes, longer than the {name_max} a file name may have")
        if base + len(os.fsencode("/".join(parts))) >= path_max:
            raise ArchiveError(f"archive member {_shown(name)}: its path is longer than the "
                               f"{path_max} bytes a path may have here")
        if parts in seen:
            if seen[parts].endswith("/") != name.endswith("/"):
                raise ArchiveError(f"archive member {_shown(name)}: the archive has "
                                   f"{_shown(seen[parts])} too: a file and a folder of one name")
            raise ArchiveError(f"archive member {_shown(name)}: given twice in the archive")
        seen[parts] = name
        (folders if info.is_dir() else files)[parts] = name
        for depth in range(1, len(parts)):
            folders.setdefault(parts[:depth], name)
    for parts, name in files.items():
        if parts in folders:
            raise ArchiveError(f"archive member {_shown(name)}: the archive has "
                               f"{_shown(folders[parts])} too: a file and a folder of one name")


def _existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists (for the file system's limits)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, max_bytes: int) -> list[str]:
    written = 0
    names = []
    for info in infos:
        target = dest.joinpath(*safe_name(info.filename.rstrip("/")).parts)
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:  # a member larger than it said
                        raise ArchiveError(f"the archive unpacks to more than {max_bytes // 2**20} MiB")
                    out.write(chunk)
        except OSError as exc:
            if exc.errno not in _MEMBER_ERRNOS:
                raise  # the disk's own fault (full, read-only): the caller says so
            # what the checks before could not see, e.g. two names one on a case-blind disk
            raise ArchiveError(f"archive member {_shown(info.filename)}: cannot be written here "
                               f"({exc.strerror or exc})") from None
        names.append(info.filename)
    return names
