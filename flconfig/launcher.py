"""Moved to :mod:`flconfig.launch.launcher`; this old path stays for one release."""

import sys

from .launch import launcher as _moved

sys.modules[__name__] = _moved
