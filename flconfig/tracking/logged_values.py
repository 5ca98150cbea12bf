"""What a learner logs, as record values: checked at the call, where a wrong value
fails with its tag in the message, not later on a background thread.

Numbers (ints, floats, numpy scalars, one-element tensors), steps, wall times, tags,
series, text and hyperparameters; :func:`check_size` bounds a record as it will travel;
:func:`as_array` copies an array or tensor for :mod:`~flconfig.tracking.images` and
:mod:`~flconfig.tracking.histograms`. The rules are :mod:`~flconfig.tracking.records`'.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from typing import Any

from ..transport.contract import JSON_ENCODER, MAX_RECORD_BYTES
from .records import (
    MAX_EVENT_TYPE,
    MAX_HPARAMS,
    MAX_SERIES,
    MAX_STEP,
    MAX_TAG,
    MAX_TEXT,
    MAX_WALL_TIME,
    is_wall_time,
)


def _type_name(value: object) -> str:
    return type(value).__name__


def check_tag(tag: object, what: str = "tag") -> str:
    """Return ``tag`` if it is a non-empty str without NUL, else raise."""
    if type(tag) is not str:
        if not isinstance(tag, str):
            raise TypeError(f"{what} must be a str, got {_type_name(tag)} {tag!r}")
        tag = str(tag)
    if not tag or "\x00" in tag or len(tag) > MAX_TAG:
        raise ValueError(f"{what} {tag[:80]!r} must be 1 to {MAX_TAG} characters without NUL")
    return tag


def as_number(tag: str, value: object, what: str = "scalar_value") -> int | float:
    """A Python int or float from a number, numpy scalar or one-element tensor.

    Raises ``TypeError`` naming ``tag`` for anything else (strings, lists,
    tensors with several elements, complex numbers).
    """
    t = type(value)
    if t is float:
        return value  # type: ignore[return-value]
    if t is int or t is bool:
        return _int_number(tag, value, what)  # type: ignore[arg-type]
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            size = getattr(value, "size", 1)
            size = size() if callable(size) else size  # torch: size() is the shape
            numel = getattr(value, "numel", None)
            if callable(numel):
                size = numel()
            if size != 1:
                raise ValueError
            value = item()
        except Exception:
            shape = getattr(value, "shape", None)
            raise TypeError(
                f"{what} of {tag!r} must be a number or a one-element tensor/array, "
                f"got {_type_name(value)} of shape {tuple(shape) if shape is not None else '?'}"
            ) from None
        t = type(value)
        if t is float:
            return value  # type: ignore[return-value]
        if t is int or t is bool:
            return _int_number(tag, value, what)  # type: ignore[arg-type]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{what} of {tag!r} is too large for a float") from None
    raise TypeError(
        f"{what} of {tag!r} must be a number (int, float, numpy scalar or 0-d tensor), "
        f"got {_type_name(value)} {str(value)[:80]!r}"
    )


def _int_number(tag: str, value: int, what: str) -> int | float:
    # Ints travel as JSON ints; one beyond what a float holds exactly travels as a float.
    if -(2**53) <= value <= 2**53:
        return int(value)
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{what} of {tag!r} is too large for a float") from None


def as_step(tag: str, step: object) -> int | None:
    """``None`` or an int >= 0 from an int, numpy integer or 0-d integer tensor."""
    if step is None:
        return None
    if type(step) is not int:
        if isinstance(step, bool):
            raise TypeError(f"global_step of {tag!r} must be an int, got bool")
        try:
            step = operator.index(step)  # type: ignore[arg-type]
        except TypeError:
            item = getattr(step, "item", None)
            value = None
            if item is not None:
                try:
                    value = item()
                except Exception:
                    value = None
            if type(value) is not int:
                raise TypeError(
                    f"global_step of {tag!r} must be an int, got {_type_name(step)} {str(step)[:40]!r}"
                ) from None
            step = value
    if not 0 <= step <= MAX_STEP:  # type: ignore[operator]
        raise ValueError(f"global_step of {tag!r} must be >= 0, got {step}")
    return step  # type: ignore[return-value]


def as_walltime(tag: str, walltime: object) -> float:
    """The wall time as a float (seconds since the epoch, below :data:`MAX_WALL_TIME`)."""
    value = as_number(tag, walltime, "walltime")
    if not is_wall_time(value):
        raise ValueError(
            f"walltime of {tag!r} must be seconds since the epoch, 0 to {MAX_WALL_TIME:g}, got {value}"
        )
    return float(value)


def check_size(kind: str, tag: str, value: Any) -> None:
    """Raise ``ValueError`` if a record of this value would exceed :data:`MAX_RECORD_BYTES`
    as it travels (the step, wall time and transport fields included)."""
    record = {"event_type": "x" * MAX_EVENT_TYPE, "kind": kind, "tag": tag, "value": value,
              "step": MAX_STEP, "wall_time": MAX_WALL_TIME, "seq": MAX_STEP}
    size = len(JSON_ENCODER.encode(record).encode("utf-8"))
    if size > MAX_RECORD_BYTES:
        raise ValueError(
            f"the {kind} record {tag[:80]!r} is {size:,} bytes as sent; records are limited to "
            f"{MAX_RECORD_BYTES:,} bytes (split it, or log a smaller one)"
        )


def as_series(tag: str, values: object) -> dict[str, int | float]:
    """``add_scalars``' dict: non-empty, str keys, number values (copied)."""
    if not isinstance(values, Mapping):
        raise TypeError(
            f"tag_scalar_dict of {tag!r} must be a dict of series name to number, "
            f"got {_type_name(values)}"
        )
    if not values or len(values) > MAX_SERIES:
        raise ValueError(f"tag_scalar_dict of {tag!r} must hold 1 to {MAX_SERIES} series")
    out: dict[str, int | float] = {}
    for key, value in values.items():
        check_tag(key, f"series name in {tag!r}")
        out[key] = as_number(tag, value, f"value of series {key!r}")
    return out


