"""Moved to :mod:`flconfig.config.job`; this old path stays for one release."""

import sys

from .config import job as _moved

sys.modules[__name__] = _moved
