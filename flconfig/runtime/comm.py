"""Moved to :mod:`flconfig.transport.contract`; this old path stays for one release."""

import sys

from ..transport import contract as _moved

sys.modules[__name__] = _moved
