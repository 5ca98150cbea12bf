"""What belongs to a job: files whose real location lies inside the job folder.

A config may name classes in the job's ``custom/`` folder, and flconfig
imports them at run time. "Custom" must therefore mean *this job's own
code*, judged by where a file really is, not by the path it is reached
through: a ``custom/`` that is a symbolic link to the standard library would
otherwise make ``subprocess.Popen`` a "custom" class.

:func:`check_path` and :func:`check_custom_dir` report, as errors naming the link:

- an app folder, a ``config/`` folder, a config file, a meta file or a
  ``custom/`` folder that is a symbolic link whose target leaves the job
  folder;
- anything inside ``custom/`` that is a symbolic link leaving the job folder;
- a file inside ``custom/`` with hard links outside the job folder (its link
  count is higher than the number of names it has inside the job folder).

Links that stay inside the job folder are fine. Nothing here reads a file's
contents.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ..errors import Position, Problem, display_path
from ..files import is_within

#: Most files of a job folder counted when looking for hard links (a job is small).
#: Names beyond it are not counted, so a hard link among them is refused, never let
#: through.
MAX_JOB_ENTRIES = 100_000



def _link_problem(link: Path, what: str, root: Path) -> Problem:
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return Problem(
        "error", "link-outside-job",
        f"{what} is a symbolic link to {target}, outside the job folder",
        Position(display_path(link)),
        hint=f"copy the files into {display_path(root)} instead of linking to them; "
             "flconfig runs only code that lies inside the job folder",
    )  # fmt: skip


def check_path(path: Path, what: str, root: Path) -> list[Problem]:
    """An error if ``path`` (or a link on the way to it below ``root``) leads outside ``root``."""
    if not os.path.lexists(path):
        return []
    if is_within(path, root):
        return []
    # Name the first component that is a link, so the user knows what to fix.
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return [_link_problem(path, what, root)]
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink() and not is_within(current, root):
            return [_link_problem(current, what, root)]
    return [_link_problem(path, what, root)]


def _inode_counts(root: Path) -> Counter[tuple[int, int]]:
    """How many names each (device, inode) of a regular file has inside ``root``."""
    counts: Counter[tuple[int, int]] = Counter()
    seen = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            seen += 1
            if seen > MAX_JOB_ENTRIES:
                return counts
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                counts[(st.st_dev, st.st_ino)] += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    return counts


def check_custom_dir(custom: Path, root: Path) -> list[Problem]:
    """Errors for links in (or of) a ``custom/`` folder that leave the job folder ``root``."""
    problems = check_path(custom, "the custom/ folder", root)
    if problems or not custom.is_dir():
        return problems
    inside: Counter[tuple[int, int]] | None = None
    for folder, dirs, files in os.walk(custom, followlinks=False):
        base = Path(folder)
        for name in [*dirs, *files]:
            entry = base / name
            if entry.is_symlink():
                if not is_within(entry, root):
                    problems.append(_link_problem(entry, f"{display_path(entry)} in custom/", root))
                continue
            if name in files:
                try:
                    st = entry.lstat()
                except OSError:
                    continue
                if st.st_nlink > 1:
                    if inside is None:
                        inside = _inode_counts(root)
                    if inside[(st.st_dev, st.st_ino)] < st.st_nlink:
                        problems.append(Problem(
                            "error", "link-outside-job",
                            f"{display_path(entry)} is a hard link to a file outside the job folder "
                            f"({st.st_nlink} links, {inside[(st.st_dev, st.st_ino)]} of them inside)",
                            Position(display_path(entry)),
                            hint="copy the file instead of hard-linking it; flconfig runs only "
                                 "code that lies inside the job folder",
                        ))  # fmt: skip
        # Do not descend through links (those inside the job are walked where they point).
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    return problems

