"""Fixtures shared by the test modules; what they are built on is in :mod:`harness`."""

from harness.comm import make_server, start_sites  # noqa: F401  (a real CommServer, real sites)
