"""Moved to :mod:`flconfig.registry.arg_schema`; this old path stays for one release."""

import sys

from .registry import arg_schema as _moved

sys.modules[__name__] = _moved
