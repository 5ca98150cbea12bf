"""Fixtures shared by several test modules."""

from test_comm import make_server, start_sites  # noqa: F401  (a real CommServer, real sites)
