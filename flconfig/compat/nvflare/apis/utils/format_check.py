"""FLARE's ``nvflare.apis.utils.format_check``: ``name_check`` of site, job and admin names."""

from __future__ import annotations

import re

_HOST = r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
_EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}$"

#: The pattern a name of each kind must match (FLARE's).
type_pattern_mapping: dict[str, str] = {
    "server": _HOST, "host_name": _HOST, "client": r"^[A-Za-z0-9-_]+$", "relay": r"^[A-Za-z0-9-_]+$",
    "job_name": r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "admin": _EMAIL, "email": _EMAIL, "org": r"^[A-Za-z0-9_]+$",
    "simple_name": r"^[A-Za-z0-9_]+$", "study": r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$",
    "site": r"^[A-Za-z0-9-_]+$",
}


def name_check(name: str, entity_type: str) -> tuple[bool, str]:
    """``(is_bad, why)`` for ``name`` as a name of ``entity_type`` (``"client"``, ``"org"`` ...),
    FLARE's way round: False means the name is fine."""
    pattern = type_pattern_mapping.get(entity_type)
    if pattern is None:
        return True, f"entity_type={entity_type} not defined, unable to check name={name}."
    if re.match(pattern, name):
        return False, f"name={name} passed on regex_pattern={pattern} check"
    return True, f"name={name} is ill-formatted for entity_type={entity_type} based on regex_pattern={pattern}"
