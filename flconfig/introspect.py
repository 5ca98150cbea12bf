"""Moved to :mod:`flconfig.registry.introspect`; this old path stays for one release."""

import sys

from .registry import introspect as _moved

sys.modules[__name__] = _moved
