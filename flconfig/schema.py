"""Moved to :mod:`flconfig.schemas`; this old path stays for one release."""

import sys

from . import schemas as _moved

sys.modules[__name__] = _moved
