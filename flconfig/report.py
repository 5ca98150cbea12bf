"""Moved to :mod:`flconfig.cli.report`; this old path stays for one release."""

import sys

from .cli import report as _moved

sys.modules[__name__] = _moved
