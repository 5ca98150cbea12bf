"""Experiment tracking machinery behind :mod:`flconfig.components.tracking`.

- :mod:`.records`: the analytics record schema, checks of values at the call
  site (sender) and of records from the network (server);
- :mod:`.tb_files`: TensorBoard event files, one run folder per site;
- :mod:`.crc32c`: the checksum those files need, fast for many small records.

The component classes a config names (``TBWriter``, ``TBAnalyticsReceiver``
...) live in :mod:`flconfig.components.tracking`; this package imports
nothing heavy at import time (numpy, Pillow and tensorboard are imported by
the functions that need them).
"""
