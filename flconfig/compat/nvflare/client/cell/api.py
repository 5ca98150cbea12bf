"""FLARE's ``nvflare.client.cell.api``: ``CellClientAPI``, the Client API a training script
started in a process of its own talks through (``execution_mode = "external_process"``).

In flconfig that process talks to its site over the authenticated local channel of
:mod:`flconfig.compat.remote`, and this class is that channel's client: the object behind
``nvflare.client`` in the script's process. FLARE's private hooks that scripts wrap (its
tests patch ``_install_site_auth_headers``) are kept as no-ops: the channel's token is
checked when the process connects.
"""

from __future__ import annotations

from typing import Any

from ....remote import RemoteSession


class CellClientAPI(RemoteSession):
    """The Client API of a script in a process of its own (see the module docstring)."""

    def _install_site_auth_headers(self, secure_mode: Any, auth_token: Any = None,
                                   token_signature: Any = None) -> None:
        """FLARE installs its cell's authentication headers here; flconfig's channel was
        authenticated when the process connected, so there is nothing to install."""

    def shutdown(self) -> None:
        """Close the channel to the site (the script's process is ending)."""
        self.close()


__all__ = ["CellClientAPI"]
