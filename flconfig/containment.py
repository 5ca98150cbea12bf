"""Moved to :mod:`flconfig.validate.containment`; this old path stays for one release."""

import sys

from .validate import containment as _moved

sys.modules[__name__] = _moved
