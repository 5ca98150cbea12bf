"""Distributed mode (provisioning, server and client services, job store): a later issue fills it."""
