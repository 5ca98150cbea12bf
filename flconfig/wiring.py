"""Moved to :mod:`flconfig.validate.wiring`; this old path stays for one release."""

import sys

from .validate import wiring as _moved

sys.modules[__name__] = _moved
