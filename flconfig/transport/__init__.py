"""The link between the server and its sites: the wire contract, the server end, the site end.

- :mod:`.contract`: what both ends agree on (the service, metadata, limits, gRPC options);
  the messages themselves are defined in ``flconfig.proto`` beside it.
- :mod:`.codec`: models and event records as bytes, and back (no pickle).
- :mod:`.server`: :class:`~.server.CommServer`, which authenticates sites, hands out
  tasks, gathers results and events.
- :mod:`.link`: :class:`~.link.SiteLink`, a site's connection as coroutines, with its outbox.
- :mod:`.client`: :class:`~.client.CommClient`, the same for blocking code.
- :mod:`.tls`: gRPC credentials from certificate files, and the check of a caller's
  certificate (:class:`~.tls.CertificateGate`), for a deployed job's link and the services.
"""
