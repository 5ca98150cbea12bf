"""The component registry: which paths and names a config may use, and what
arguments the named classes take, all read from source without importing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from harness import REPO

from flconfig.components.persistors import PTFileModelPersistor
from flconfig.components.scatter_and_gather import ScatterAndGather
from flconfig.registry import (
    MISSING,
    ComponentInfo,
    Registry,
    ResolveError,
    annotation_schema,
    introspect,
    read_entry_points,
)
from flconfig.registry.aliases import FLARE_ALIASES
from flconfig.tracking.senders import TBWriter

EXAMPLE_JOB = REPO.parent / "shared" / "flare-jobs" / "tensorboard-streaming"
needs_example_job = pytest.mark.skipif(
    not EXAMPLE_JOB.is_dir(), reason="FLARE example job folder not present"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def example_specs() -> list[dict]:
    """Every component spec of the example job, nested model spec included."""
    specs = []
    for name in ("config_fed_server.json", "config_fed_client.json"):
        config = json.loads((EXAMPLE_JOB / "app" / "config" / name).read_text())
        specs += config.get("components", []) + config.get("workflows", [])
        specs += [entry["executor"] for entry in config.get("executors", [])]
    nested = [s["args"]["model"] for s in specs if isinstance(s.get("args", {}).get("model"), dict)]
    return specs + nested


@pytest.fixture
def registry() -> Registry:
    return Registry.create(environ={})


# FLARE's own modules for the example's two non-FLARE paths, as a user would
# have them on PYTHONPATH (FLARE's README: export PYTHONPATH=${PWD}/..).
PT_LEARNER = """
    import torch
    from nvflare.app_common.abstract.learner_spec import Learner

    from pt.simple_network import SimpleNetwork


    class PTLearner(Learner):
        def __init__(self, data_path="~/data", lr=0.01, epochs=5, exclude_vars=None,
                     analytic_sender_id="analytic_sender"):
            \"\"\"Trains SimpleNetwork.

            Args:
                data_path: where the data set is.
                lr: learning rate.
            \"\"\"
            super().__init__()
            self.model = SimpleNetwork()
"""
PT_NETWORK = """
    import torch.nn as nn
    import torch.nn.functional as F


    class SimpleNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
