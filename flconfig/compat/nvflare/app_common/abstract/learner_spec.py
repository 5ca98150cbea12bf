"""FLARE's older path of the Learner API, as FLARE's scikit-learn examples import it."""

from __future__ import annotations

from .learner import Learner

__all__ = ["Learner"]
