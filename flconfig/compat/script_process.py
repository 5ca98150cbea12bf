"""The process a Client API script runs in, apart from its site:

    python -m flconfig.compat.script_process SCRIPT [ARGS...]   (what the site runs)

Its ``nvflare`` is flconfig's, and ``nvflare.client`` is FLARE's ``CellClientAPI``: the
client of the site's local channel (:mod:`flconfig.compat.remote`), whose address and token
the site passes in the environment.
"""

from __future__ import annotations

import os
import runpy
import sys

from . import client_session, install
from .nvflare.client.cell.api import CellClientAPI
from .remote import ENV


def main(argv: list[str] | None = None) -> int:
    """Run a Client API script in this process, its ``nvflare.client`` calls served by the site."""

    args = sys.argv[1:] if argv is None else argv
    address = os.environ.pop(ENV, "")
    if not args or not address:
        print("flconfig.compat.script_process: run by a flconfig site, with the script to run", file=sys.stderr)
        return 2
    install(force=True)  # the script talks to a flconfig site: its nvflare is flconfig's

    session = CellClientAPI(address)
    client_session.register(session)  # type: ignore[arg-type]
    script = args[0]
    sys.argv = [script, *args[1:]]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
