"""The link between the server and its sites: the wire contract, the server end, the site end.

- :mod:`.contract`: what both ends agree on (the service, metadata, limits, gRPC options);
  the messages themselves are defined in ``flconfig.proto`` beside it.
- :mod:`.codec`: models and event records as bytes, and back (no pickle).
- :mod:`.gatekeeper`: a service's gatekeeper (:class:`~.gatekeeper.Gatekeeper`), which
  admits calls by the identity a given callable finds and counts and logs refusals;
  :mod:`.tokens`: how the job server finds it (a site's token, its certificate).
- :mod:`.server`: :class:`~.server.CommServer`, the job's server: its lifecycle and the
  API the runtime calls. Its parts: :mod:`.state` (its sites and open tasks),
  :mod:`.handlers` (what it does for each call), :mod:`.rpc` (their gRPC plumbing),
  :mod:`.dispatch` (tasks out, results in).
- :mod:`.link`: :class:`~.link.SiteLink`, a site's connection as coroutines, with its
  :mod:`.outbox` of event records.
- :mod:`.client`: :class:`~.client.CommClient`, the same for blocking code.
- :mod:`.retry`: :class:`~.retry.RetryPolicy`, which failures are retried, how, how long.
- :mod:`.tls`: gRPC credentials from certificate files, and the check of a caller's
  certificate (:class:`~.tls.CertificateGate`), for a deployed job's link and the services.
"""
