"""Experiment tracking: the components that carry metrics from a learner to the server's
files, and their machinery.

- :mod:`.senders`: ``AnalyticsSender``/``TBWriter`` (what a learner logs with) and
  ``ConvertToFedEvent``;
- :mod:`.receivers`: ``TBAnalyticsReceiver``, ``JsonLinesReceiver``, ``MLflowReceiver``;
- :mod:`.records`: the analytics record schema, checks of values at the call
  site (sender) and of records from the network (server);
- :mod:`.tb_files`: TensorBoard event files, one run folder per site;
- :mod:`.crc32c`: the checksum those files need, fast for many small records.

This package imports nothing heavy at import time (numpy,
Pillow and tensorboard are imported by the functions that need them).
"""