"""


@pytest.fixture
def pt_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "pypath"
    write(root / "pt" / "__init__.py", "")
    write(root / "pt" / "learner_with_tb.py", PT_LEARNER)
    write(root / "pt" / "simple_network.py", PT_NETWORK)
    monkeypatch.syspath_prepend(str(root))
    return root


# --------------------------------------------------------------------------
# FLARE aliases


EXPECTED_EXAMPLE = {
    "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor": (
        "PTFileModelPersistor",
        "persistor",
    ),
    "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator": (
        "FullModelShareableGenerator",
        "shareable_generator",
    ),
    "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator": (
        "InTimeAccumulateWeightedAggregator",
        "aggregator",
    ),
    "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator": (
        "PTFileModelLocator",
        "model_locator",
    ),
    "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator": (
        "ValidationJsonGenerator",
        "widget",
    ),
    "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver": (
        "TBAnalyticsReceiver",
        "receiver",
    ),
    "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather": (
        "ScatterAndGather",
        "workflow",
    ),
    "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval": (
        "CrossSiteModelEval",
        "workflow",
    ),
    "nvflare.app_common.executors.learner_executor.LearnerExecutor": (
        "LearnerExecutor",
        "executor",
    ),
    "nvflare.app_opt.tracking.tb.tb_writer.TBWriter": ("TBWriter", "analytics_sender"),
    "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent": (
        "ConvertToFedEvent",
        "widget",
    ),
}


@needs_example_job
def test_every_flare_path_of_the_example_job_resolves_to_a_builtin(registry: Registry) -> None:
    flare_paths = [s["path"] for s in example_specs() if s["path"].startswith("nvflare.")]
    assert sorted(flare_paths) == sorted(EXPECTED_EXAMPLE)
    for path in flare_paths:
        info = registry.resolve("path", path)
        name, kind = EXPECTED_EXAMPLE[path]
        assert (info.name, info.kind, info.origin) == (name, kind, "builtin")
        assert info.path.startswith(("flconfig.components.", "flconfig.tracking."))
        assert registry.resolve("class_path", path) is info


@needs_example_job
def test_example_pt_paths_are_not_allowed_until_their_module_is(
    registry: Registry, pt_package: Path
) -> None:
    pt_paths = [s["path"] for s in example_specs() if s["path"].startswith("pt.")]
    assert sorted(pt_paths) == ["pt.learner_with_tb.PTLearner", "pt.simple_network.SimpleNetwork"]
    for path in pt_paths:
        with pytest.raises(ResolveError) as err:
            registry.resolve("path", path)
        assert err.value.code == "path-not-allowed"
        assert "--allow-module pt" in err.value.hint
        assert "FLCONFIG_ALLOW_MODULES=pt" in err.value.hint

    allowing = Registry.create(allowed_modules=["pt"], environ={})
    learner = allowing.resolve("path", "pt.learner_with_tb.PTLearner")
    network = allowing.resolve("path", "pt.simple_network.SimpleNetwork")
    assert (learner.origin, learner.kind) == ("allowed", "learner")  # FLARE's Learner, by name
    assert (network.origin, network.kind) == ("allowed", "model")  # nn.Module
    assert list(learner.args) == ["data_path", "lr", "epochs", "exclude_vars", "analytic_sender_id"]
    assert learner.args["lr"].default == 0.01
    assert learner.args["analytic_sender_id"].reference == "analytics_sender"
    assert learner.args_schema["properties"]["lr"]["description"] == "learning rate."
    # untyped arguments are not constrained: FLARE passes any value through
    jsonschema.validate({"lr": "0.1", "epochs": 5}, learner.args_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"learning_rate": 0.1}, learner.args_schema)
    assert network.args == {} and network.args_schema["additionalProperties"] is False
    assert "pt.learner_with_tb" not in sys.modules  # described, not imported


def test_allowed_modules_come_from_the_environment_too(pt_package: Path) -> None:
    env = {"FLCONFIG_ALLOW_MODULES": f"other.pkg,{os.pathsep}pt.simple_network"}
    registry = Registry.create(environ=env)
    assert registry.allowed_modules == ("other.pkg", "pt.simple_network")
    assert registry.resolve("path", "pt.simple_network.SimpleNetwork").origin == "allowed"
    with pytest.raises(ResolveError) as err:  # a sibling module is not allowed
        registry.resolve("path", "pt.learner_with_tb.PTLearner")
    assert err.value.code == "path-not-allowed"


def test_a_bad_allowed_prefix_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="not a module name"):
        Registry.create(allowed_modules=["os; rm -rf"], environ={})
    with pytest.raises(ValueError):
        Registry.create(environ={"FLCONFIG_ALLOW_MODULES": "good,bad name"})


@pytest.mark.parametrize(
    "flare_path, name",
    [
        (
            "nvflare.app_common.pt.pt_file_model_persistor.PTFileModelPersistor",
            "PTFileModelPersistor",
        ),
        ("nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor", "PTFileModelPersistor"),
        ("nvflare.app_common.pt.pt_file_model_locator.PTFileModelLocator", "PTFileModelLocator"),
        ("nvflare.app_opt.pt.file_model_locator.PTFileModelLocator", "PTFileModelLocator"),
        ("nvflare.app_opt.tracking.tb.tb_writer.TBWriter", "TBWriter"),
        ("nvflare.app_common.widgets.streaming.AnalyticsSender", "AnalyticsSender"),
        ("nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent", "ConvertToFedEvent"),
        ("nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver", "TBAnalyticsReceiver"),
        ("nvflare.app_common.pt.tb_receiver.TBAnalyticsReceiver", "TBAnalyticsReceiver"),
        ("nvflare.app_opt.tracking.mlflow.mlflow_receiver.MLflowReceiver", "MLflowReceiver"),
        ("nvflare.app_common.executors.learner_executor.LearnerExecutor", "LearnerExecutor"),
    ],
)
def test_current_and_older_flare_paths_resolve(
    registry: Registry, flare_path: str, name: str
) -> None:
    assert registry.resolve("path", flare_path).name == name


def test_every_alias_points_at_a_builtin_component(registry: Registry) -> None:
    for flare_path, ours in FLARE_ALIASES.items():
        info = registry.resolve("path", flare_path)
        assert info.path == ours and info.origin == "builtin", flare_path
        assert info.kind not in ("unknown", "plain")


def test_a_flare_class_without_equivalent_is_refused_with_what_exists(registry: Registry) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "nvflare.app_common.workflows.swarm_server_ctl.SwarmServerController")
    # said as what it is, a class not supported yet, not as a security refusal
    assert err.value.code == "unsupported-flare-class"
    assert "not a FLARE class flconfig supports yet" in err.value.message
    assert "not allowed" not in err.value.message
    assert "no equivalent" in err.value.hint and "did you mean 'nvflare.app_common.workflows." in err.value.hint

    with pytest.raises(ResolveError) as err:  # a typo gets the right path back
        registry.resolve("path", "nvflare.app_opt.tracking.tb.tb_writer.TBWritter")
    assert err.value.candidates[0] == "nvflare.app_opt.tracking.tb.tb_writer.TBWriter"


# --------------------------------------------------------------------------
# What may not be built


def test_os_system_is_refused_and_never_imported(registry: Registry) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "os.system")
    assert err.value.code == "path-not-allowed"
    assert err.value.message == "'os.system' is not an allowed component path"
    assert err.value.hint == (
        "flconfig builds only its own components, FLARE aliases, entry-point plugins, the job's"
        " custom/ modules and modules or folders you allow: 'os' is Python's standard library, not a component module"
    )
    # Even when os is allowed, os.system is no class in os's source.
    with pytest.raises(ResolveError) as err:
        Registry.create(allowed_modules=["os"], environ={}).resolve("path", "os.system")
    assert err.value.code == "unresolvable"


def test_load_class_refuses_what_the_registry_did_not_resolve(registry: Registry) -> None:
    genuine = registry.resolve("path", "flconfig.tracking.senders.TBWriter")
    forged = ComponentInfo(
        **{**genuine.__dict__, "path": "os.system", "module": "os", "qualname": "system"}
    )
    with pytest.raises(ResolveError) as err:
        registry.load_class(forged)
    assert err.value.code == "path-not-allowed"
    other = Registry.create(environ={})
    with pytest.raises(ResolveError):  # an info from another registry is no better
        other.load_class(genuine)


@pytest.mark.parametrize(
    "path",
    ["flconfig.types.Event", "flconfig.components.base.Learner", "builtins.eval", "subprocess.Popen"],
)
def test_non_component_paths_are_refused(registry: Registry, path: str) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", path)
    assert err.value.code == "path-not-allowed"


@pytest.mark.parametrize("value", ["", "ScatterAndGather", "os.system()", "a..b", 42, None])
def test_malformed_paths_are_unresolvable(registry: Registry, value: object) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", value)  # type: ignore[arg-type]
    assert err.value.code == "unresolvable"
    if value == "ScatterAndGather":
        assert '"name": "ScatterAndGather"' in err.value.hint


def test_a_misspelt_builtin_class_gets_candidates(registry: Registry) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "flconfig.tracking.senders.TBRiter")
    assert err.value.code == "unresolvable"
    assert err.value.candidates[0] == "flconfig.tracking.senders.TBWriter"


# --------------------------------------------------------------------------
# Names


def test_names_resolve_builtin_components(registry: Registry) -> None:
    assert registry.resolve("name", "ScatterAndGather").path == (
        "flconfig.components.scatter_and_gather.ScatterAndGather"
    )
    assert registry.resolve("name", "TBWriter").kind == "analytics_sender"
    names = registry.names()
    for expected in (
        "LearnerExecutor",
        "CrossSiteModelEval",
        "JsonLinesReceiver",
        "MLflowReceiver",
    ):
        assert expected in names
    for base in ("Component", "Learner", "Widget", "Controller"):
        assert base not in names  # base classes are not components to build


def test_an_unknown_name_lists_close_names(registry: Registry) -> None:
    with pytest.raises(ResolveError) as err:
        registry.resolve("name", "ScaterAndGather")
    assert err.value.code == "unknown-component"
    assert err.value.candidates[0] == "ScatterAndGather"
    with pytest.raises(ResolveError) as err:
        registry.resolve("name", "tbwriter")
    assert err.value.candidates[0] == "TBWriter"
    with pytest.raises(ResolveError) as err:
        registry.resolve("name", "pt.learner_with_tb.PTLearner")
    assert 'use "path"' in err.value.hint


def test_builtin_names_are_unique_and_every_builtin_has_a_kind(registry: Registry) -> None:
    builtins = [c for c in registry.components() if c.origin == "builtin"]
    names = [c.name for c in builtins]
    assert len(names) == len(set(names))
    assert all(c.kind not in ("unknown", "plain") for c in builtins)
    assert {c.module for c in builtins} >= {
        "flconfig.tracking.senders",
        "flconfig.tracking.receivers.tensorboard",
        "flconfig.components.scatter_and_gather",
    }


# --------------------------------------------------------------------------
# Entry-point plugins


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    write(
        site / "fancy_plugin" / "widgets.py",
        """
        from typing import ClassVar

        from flconfig.components.base import Widget
        from flconfig.tracking.senders import AnalyticsSender


        class FancyWidget(Widget):
            REFERENCES: ClassVar[dict] = {"partner": "receiver"}

            def __init__(self, colour: str = "red", partner: str | None = None, level: int = 1):
                self.colour = colour


        class TBWriter(AnalyticsSender):
            \"\"\"A second TBWriter: makes the short name ambiguous.\"\"\"


        class NotRegistered(Widget):
            pass
        """,
    )
    write(site / "fancy_plugin" / "__init__.py", "")
    write(
        site / "fancy_plugin-1.0.dist-info" / "METADATA",
        "Metadata-Version: 2.1\nName: fancy-plugin\nVersion: 1.0\n",
    )
    write(
        site / "fancy_plugin-1.0.dist-info" / "entry_points.txt",
        """
        [console_scripts]
        fancy = fancy_plugin.cli:main

        [flconfig.components]
        fancy = fancy_plugin.widgets:FancyWidget
        TBWriter = fancy_plugin.widgets:TBWriter
        broken = fancy_plugin.widgets
        """,
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_plugins_resolve_by_entry_name_class_name_and_path(plugin_site: Path) -> None:
    registry = Registry.create(environ={})
    by_entry = registry.resolve("name", "fancy")
    assert (by_entry.path, by_entry.origin, by_entry.kind) == (
        "fancy_plugin.widgets.FancyWidget",
        "plugin",
        "widget",
    )
    assert registry.resolve("name", "FancyWidget") is by_entry
    assert registry.resolve("path", "fancy_plugin.widgets.FancyWidget") is by_entry
    assert by_entry.args["partner"].reference == "receiver"
    partner = by_entry.args_schema["properties"]["partner"]
    jsonschema.validate({"partner": {"path": "x.Y"}}, by_entry.args_schema)  # nested spec
    jsonschema.validate({"partner": "tb_receiver"}, by_entry.args_schema)  # component id
    assert partner["type"] == ["string", "null", "object"]
    assert any("broken" in w for w in registry.warnings)
    assert "fancy_plugin.widgets" not in sys.modules
    assert registry.load_class(by_entry).__name__ == "FancyWidget"


def test_a_plugin_module_exposes_only_its_registered_classes(plugin_site: Path) -> None:
    with pytest.raises(ResolveError) as err:
        Registry.create(environ={}).resolve("path", "fancy_plugin.widgets.NotRegistered")
    assert err.value.code == "path-not-allowed"


def test_two_classes_with_one_name_are_ambiguous(plugin_site: Path) -> None:
    registry = Registry.create(environ={})
    with pytest.raises(ResolveError) as err:
        registry.resolve("name", "TBWriter")
    assert err.value.code == "ambiguous-name"
    assert err.value.candidates == [
        "fancy_plugin.widgets.TBWriter",
        "flconfig.tracking.senders.TBWriter",
    ]
    assert "fancy_plugin.widgets.TBWriter" in err.value.hint
    # The full path still works.
    assert registry.resolve("path", "fancy_plugin.widgets.TBWriter").origin == "plugin"


def test_entry_points_of_installed_distributions_are_read(plugin_site: Path) -> None:
    found = read_entry_points("flconfig.components")
    assert ("fancy", "fancy_plugin.widgets:FancyWidget", "fancy-plugin") in found
    assert all(name != "fancy" or value.endswith("FancyWidget") for name, value, _ in found)


# --------------------------------------------------------------------------
# The job's custom/ folder


@pytest.fixture
def custom_dir(tmp_path: Path) -> Path:
    custom = tmp_path / "job" / "app" / "custom"
    write(
        custom / "my_trainer.py",
        """
        from __future__ import annotations

        from typing import Any, Literal, Optional

        from flconfig.components.base import Learner

        from nets import SimpleNet

        DEFAULT_PATH = "/tmp/data"


        class SimpleTrainer(Learner):
            def __init__(
                self,
                lr: float = 0.01,
                epochs: int = 5,
                data_path: str = DEFAULT_PATH,
                analytic_sender_id: str = "log_writer",
                optimizer: Literal["sgd", "adam"] = "sgd",
                model: Optional[SimpleNet] = None,
                transforms: list[str] = ["a"],
                extra: Any = object(),
            ):
                self.lr = lr


        class TunedTrainer(SimpleTrainer):
            pass


        class KwTrainer(SimpleTrainer):
            def __init__(self, momentum: float = 0.9, **kwargs):
                super().__init__(epochs=1, **kwargs)
                self.momentum = momentum


        class _Private(Learner):
            pass
        """,
    )
    write(custom / "nets" / "__init__.py", "from .simple import SimpleNet\n")
    write(
        custom / "nets" / "simple.py",
        """
        import torch
        from torch import nn


        class SimpleNet(nn.Module):
            def __init__(self, hidden: int = 32):
                super().__init__()
        """,
    )
    write(
        custom / "odd.py",
        """
        from somewhere_unknown import MysteryBase


        class Mystery(MysteryBase):
            pass


        class Plain:
            def __init__(self, x: int):
                self.x = x
        """,
    )
    write(custom / "broken.py", "class Broken(:\n")
    return custom


def test_custom_classes_resolve_with_kinds_and_args(custom_dir: Path) -> None:
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    info = registry.resolve("path", "my_trainer.SimpleTrainer")
    assert (info.origin, info.kind, info.name) == ("custom", "learner", "SimpleTrainer")
    assert info.file == str(custom_dir / "my_trainer.py")
    assert "learner" in info.kinds and "component" in info.kinds
    assert info.args["data_path"].default == "/tmp/data"  # module constant followed
    assert info.args["analytic_sender_id"].reference == "analytics_sender"
    assert info.args["extra"].default is MISSING and not info.args["extra"].required
    props = info.args_schema["properties"]
    assert props["lr"]["type"] == "number" and props["epochs"]["type"] == "integer"
    assert props["optimizer"]["enum"] == ["sgd", "adam"]
    assert props["transforms"] == {"type": "array", "items": {"type": "string"}, "default": ["a"]}
    assert props["model"] == {"default": None}  # a class: anything, a nested spec included
    jsonschema.validate(
        {"lr": 1, "epochs": 3, "model": {"path": "nets.SimpleNet"}}, info.args_schema
    )
    for bad in ({"lr": "fast"}, {"epochs": 2.5}, {"optimizer": "rmsprop"}, {"lrr": 0.1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, info.args_schema)

    net = registry.resolve("path", "nets.SimpleNet")  # re-exported by the package
    assert (net.path, net.kind, net.origin) == ("nets.simple.SimpleNet", "model", "custom")
    assert "my_trainer" not in sys.modules and "nets" not in sys.modules


def test_custom_classes_inherit_init_and_forward_kwargs(custom_dir: Path) -> None:
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    parent = registry.resolve("path", "my_trainer.SimpleTrainer")
    tuned = registry.resolve("path", "my_trainer.TunedTrainer")
    assert tuned.args == parent.args and tuned.kind == "learner"

    kw = registry.resolve("path", "my_trainer.KwTrainer")
    # its own argument, then the parent's, less the one it sets itself
    assert list(kw.args)[:2] == ["momentum", "lr"]
    assert "epochs" not in kw.args
    assert kw.var_kwargs is False and kw.args_schema["additionalProperties"] is False


def test_custom_classes_that_cannot_be_read_fully(custom_dir: Path) -> None:
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    mystery = registry.resolve("path", "odd.Mystery")
    assert mystery.kind == "unknown" and mystery.var_kwargs
    jsonschema.validate({"anything": [1, 2]}, mystery.args_schema)
    assert mystery.accepts("learner")  # benefit of the doubt

    plain = registry.resolve("path", "odd.Plain")
    assert plain.kind == "plain" and not plain.accepts("learner")
    assert plain.args["x"].required and plain.args_schema["required"] == ["x"]

    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "broken.Broken")
    assert err.value.code == "unresolvable"
    assert "broken.py syntax error at line 1" in err.value.message


def test_a_factory_function_is_a_component_of_the_kind_it_returns(custom_dir: Path) -> None:
    # FLARE builds whatever a path names: fed-sm's configs name networks.vgg.vgg11, a function
    write(
        custom_dir / "factories.py",
        """
        from nets import SimpleNet


        def make_net(pretrained: bool = False, hidden: int = 16, **kwargs) -> SimpleNet:
            \"\"\"A SimpleNet.\"\"\"
            return SimpleNet(hidden=hidden)


        def anything(width):
            return width
        """,
    )
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    made = registry.resolve("path", "factories.make_net")
    assert (made.path, made.kind, made.origin) == ("factories.make_net", "model", "custom")
    assert list(made.args) == ["pretrained", "hidden"]  # the first parameter is no self
    assert made.var_kwargs
    loose = registry.resolve("path", "factories.anything")
    assert loose.kind == "unknown" and loose.args["width"].required
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "factories.make_net.inner")
    assert err.value.code == "unresolvable"
    assert "factories" not in sys.modules


def test_a_class_imported_into_custom_is_judged_where_it_lives(custom_dir: Path) -> None:
    write(
        custom_dir / "reexport.py",
        """
        from subprocess import Popen

        from flconfig.tracking.senders import TBWriter
        """,
    )
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "reexport.Popen")
    assert err.value.code == "path-not-allowed"
    assert err.value.message == (
        "'reexport.Popen' is 'subprocess.Popen', which is not an allowed component path"
    )
    writer = registry.resolve("path", "reexport.TBWriter")
    assert (writer.origin, writer.path) == ("builtin", "flconfig.tracking.senders.TBWriter")


def test_custom_typos_get_candidates(custom_dir: Path) -> None:
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "my_trainer.SimpleTrainr")
    assert err.value.code == "unresolvable"
    assert err.value.candidates[0] == "my_trainer.SimpleTrainer"
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "my_traner.SimpleTrainer")
    assert err.value.code == "path-not-allowed"
    assert "my_trainer.SimpleTrainer" in err.value.candidates
    with pytest.raises(ResolveError):  # custom classes have no short name, as in FLARE
        registry.resolve("name", "SimpleTrainer")


def test_load_class_imports_custom_classes_from_custom(
    custom_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        custom_dir / "loadable.py",
        """
        from flconfig.components.base import Learner


        class Loadable(Learner):
            def __init__(self, lr: float = 0.1):
                self.lr = lr
        """,
    )
    write(custom_dir / "json.py", "class Shadowed:\n    pass\n")  # clashes with the stdlib
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "loadable", raising=False)
    registry = Registry.create(custom_dirs=[custom_dir], environ={})
    info = registry.resolve("path", "loadable.Loadable")
    assert str(custom_dir) not in sys.path and "loadable" not in sys.modules
    cls = registry.load_class(info)
    assert cls.__name__ == "Loadable" and cls(lr=0.5).lr == 0.5
    assert sys.path[-1] == str(custom_dir)  # appended, as FLARE does
    sys.modules.pop("loadable", None)

    # The stdlib json is what an import would give: refused when resolving, before any build.
    with pytest.raises(ResolveError, match="has the name of the standard-library module 'json'"):
        registry.resolve("path", "json.Shadowed")

    # An import error in the job's code is reported, not raised raw.
    with pytest.raises(ResolveError) as err:
        registry.load_class(registry.resolve("path", "odd.Plain"))
    assert err.value.code == "unresolvable" and "somewhere_unknown" in err.value.message
    sys.modules.pop("odd", None)


# --------------------------------------------------------------------------
# Argument specs of the built-ins


def test_learner_executor_args(registry: Registry) -> None:
    info = registry.resolve("name", "LearnerExecutor")
    learner_id = info.args["learner_id"]
    assert learner_id.required and learner_id.default is MISSING
    assert learner_id.reference == "learner" and learner_id.annotation == "str"
    assert info.args["train_task"].default == "train"
    assert info.args["train_task"].reference is None
    assert info.args_schema["required"] == ["learner_id"]
    assert info.args_schema["additionalProperties"] is False
    jsonschema.validate({"learner_id": "pt_learner"}, info.args_schema)
    for bad in ({}, {"learner_id": 3}, {"learner_id": "x", "learner": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, info.args_schema)


def test_scatter_and_gather_args(registry: Registry) -> None:
    info = registry.resolve("name", "ScatterAndGather")
    assert list(info.args) == [
        "min_clients", "num_rounds", "start_round", "wait_time_after_min_received",
        "aggregator_id", "persistor_id", "shareable_generator_id", "train_task_name",
        "train_timeout", "ignore_result_error", "allow_empty_global_weights",
        "task_check_period", "persist_every_n_rounds", "snapshot_every_n_rounds",
        "memory_gc_rounds", "enable_tensor_disk_offload",
    ]  # fmt: skip
    defaults = {name: spec.default for name, spec in info.args.items()}
    assert defaults["min_clients"] == 1000 and defaults["ignore_result_error"] is None
    assert defaults["task_check_period"] == 0.5 and defaults["persistor_id"] == ""
    refs = {name: spec.reference for name, spec in info.args.items() if spec.reference}
    assert refs == {
        "aggregator_id": "aggregator",
        "persistor_id": "persistor",
        "shareable_generator_id": "shareable_generator",
    }
    props = info.args_schema["properties"]
    assert props["min_clients"]["type"] == "integer"
    assert props["ignore_result_error"]["type"] == ["boolean", "null"]
    assert props["task_check_period"]["type"] == "number"
    assert "required" not in info.args_schema
    jsonschema.validate({"task_check_period": 1, "ignore_result_error": None}, info.args_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"min_clients": "2"}, info.args_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"min_clients": True}, info.args_schema)


def test_persistor_args_and_model_reference(registry: Registry) -> None:
    info = registry.resolve("path", "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor")
    assert info.args["model"].reference == "model"
    assert info.args["model"].annotation == "torch.nn.Module | str | None"
    assert info.args["filter_id"].reference == "filter"
    assert info.args["global_model_file_name"].default == "FL_global_model.pt"
    assert info.attributes["REFERENCES"] == {"model": "model"}
    schema = info.args_schema
    assert schema["properties"]["filter_id"]["type"] == ["string", "null"]
    jsonschema.validate({"model": {"path": "pt.simple_network.SimpleNetwork", "args": {}}}, schema)
    jsonschema.validate({"model": "net"}, schema)
    for bad in ({"model": 3}, {"model": ""}, {"exclude_vars": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_reference_kinds_of_builtins(registry: Registry) -> None:
    locator = registry.resolve("name", "PTFileModelLocator")
    assert locator.args["pt_persistor_id"].reference == "persistor"
    evaluation = registry.resolve("name", "CrossSiteModelEval")
    assert evaluation.args["model_locator_id"].reference == "model_locator"
    assert evaluation.args["formatter_id"].reference == "any"
    writer = registry.resolve("name", "TBWriter")
    assert writer.kinds == frozenset({"analytics_sender", "widget", "component"})
    assert writer.accepts("analytics_sender") and writer.accepts("any")
    assert not writer.accepts("learner")


def test_event_attributes_are_read_from_source(registry: Registry) -> None:
    writer = registry.resolve("name", "TBWriter")  # inherited from AnalyticsSender
    assert writer.attributes["EMITS_ARG"] == "event_type"
    assert (
        list(writer.args) == ["event_type", "queue_size", "writer_name"]
        and writer.args["event_type"].default == "analytix_log_stats"
    )
    converter = registry.resolve("name", "ConvertToFedEvent")
    assert converter.attributes["CONVERTS_ARG"] == "events_to_convert"
    assert converter.attributes["PREFIX_ARG"] == "fed_event_prefix"
    assert converter.args["events_to_convert"].required
    receiver = registry.resolve("name", "TBAnalyticsReceiver")
    assert receiver.kind == "receiver"
    assert receiver.attributes["LISTENS_ARG"] == "events"
    assert receiver.attributes["DEFAULT_EVENTS"] == ["analytix_log_stats", "fed.analytix_log_stats"]
    assert registry.resolve("name", "MLflowReceiver").attributes["DEFAULT_EVENTS"] == [
        "fed.analytix_log_stats"
    ]


def test_aggregator_schema_refined_by_args_schema(registry: Registry) -> None:
    info = registry.resolve("name", "InTimeAccumulateWeightedAggregator")
    jsonschema.validate({"expected_data_kind": "WEIGHTS"}, info.args_schema)
    jsonschema.validate({"expected_data_kind": {"model": "WEIGHT_DIFF"}}, info.args_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"expected_data_kind": "WEIGHT"}, info.args_schema)


@needs_example_job
def test_example_job_args_match_the_schemas(registry: Registry, pt_package: Path) -> None:
    allowing = Registry.create(allowed_modules=["pt"], environ={})
    for spec in example_specs():
        info = allowing.resolve("path", spec["path"])
        jsonschema.validate(spec.get("args", {}), info.args_schema)


# --------------------------------------------------------------------------
# Importing


def test_load_class_imports_the_builtin_classes(registry: Registry) -> None:
    sag = registry.resolve(
        "path", "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather"
    )
    assert registry.load_class(sag) is ScatterAndGather
    assert registry.load_class(registry.resolve("name", "TBWriter")) is TBWriter
    persistor = registry.resolve("name", "PTFileModelPersistor")
    assert registry.load_class(persistor) is PTFileModelPersistor


def test_validating_the_example_job_imports_nothing_heavy(tmp_path: Path) -> None:
    pypath = tmp_path / "pypath"
    write(pypath / "pt" / "__init__.py", "")
    write(pypath / "pt" / "learner_with_tb.py", PT_LEARNER)
    write(pypath / "pt" / "simple_network.py", PT_NETWORK)
    job = EXAMPLE_JOB if EXAMPLE_JOB.is_dir() else None
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(pypath)!r})
        from flconfig.registry import introspect
        from flconfig.registry import Registry

        job = {str(job) if job else None!r}
        paths = {sorted(EXPECTED_EXAMPLE)!r} + ["pt.learner_with_tb.PTLearner", "pt.simple_network.SimpleNetwork"]
        if job:
            paths = []
            for name in ("config_fed_server.json", "config_fed_client.json"):
                config = json.load(open(job + "/app/config/" + name))
                specs = config.get("components", []) + config.get("workflows", [])
                specs += [e["executor"] for e in config.get("executors", [])]
                specs += [s["args"]["model"] for s in specs if isinstance(s.get("args", {{}}).get("model"), dict)]
                paths += [s["path"] for s in specs]
        times = []
        for _ in range(3):
            introspect.clear_cache()
            start = time.perf_counter()
            registry = Registry.create(environ={{"FLCONFIG_ALLOW_MODULES": "pt"}})
            kinds = [registry.resolve("path", p).kind for p in paths]
            times.append(time.perf_counter() - start)
        heavy = [m for m in ("torch", "tensorboard", "grpc") if m in sys.modules]
        print(json.dumps({{"heavy": heavy, "ms": min(times) * 1000, "n": len(paths), "kinds": kinds}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "FLCONFIG_ALLOW_MODULES"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["heavy"] == []
    assert result["n"] == 13 and "unknown" not in result["kinds"]
    # How long it takes is measured by benchmarks/validate_cold_start.py, not asserted here.
    print(f"registry: {result['ms']:.1f} ms for {result['n']} components")


# --------------------------------------------------------------------------
# Type hints to schema, and reading source


@pytest.mark.parametrize(
    "annotation, schema",
    [
        ("int", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("int | float", {"type": "number"}),
        ("str | None", {"type": ["string", "null"]}),
        ("Optional[bool]", {"type": ["boolean", "null"]}),
        ("typing.Optional[int]", {"type": ["integer", "null"]}),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}),
        ("Sequence[str]", {"type": "array", "items": {"type": "string"}}),
        ("list", {"type": "array"}),
        ("Dict[str, float]", {"type": "object", "additionalProperties": {"type": "number"}}),
        ("Mapping", {"type": "object"}),
        ("Literal['a', 'b']", {"enum": ["a", "b"]}),
        (
            "Union[int, List[str]]",
            {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "string"}}]},
        ),
        (
            "tuple[int, int]",
            {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}},
        ),
        ("'str'", {"type": "string"}),
        ("Annotated[int, 'x']", {"type": "integer"}),
        ("Any", {}),
        ("torch.nn.Module", {}),
        ("MyClass | None", {}),
        ("Callable[[int], int]", {}),
        (None, {}),
        ("not valid (", {}),
    ],
)
def test_annotation_schema(annotation: str | None, schema: dict) -> None:
    assert annotation_schema(annotation) == schema


def test_introspection_survives_import_cycles_and_bad_sources(tmp_path: Path) -> None:
    write(tmp_path / "cyc_a.py", "from cyc_b import B\n\nclass A(B):\n    pass\n")
    write(tmp_path / "cyc_b.py", "from cyc_a import A\n\nclass B(A):\n    pass\n")
    write(tmp_path / "self_alias.py", "X = X\n\nclass C(X):\n    pass\n")
    reader = introspect.Introspector([tmp_path])
    a = reader.describe("cyc_a", "A")
    assert a is not None and a.kind is None
    c = reader.describe("self_alias", "C")
    assert c is not None and not c.complete
    assert reader.describe("missing_module", "A") is None
    assert reader.describe("cyc_a", "Nope") is None


def test_parse_cache_follows_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "changing.py", "class A:\n    def __init__(self, a: int): ...\n")
    first = introspect.Introspector([tmp_path]).describe("changing", "A")
    assert first is not None and [p.name for p in first.params or ()] == ["a"]
    path.write_text("class A:\n    def __init__(self, a: int, b: str = 'x'): ...\n    \n")
    second = introspect.Introspector([tmp_path]).describe("changing", "A")
    assert second is not None and [p.name for p in second.params or ()] == ["a", "b"]


# --------------------------------------------------------------------------
# One argument schema: the built-ins' bad values are refused by it, named and located


@pytest.mark.parametrize(
    "name, args, expected",
    [
        ("ScatterAndGather", {"min_clients": 0}, "'min_clients' of ScatterAndGather must be at least 1, not 0"),
        ("ScatterAndGather", {"num_rounds": 2.5}, "'num_rounds' of ScatterAndGather must be an integer"),
        ("ScatterAndGather", {"num_rounds": -1}, "'num_rounds' of ScatterAndGather must be at least 0"),
        ("ScatterAndGather", {"ignore_result_error": "yes"}, "'ignore_result_error' of ScatterAndGather must be"),
        ("ScatterAndGather", {"task_check_period": 0}, "'task_check_period' of ScatterAndGather must be greater than 0"),
        ("LearnerExecutor", {"learner_id": ""}, "'learner_id' of LearnerExecutor must not be empty"),
        ("InTimeAccumulateWeightedAggregator", {"expected_data_kind": "WEIGHT"},
         "'expected_data_kind' of InTimeAccumulateWeightedAggregator must be"),
        ("InTimeAccumulateWeightedAggregator", {"expected_data_kind": {}},
         "'expected_data_kind' of InTimeAccumulateWeightedAggregator must not be empty"),
        ("InTimeAccumulateWeightedAggregator", {"exclude_vars": "("},
         "'exclude_vars' of InTimeAccumulateWeightedAggregator must be a valid regular expression"),
        ("InTimeAccumulateWeightedAggregator", {"aggregation_weights": {"site-1": -0.5}},
         "'aggregation_weights.site-1' of InTimeAccumulateWeightedAggregator must be at least 0"),
        ("PTFileModelPersistor", {"global_model_file_name": "../model.pt"},
         "'global_model_file_name' of PTFileModelPersistor must be a file name without a folder"),
        ("PTFileModelPersistor", {"exclude_vars": "[a-"},
         "'exclude_vars' of PTFileModelPersistor must be a valid regular expression"),
        ("TBAnalyticsReceiver", {"tb_folder": "../outside"},
         "'tb_folder' of TBAnalyticsReceiver must be a relative path inside the run folder"),
        ("TBAnalyticsReceiver", {"tb_folder": "/tmp/tb"}, "'tb_folder' of TBAnalyticsReceiver must be a relative path"),
        ("TBAnalyticsReceiver", {"tb_folder": "a/../../tb"}, "'tb_folder' of TBAnalyticsReceiver must be a relative path"),
        ("TBAnalyticsReceiver", {"events": []}, "'events' of TBAnalyticsReceiver must not be empty"),
        ("JsonLinesReceiver", {"file_name": "x/y.jsonl"}, "'file_name' of JsonLinesReceiver must be a file name"),
        ("ConvertToFedEvent", {"events_to_convert": "analytix_log_stats"},
         "'events_to_convert' of ConvertToFedEvent must be a list"),
        ("ConvertToFedEvent", {"events_to_convert": ["x"], "fed_event_prefix": ""},
         "'fed_event_prefix' of ConvertToFedEvent must not be empty"),
        ("CrossSiteModelEval", {"participating_clients": ["site-1", 2]},
         "'participating_clients[1]' of CrossSiteModelEval must be a string"),
        ("CrossSiteModelEval", {"cross_val_dir": "C:/results"}, "'cross_val_dir' of CrossSiteModelEval must be a relative path"),
        ("TBWriter", {"queue_size": 0}, "'queue_size' of TBWriter must be at least 1, not 0"),
    ],
)
def test_bad_args_of_builtins_are_refused_by_their_schema(
    registry: Registry, name: str, args: dict, expected: str
) -> None:
    from flconfig.config.parsers import parse_json
    from flconfig.schemas import check_args

    info = registry.resolve("name", name)
    doc = parse_json(json.dumps({"args": args}), "config_fed_server.json")
    problems = check_args(doc, ("args",), args, info.args_schema, info.name)
    assert any(expected in p.message for p in problems), [p.message for p in problems]
    assert all(p.position is not None and p.position.line == 1 for p in problems)


@pytest.mark.parametrize(
    "name, args, error",
    [  # what one argument's schema cannot say: the constructors check it
        ("LearnerExecutor", {"learner_id": "l", "validate_task": "train"}, ValueError),
        ("InTimeAccumulateWeightedAggregator", {"exclude_vars": {"a": "x"}}, TypeError),
        ("PTFileModelPersistor", {"model": {"path": "x.Y"}}, TypeError),
    ],
)
def test_constructors_reject_what_the_schema_cannot_express(
    registry: Registry, name: str, args: dict, error: type[Exception]
) -> None:
    cls = registry.load_class(registry.resolve("name", name))
    with pytest.raises(error):
        cls(**args)


def test_an_args_schema_refines_the_type_hint_and_keeps_its_base_classes(registry: Registry) -> None:
    tb = registry.resolve("name", "TBAnalyticsReceiver").args_schema["properties"]
    # refined: the hint's type, the docstring's description and the default stay
    assert tb["tb_folder"]["type"] == "string" and tb["tb_folder"]["default"] == "tb_events"
    assert "relative to the run directory" in tb["tb_folder"]["description"]
    assert "pattern" in tb["tb_folder"]
    # inherited from AnalyticsReceiver's ARGS_SCHEMA, though the subclass has its own
    assert tb["events"]["minItems"] == 1


def test_constructors_keep_flare_defaults(registry: Registry) -> None:
    for info in registry.components():
        if info.origin != "builtin" or not info.module.startswith("flconfig.components."):
            continue
        cls = registry.load_class(info)
        required = {
            n: "x" if n != "events_to_convert" else ["x"]
            for n, a in info.args.items()
            if a.required
        }
        obj = cls(**required)
        for name, spec in info.args.items():
            if not spec.required and spec.default is not None:
                assert getattr(obj, name) == spec.default, (info.name, name)


def test_a_module_that_is_gone_is_not_a_way_in(registry: Registry) -> None:
    # flconfig.components.tracking held re-exports before the first release; it is gone,
    # and a config naming it is told where the class lives now.
    with pytest.raises(ResolveError) as err:
        registry.resolve("path", "flconfig.components.tracking.TBWriter")
    assert err.value.code == "unresolvable"
    assert err.value.message == (
        "'flconfig.components.tracking.TBWriter': flconfig has no module 'flconfig.components.tracking'"
    )
    assert err.value.candidates[0] == "flconfig.tracking.senders.TBWriter"


def test_the_flare_support_matrix_lists_every_flare_class_flconfig_builds() -> None:
    from flconfig.registry.aliases import FLARE_ALIASES

    matrix = (REPO / "docs" / "flare-support.md").read_text()
    table, not_yet = matrix.split("### Not supported yet", 1)
    for flare_path in FLARE_ALIASES:
        name = flare_path.rsplit(".", 1)[1]
        assert f"| `{name}` | " in table, f"docs/flare-support.md does not list {name}"
        assert f"`{flare_path}`" in table
        assert f"`{name}`," not in not_yet.split("## FLARE's API")[0], f"{name} is listed as not supported yet"


def test_the_built_in_components_declare_themselves_in_literals() -> None:
    # The registry reads ARGS_SCHEMA, NOT_SUPPORTED_YET, REFERENCES ... from the source
    # without importing it: one that names a constant instead of writing it out is lost.
    import ast

    root = REPO / "flconfig"
    lost = []
    for file in [*(root / "components").rglob("*.py"), *(root / "tracking").rglob("*.py")]:
        for cls in (n for n in ast.parse(file.read_text()).body if isinstance(n, ast.ClassDef)):
            for node in cls.body:
                target = node.target if isinstance(node, ast.AnnAssign) else (
                    node.targets[0] if isinstance(node, ast.Assign) else None)
                if isinstance(target, ast.Name) and target.id.isupper() and node.value is not None:
                    try:
                        ast.literal_eval(node.value)
                    except ValueError:
                        lost.append(f"{file.name}: {cls.name}.{target.id}")
    assert lost == []


def test_a_job_builds_its_model_from_a_factory_function(tmp_path: Path) -> None:
    from flconfig.runtime.planner import build_site
    from flconfig.validate.loader import inspect_job, load_job

    app = tmp_path / "job" / "app"
    write(app / "custom" / "factory_nets.py", """
        import torch
        from torch import nn


        class TinyNet(nn.Module):
            def __init__(self, hidden: int):
                super().__init__()
                self.fc = nn.Linear(2, hidden)


        def tiny(pretrained: bool = False, hidden: int = 3) -> TinyNet:
            return TinyNet(hidden)
        """)
    server = {"format_version": 2, "components": [
        {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
         "args": {"model": {"path": "factory_nets.tiny", "args": {"hidden": 5}}}},
        {"id": "shareable_generator", "name": "FullModelShareableGenerator"},
        {"id": "aggregator", "name": "InTimeAccumulateWeightedAggregator"}],
        "workflows": [{"id": "sag", "name": "ScatterAndGather", "args": {"min_clients": 1, "num_rounds": 1}}]}
    write(app / "config" / "config_fed_server.json", json.dumps(server))
    write(app / "config" / "config_fed_client.json", json.dumps({"format_version": 2, "executors": [
        {"tasks": ["train"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer"}}]}))
    write(tmp_path / "job" / "meta.json", json.dumps({"name": "f", "min_clients": 1,
                                                     "deploy_map": {"app": ["@ALL"]}}))
    job = load_job(tmp_path / "job", environ={})
    persistor = build_site(job, "server", workspace=tmp_path / "ws").components["persistor"]
    assert tuple(persistor.model.fc.weight.shape) == (5, 2)
    bad = json.loads(json.dumps(server))
    bad["components"][0]["args"]["model"]["args"] = {"hiden": 5}
    write(app / "config" / "config_fed_server.json", json.dumps(bad))
    _, problems = inspect_job(tmp_path / "job", environ={})
    assert [p.code for p in problems if p.severity == "error"] == ["unknown-arg"]
    assert "hiden" in problems[0].message
