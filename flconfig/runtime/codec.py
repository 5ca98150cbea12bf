"""Moved to :mod:`flconfig.transport.codec`; this old path stays for one release."""

import sys

from ..transport import codec as _moved

sys.modules[__name__] = _moved
