"""flconfig's stand-in for the ``nvflare`` package, served as ``nvflare`` to job code in
flconfig's processes, FLARE installed or not (see :mod:`flconfig.compat`). It holds the part of FLARE's API that
training scripts and job code use; ``docs/flare-support.md`` lists what is there."""

#: True in flconfig's stand-in, absent from FLARE's own package.
FLCONFIG_COMPAT = True

#: The version of FLARE's API this package follows.
__version__ = "2.9.0"

__all__ = ["FedJob", "FilterType"]


def __getattr__(name: str) -> object:
    """``from nvflare import FedJob, FilterType`` as in FLARE, imported on first use."""
    if name == "FedJob":
        from .job_config.api import FedJob

        return FedJob
    if name == "FilterType":
        from .job_config.defs import FilterType

        return FilterType
    raise AttributeError(f"module 'nvflare' has no attribute {name!r}")
