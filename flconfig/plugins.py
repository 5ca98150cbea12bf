"""Moved to :mod:`flconfig.registry.plugins`; this old path stays for one release."""

import sys

from .registry import plugins as _moved

sys.modules[__name__] = _moved