def as_text(tag: str, text: object) -> str:
    """``add_text``'s text: a str of at most :data:`MAX_TEXT` characters."""
    if not isinstance(text, str):
        raise TypeError(f"text_string of {tag!r} must be a str, got {_type_name(text)}")
    if len(text) > MAX_TEXT:
        raise ValueError(f"text_string of {tag!r} is longer than {MAX_TEXT} characters")
    return str(text)


def as_array(tag: str, what: str, value: Any) -> Any:
    """A numpy copy of an array, list or tensor (a torch tensor taken to the CPU, bf16 as
    float32); TypeError naming ``what`` of ``tag`` otherwise."""
    import numpy as np

    # A torch tensor, recognised without importing torch.
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        return np.array(value, copy=True)  # a copy: training may change the tensor next step
    except Exception as exc:
        raise TypeError(
            f"{what} of {tag!r} must be an array or tensor, got {_type_name(value)} ({exc})"
        ) from None


def _hparam_value(tag: str, name: str, value: Any) -> bool | float | str | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TAG:
            raise ValueError(f"hparam {name!r} of {tag!r} is longer than {MAX_TAG} characters")
        return str(value)
    # Numbers as floats: TensorBoard keeps them as float64, and a domain must hold
    # values of its hparam's type.
    number = as_number(tag, value, f"hparam {name!r}")
    if not math.isfinite(number) or abs(number) >= 2**64:
        raise ValueError(f"hparam {name!r} of {tag!r} must be a finite number, got {number}")
    return float(number)


def hparams_value(
    hparam_dict: object, metric_dict: object, hparam_domain_discrete: object, run_name: str
) -> dict[str, Any]:
    """The record value of ``add_hparams`` (``None`` hyperparameters are left out, as torch does)."""
    if not isinstance(hparam_dict, Mapping):
        raise TypeError(
            f"hparam_dict of {run_name!r} must be a dict, got {_type_name(hparam_dict)}"
        )
    if not isinstance(metric_dict, Mapping):
        raise TypeError(
            f"metric_dict of {run_name!r} must be a dict, got {_type_name(metric_dict)}"
        )
    if len(hparam_dict) > MAX_HPARAMS or len(metric_dict) > MAX_HPARAMS:
        raise ValueError(f"add_hparams {run_name!r}: at most {MAX_HPARAMS} hparams and metrics")
    hparams: dict[str, Any] = {}
    for name, value in hparam_dict.items():
        check_tag(name, f"hparam name in {run_name!r}")
        v = _hparam_value(run_name, name, value)
        if v is not None:
            hparams[name] = v
    metrics = {
        check_tag(name, f"metric name in {run_name!r}"): as_number(
            run_name, value, f"metric {name!r}"
        )
        for name, value in metric_dict.items()
    }
    domains: dict[str, list[Any]] = {}
    if hparam_domain_discrete is not None:
        if not isinstance(hparam_domain_discrete, Mapping):
            raise TypeError(f"hparam_domain_discrete of {run_name!r} must be a dict")
        for name, values in hparam_domain_discrete.items():
            if name not in hparams or not isinstance(values, (list, tuple)):
                raise TypeError(
                    f"hparam_domain_discrete[{name!r}] of {run_name!r} must be a list and "
                    "name a hyperparameter of hparam_dict"
                )
            if len(values) > MAX_HPARAMS:
                raise ValueError(f"hparam_domain_discrete[{name!r}] of {run_name!r} holds more "
                                 f"than {MAX_HPARAMS} values")
            domain = [_hparam_value(run_name, name, v) for v in values]
            if not all(type(v) is type(hparams[name]) for v in domain):
                raise TypeError(
                    f"hparam_domain_discrete[{name!r}] of {run_name!r} must hold values of the "
                    f"hparam's type ({type(hparams[name]).__name__})"
                )
            domains[name] = domain
    return {"hparams": hparams, "metrics": metrics, "domains": domains}
