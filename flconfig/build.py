"""Moved to :mod:`flconfig.runtime.build`; this old path stays for one release."""

import sys

from .runtime import build as _moved

sys.modules[__name__] = _moved
