"""Moved to :mod:`flconfig.config.variables`; this old path stays for one release."""

import sys

from .config import variables as _moved

sys.modules[__name__] = _moved
