"""Running jobs: the wire formats and the gRPC link between the server and its sites.

- :mod:`.codec` turns models, event records and control messages into bytes and
  back (no pickle; every decode treats its input as hostile).
- :mod:`.comm` holds what both ends of the link agree on: method names,
  metadata keys, site-name rules, channel options.
- :mod:`.comm_server` is the server end (:class:`~.comm_server.CommServer`):
  authentication, liveness, task dispatch (FLARE's ``broadcast_and_wait``) and
  exactly-once event delivery.
- :mod:`.comm_client` is the site end (:class:`~.comm_client.CommClient`):
  connect, pull tasks, return results, heartbeat, stream events.
"""
