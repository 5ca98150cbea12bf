"""flconfig's stand-in for the ``nvflare`` package, served as ``nvflare`` to job code when
FLARE is not installed (see :mod:`flconfig.compat`). It holds the part of FLARE's API that
training scripts and job code use; ``docs/flare-support.md`` lists what is there."""

#: True in flconfig's stand-in, absent from FLARE's own package.
FLCONFIG_COMPAT = True
