"""Experiment tracking: the components that carry metrics from a learner to the server's
files, and their machinery.

- :mod:`.senders`: ``AnalyticsSender``/``TBWriter`` (what a learner logs with), and
  the MLflow and W&B flavors; :mod:`.drainer`: the one thread of a process that drains
  every sender's queue; :mod:`.flare_log`: FLARE's ``log`` calls as a sender's records;
- :mod:`.convert`: ``ConvertToFedEvent`` (local events re-fired as federated ones);
- :mod:`.receivers`: ``TBAnalyticsReceiver``, ``JsonLinesReceiver``, ``MLflowReceiver``,
  ``WandBReceiver``;
- :mod:`.records`: the analytics record format, its limits, and the check of a record
  from the network (server);
- :mod:`.logged_values`: what a learner logs, checked at the call and made record
  values; :mod:`.images` and :mod:`.histograms`: arrays and tensors as image and
  histogram values;
- :mod:`.tb_files`: TensorBoard event files, one run folder per site;
- :mod:`.crc32c`: the checksum those files need, fast for many small records.

This package imports nothing heavy at import time (numpy,
Pillow and tensorboard are imported by the functions that need them).
"""
