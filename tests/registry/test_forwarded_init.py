"""A subclass's ``__init__`` that passes ``**kwargs`` on to its base's: the arguments it
accepts are its own and the base's, read from source without importing anything."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flconfig.registry import Registry
from flconfig.registry.introspect import NO_DEFAULT, ClassDescription, Introspector

SOURCE = '''
from flconfig.components.base import Learner


class Base(Learner):
    def __init__(self, path: str, lr: float = 0.01, epochs: int = 5, *, seed: int = 0):
        """
        Args:
            path: where the data is.
            lr: the learning rate.
            epochs: epochs per round.
            seed: the random seed.
        """


class NewDefault(Base):
    def __init__(self, lr: float = 0.1, **kwargs):
        super().__init__(lr=lr, **kwargs)


class KeywordOnly(Base):
    def __init__(self, *, momentum: float = 0.9, epochs: int = 1, **kwargs):
        """
        Args:
            momentum: the momentum.
        """
        super().__init__(epochs=epochs, **kwargs)


class Starred(Base):
    def __init__(self, *args, extra: int = 1, **kwargs):
        super().__init__(*args, **kwargs)


class FillsPath(Base):
    def __init__(self, *args, **kwargs):
        super().__init__("/data", *args, **kwargs)


class Second(NewDefault):
    def __init__(self, width: int = 3, **kwargs):
        super(Second, self).__init__(**kwargs)


class Third(Second):
    def __init__(self, depth: int = 2, **kwargs):
        super().__init__(**kwargs)


class Named(Base):
    def __init__(self, extra: int = 1, **kwargs):
        Base.__init__(self, **kwargs)


class NamedOther(Base):
    def __init__(self, extra: int = 1, **kwargs):
        Unrelated.__init__(self, **kwargs)


class Both(Base):
    def __init__(self, extra: int = 1, **kwargs):
        Unrelated.__init__(self, **kwargs)
        super().__init__(**kwargs)


class Keeps(Base):
    def __init__(self, **options):
        self.options = options
'''


@pytest.fixture
def introspector(tmp_path: Path) -> Introspector:
    (tmp_path / "fwd.py").write_text(textwrap.dedent(SOURCE))
    return Introspector([tmp_path])


def describe(introspector: Introspector, name: str) -> ClassDescription:
    description = introspector.describe("fwd", name)
    assert description is not None and description.params is not None
    return description


def defaults(description: ClassDescription) -> dict[str, object]:
    assert description.params is not None
    return {p.name: p.default for p in description.params}


def test_a_changed_default_and_the_base_s_other_arguments(introspector: Introspector) -> None:
    d = describe(introspector, "NewDefault")
    assert defaults(d) == {"lr": 0.1, "path": NO_DEFAULT, "epochs": 5, "seed": 0}
    assert not d.var_kwargs
    assert d.arg_docs["path"] == "where the data is." and d.arg_docs["lr"] == "the learning rate."


def test_keyword_only_arguments_of_the_subclass(introspector: Introspector) -> None:
    d = describe(introspector, "KeywordOnly")
    assert defaults(d) == {"momentum": 0.9, "epochs": 1, "path": NO_DEFAULT, "lr": 0.01, "seed": 0}
    assert d.arg_docs["momentum"] == "the momentum." and d.arg_docs["seed"] == "the random seed."


def test_forwarded_star_args_fill_no_slot_of_the_base(introspector: Introspector) -> None:
    d = describe(introspector, "Starred")
    assert defaults(d) == {"extra": 1, "path": NO_DEFAULT, "lr": 0.01, "epochs": 5, "seed": 0}
    assert not d.var_args and not d.var_kwargs  # the base takes neither

    filled = describe(introspector, "FillsPath")  # the call fills ``path`` itself
    assert defaults(filled) == {"lr": 0.01, "epochs": 5, "seed": 0}


def test_a_chain_of_forwarding_levels(introspector: Introspector) -> None:
    d = describe(introspector, "Third")
    assert defaults(d) == {
        "depth": 2, "width": 3, "lr": 0.1, "path": NO_DEFAULT, "epochs": 5, "seed": 0
    }
    assert not d.var_kwargs


def test_base_init_called_by_name(introspector: Introspector) -> None:
    d = describe(introspector, "Named")
    assert defaults(d) == {"extra": 1, "path": NO_DEFAULT, "lr": 0.01, "epochs": 5, "seed": 0}
    assert not d.var_kwargs

    # an ``__init__`` of a class that is no base says nothing of what is accepted
    other = describe(introspector, "NamedOther")
    assert defaults(other) == {"extra": 1} and other.var_kwargs

    both = describe(introspector, "Both")  # the call of its base counts
    assert set(defaults(both)) == {"extra", "path", "lr", "epochs", "seed"} and not both.var_kwargs


def test_kwargs_kept_rather_than_forwarded_accept_anything(introspector: Introspector) -> None:
    d = describe(introspector, "Keeps")
    assert defaults(d) == {} and d.var_kwargs


def test_flare_model_controllers_forward_every_argument() -> None:
    # ModelController calls ``super().__init__(persistor_id, *args, **kwargs)``; BaseFedAvg
    # ``super().__init__(*args, **kwargs)``: the ``*args`` fill no slot of the base
    introspector = Introspector()
    controller = introspector.describe(
        "flconfig.compat.nvflare.app_common.workflows.model_controller", "ModelController"
    )
    fedavg = introspector.describe("flconfig.compat.nvflare.app_common.workflows.base_fedavg", "BaseFedAvg")
    assert controller is not None and fedavg is not None
    base_args = {"persistor_id", "ignore_result_error", "allow_empty_global_weights", "task_check_period"}
    assert set(defaults(controller)) == base_args
    assert set(defaults(fedavg)) == base_args | {"num_clients", "num_rounds", "start_round"}


def test_an_unknown_argument_of_a_forwarding_subclass_is_refused(tmp_path: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "fwd.py").write_text(textwrap.dedent(SOURCE))
    info = Registry.create(custom_dirs=[custom], environ={}).resolve("path", "fwd.Third")
    assert info.args_schema["additionalProperties"] is False
    assert info.args_schema["required"] == ["path"]
    assert set(info.args) == {"depth", "width", "lr", "path", "epochs", "seed"}


def test_a_restated_parameter_keeps_the_base_s_place_when_star_args_are_forwarded(tmp_path: Path) -> None:
    (tmp_path / "restated.py").write_text(textwrap.dedent('''
        from fwd import Base


        class Restated(Base):
            def __init__(self, *args, lr: float = 0.5, **kwargs):
                super().__init__(*args, lr=lr, **kwargs)
    '''))
    (tmp_path / "fwd.py").write_text(textwrap.dedent(SOURCE))
    d = Introspector([tmp_path]).describe("restated", "Restated")
    assert d is not None and d.params is not None
    # positional arguments reach Base in Base's order: ``lr`` is still second
    assert [(p.name, p.default) for p in d.params] == [
        ("path", NO_DEFAULT), ("lr", 0.5), ("epochs", 5), ("seed", 0)
    ]
