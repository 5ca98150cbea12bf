"""Moved to :mod:`flconfig.transport.client`; this old path stays for one release."""

import sys

from ..transport import client as _moved

sys.modules[__name__] = _moved
