"""Moved to :mod:`flconfig.types`; this old path stays for one release."""

import sys

from . import types as _moved

sys.modules[__name__] = _moved
