"""The arguments every built-in class accepts, as ``flconfig validate`` sees them, match the
snapshot taken before subclasses stopped restating their bases' parameters.

A subclass that forwards its base's parameters with ``**kwargs`` must leave the accepted
arguments, their required-ness, defaults, schemas and docs exactly as they were. The
snapshot is written by ``make_args_snapshot.py`` (see there for when to rewrite it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from make_args_snapshot import snapshot

SNAPSHOT_FILE = Path(__file__).with_name("builtin_args_snapshot.json")


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, Any], dict[str, Any]]:
    expected = json.loads(SNAPSHOT_FILE.read_text())
    actual = json.loads(json.dumps(snapshot()))
    return expected, actual


@pytest.mark.parametrize("section", ["components", "flare_aliases", "compat"])
def test_the_same_classes_are_described(pair: tuple[dict, dict], section: str) -> None:
    expected, actual = pair
    assert sorted(actual[section]) == sorted(expected[section])


@pytest.mark.parametrize("section", ["components", "flare_aliases", "compat"])
def test_every_class_takes_the_arguments_it_took(pair: tuple[dict, dict], section: str) -> None:
    expected, actual = pair
    changed = {
        path: {"before": before, "now": actual[section].get(path)}
        for path, before in expected[section].items()
        if actual[section].get(path) != before
    }
    assert not changed, json.dumps(changed, indent=1, sort_keys=True)[:6000]
