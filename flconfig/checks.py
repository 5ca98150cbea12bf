"""Moved to :mod:`flconfig.validate.checks`; this old path stays for one release."""

import sys

from .validate import checks as _moved

sys.modules[__name__] = _moved
