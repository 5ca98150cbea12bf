"""Moved to :mod:`flconfig.config.documents`; this old path stays for one release."""

import sys

from .config import documents as _moved

sys.modules[__name__] = _moved
