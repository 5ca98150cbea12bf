"""Which folders hold a job script's own modules: the script's folder (``flconfig run``
sets it) and the working folder. What is imported from them is the job's ``custom/`` code,
not an installed package."""

from __future__ import annotations

import sys
from pathlib import Path

#: The folder of the job script being run (``flconfig run`` sets it); its modules, and the
#: working folder's, are the job's own.
SCRIPT_DIR: list[Path] = []


def job_roots() -> list[Path]:
    """Folders whose modules are the job's own: the job script's and the working folder."""
    roots = list(SCRIPT_DIR)
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if not roots and main_file:
        roots.append(Path(main_file).resolve().parent)
    roots.append(Path.cwd().resolve())
    return list(dict.fromkeys(roots))
