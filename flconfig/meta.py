"""Moved to :mod:`flconfig.config.meta`; this old path stays for one release."""

import sys

from .config import meta as _moved

sys.modules[__name__] = _moved
