"""FLARE's logging calls as a sender's records: what ``nvflare.client.log`` and
``create_analytic_dxo`` carry (a key, a value and FLARE's ``AnalyticsDataType``) turned into
an :class:`~flconfig.tracking.senders.AnalyticsSender`'s ``add_*`` calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .senders import AnalyticsSender


def log_flare_record(sender: AnalyticsSender, key: str, value: Any, data_type: Any, **kwargs: Any) -> None:
    """One record in FLARE's terms (``nvflare.client.log``, ``create_analytic_dxo``) as
    ``sender``'s records: SCALAR/METRIC a scalar, SCALARS a series, METRICS a scalar per
    entry, TEXT a text, IMAGE an image (``dataformats``), PARAMETER(S)/TAG(S) text records
    ``params/<key>``/``tags/<key>``. Raises TypeError for another type or a bad value."""
    kind = getattr(data_type, "value", data_type)
    step = kwargs.get("global_step")
    if kind in ("SCALAR", "METRIC"):
        sender.add_scalar(key, value, step)
    elif kind == "SCALARS":
        sender.add_scalars(key, value, step)
    elif kind == "METRICS":
        for tag, number in _mapping(key, value).items():
            sender.add_scalar(str(tag), number, step)
    elif kind == "TEXT":
        sender.add_text(key, value, step)
    elif kind == "IMAGE":
        sender.add_image(key, value, step, dataformats=kwargs.get("dataformats", "CHW"))
    elif kind in ("PARAMETER", "TAG"):
        sender.add_text(f"{'params' if kind == 'PARAMETER' else 'tags'}/{key}", str(value))
    elif kind in ("PARAMETERS", "TAGS"):
        for name, item in _mapping(key, value).items():
            sender.add_text(f"{'params' if kind == 'PARAMETERS' else 'tags'}/{name}", str(item))
    else:
        raise TypeError(f"cannot log {key!r}: records of type {kind} are not supported")


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"cannot log {key!r}: expected a dict, got {type(value).__name__}")
    return value
