"""FLARE's ``nvflare.app_common.utils.math_utils``: comparison criteria such as
``"accuracy >= 0.8"`` (FedAvg's ``stop_cond`` and job code's own early stopping)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

#: The comparison operators a criterion may use.
operator_mapping: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}


def parse_compare_criteria(compare_expr: str | None = None) -> tuple[str, float, Callable[[Any, Any], bool]]:
    """``"<key> <op> <value>"`` (one space apart) as ``(key, value, operator function)``;
    ValueError, saying what is wrong, for anything else."""
    tokens = (compare_expr or "").split(" ")
    if len(tokens) != 3:
        raise ValueError(f"Invalid early_stop_condition, expecting form of '<key> <op> <value>' but got "
                         f"'{compare_expr}'")
    key, op, target = tokens
    op_fn = operator_mapping.get(op)
    if op_fn is None:
        raise ValueError("Invalid operator symbol: expecting one of <=, =, >=, <, > ")
    if not target:
        raise ValueError("Invalid empty or None target value")
    try:
        value = float(target)
    except ValueError:
        raise ValueError(f"expect a number, but get '{target}' in '{compare_expr}'") from None
    return key, value, op_fn
