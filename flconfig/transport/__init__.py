"""The link between the server and its sites: the wire contract, the server end, the site end.

- :mod:`.contract`: what both ends agree on (the service, metadata, limits, gRPC options);
  the messages themselves are defined in ``flconfig.proto`` beside it.
- :mod:`.codec`: models and event records as bytes, and back (no pickle).
- :mod:`.server`: :class:`~.server.CommServer`, which authenticates sites, hands out
  tasks, gathers results and events.
- :mod:`.client`: :class:`~.client.CommClient`, a site's connection, with its outbox.
"""
