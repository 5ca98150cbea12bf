"""Moved to :mod:`flconfig.transport.server`; this old path stays for one release."""

import sys

from ..transport import server as _moved

sys.modules[__name__] = _moved
