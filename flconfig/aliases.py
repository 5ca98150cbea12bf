"""Moved to :mod:`flconfig.registry.aliases`; this old path stays for one release."""

import sys

from .registry import aliases as _moved

sys.modules[__name__] = _moved
