"""Loading a job and building its sites: real components, wired by id, in dependency order."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import REPO

from flconfig.config.job import Job
from flconfig.errors import ConfigError
from flconfig.runtime.planner import build_site
from flconfig.validate.loader import inspect_job, load_job

JSON_JOB = REPO / "configs" / "tensorboard-streaming"
YAML_JOB = REPO / "configs" / "tensorboard-streaming-yaml"
CORPUS = REPO / "tests" / "corpus"
CLIENT = Path("app/config/config_fed_client.json")


@pytest.fixture(scope="module")
def job() -> Job:
    return load_job(JSON_JOB, environ={})


def copy_job(tmp_path: Path, edits: dict[Path, tuple[str, str]] | None = None) -> Path:
    """A copy of the JSON example with ``{file: (old, new)}`` text replacements."""
    target = tmp_path / "job"
    shutil.copytree(JSON_JOB, target)
    for rel, (old, new) in (edits or {}).items():
        text = (target / rel).read_text()
        assert text.count(old) == 1, old
        (target / rel).write_text(text.replace(old, new))
    return target


def plain_state(obj: Any) -> dict[str, Any]:
    """The public attributes of a built component that are plain config values."""
    return {k: v for k, v in vars(obj).items()
            if not k.startswith("_") and isinstance(v, (str, int, float, bool, list, dict, type(None)))}


# --- loading ----------------------------------------------------------------------------------


def test_load_job_returns_a_checked_job(job: Job) -> None:
    assert isinstance(job, Job)
    assert job.name == "tensorboard-streaming"
    assert job.errors == [] and job.problems == ()
    assert list(job.apps) == ["app"]
    assert job.server_config is not None and job.server_config.role == "server"
    assert job.apps["app"].client is not None


def test_client_sites_under_all_are_numbered_from_min_clients(job: Job) -> None:
    assert job.client_sites() == ["site-1", "site-2"]
    assert job.client_sites(3) == ["site-1", "site-2", "site-3"]


def test_client_sites_are_the_deploy_maps_when_it_names_them(tmp_path: Path) -> None:
    folder = copy_job(tmp_path, {Path("meta.json"): ('"app": ["@ALL"]', '"app": ["server", "alpha", "beta"]')})
    named = load_job(folder, environ={})
    assert named.client_sites() == ["alpha", "beta"]
    assert named.client_sites(1) == ["alpha"]
    with pytest.raises(ConfigError) as err:
        build_site(named, "gamma")
    assert "no app is deployed to site 'gamma'" in str(err.value)


# --- building ---------------------------------------------------------------------------------


def test_the_server_builds_real_components_wired_by_id(job: Job) -> None:
    import torch

    from flconfig.components.cross_site_model_eval import CrossSiteModelEval
    from flconfig.components.model_locators import PTFileModelLocator
    from flconfig.components.persistors import PTFileModelPersistor
    from flconfig.components.scatter_and_gather import ScatterAndGather
    from flconfig.examples.models import DigitsCNN
    from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver

    server = build_site(job, "server")
    assert server.role == "server"
    parts = server.components
    assert sorted(parts) == sorted(["persistor", "shareable_generator", "aggregator", "model_locator",
                                    "json_generator", "tb_analytics_receiver", "scatter_and_gather",
                                    "cross_site_validate"])
    assert all(obj.id == ident for ident, obj in parts.items())

    # A nested component is built first and handed over as the object...
    persistor = parts["persistor"]
    assert isinstance(persistor, PTFileModelPersistor)
    assert isinstance(persistor.model, DigitsCNN) and isinstance(persistor.model, torch.nn.Module)
    # ...while references stay ids, resolved at run start.
    locator = parts["model_locator"]
    assert isinstance(locator, PTFileModelLocator) and locator.pt_persistor_id == "persistor"
    sag = parts["scatter_and_gather"]
    assert isinstance(sag, ScatterAndGather)
    assert (sag.aggregator_id, sag.persistor_id, sag.shareable_generator_id) == (
        "aggregator", "persistor", "shareable_generator")
    # Variables are resolved with their native type.
    assert (sag.min_clients, sag.num_rounds, sag.train_task_name) == (2, 3, "train")
    assert isinstance(parts["tb_analytics_receiver"], TBAnalyticsReceiver)
    assert parts["tb_analytics_receiver"].events == ["fed.analytix_log_stats"]
    # Workflows run in the order the config lists them.
    assert [type(w) for w in server.workflows] == [ScatterAndGather, CrossSiteModelEval]
    assert server.executors == [] and server.filters == []


def test_the_server_is_built_in_dependency_order(job: Job) -> None:
    server = build_site(job, "server")
    order = list(server.components)  # filled as they are built
    assert [h.id for h in server.handlers] == order  # and they receive events in that order
    before = {"persistor": ["model_locator", "scatter_and_gather"],
              "aggregator": ["scatter_and_gather"],
              "shareable_generator": ["scatter_and_gather"],
              "model_locator": ["cross_site_validate"]}
    for first, laters in before.items():
        for later in laters:
            assert order.index(first) < order.index(later), order


def test_a_client_site_builds_its_executor_learner_and_sender(job: Job) -> None:
    from flconfig.components.learner_executor import LearnerExecutor
    from flconfig.examples.digits import DigitsLearner
    from flconfig.tracking.convert import ConvertToFedEvent
    from flconfig.tracking.senders import TBWriter

    site = build_site(job, "site-1")
    assert (site.site, site.role) == ("site-1", "client")
    learner = site.components["pt_learner"]
    assert isinstance(learner, DigitsLearner)
    assert (learner.lr, learner.epochs, learner.dataset) == (0.05, 2, "digits")
    assert learner.analytic_sender_id == "log_writer"  # a reference: still an id
    assert isinstance(site.components["log_writer"], TBWriter)
    assert isinstance(site.components["event_to_fed"], ConvertToFedEvent)
    [(tasks, executor)] = site.executors
    assert tasks == ["train", "submit_model", "validate"]
    assert isinstance(executor, LearnerExecutor) and executor.learner_id == "pt_learner"
    assert site.executor_for("validate") is executor
    assert site.executor_for("evaluate") is None
    # pt_learner is written first but names log_writer: log_writer is built before it.
    assert list(site.components) == ["log_writer", "pt_learner", "event_to_fed"]


def test_each_build_is_fresh(job: Job) -> None:
    one, two = build_site(job, "site-1"), build_site(job, "site-2")
    assert one.components["pt_learner"] is not two.components["pt_learner"]
    assert two.site == "site-2"


def test_system_variables_are_those_of_the_site_being_built(tmp_path: Path) -> None:
    folder = copy_job(tmp_path, {
        Path("app/config/config_fed_server.json"): ('"args": {"events": ["fed.analytix_log_stats"]}',
                                                    '"args": {"events": ["fed.analytix_log_stats"], '
                                                    '"tb_folder": "tb-{JOB_ID}"}')})
    built = build_site(load_job(folder, environ={}), "server", job_id="run42")
    assert built.components["tb_analytics_receiver"].tb_folder == "tb-run42"


# --- errors -----------------------------------------------------------------------------------


def test_load_job_raises_config_error_with_positions() -> None:
    with pytest.raises(ConfigError) as err:
        load_job(CORPUS / "dangling-id", environ={})
    [problem] = err.value.problems
    assert problem.code == "dangling-ref"
    assert problem.position is not None
    assert Path(problem.position.file).resolve() == (CORPUS / "dangling-id" / CLIENT).resolve()
    assert (problem.position.line, problem.position.column) == (11, 25)
    assert problem.json_path == ("executors", 0, "executor", "args", "learner_id")
    assert ":11:25: error: " in str(err.value) and "pt_lerner" in str(err.value)


def test_load_job_raises_on_a_syntax_error_too() -> None:
    with pytest.raises(ConfigError) as err:
        load_job(CORPUS / "json-missing-comma", environ={})
    [problem] = err.value.problems
    assert (problem.code, problem.position.line, problem.position.column) == ("syntax", 25, 20)


def test_load_job_accepts_warnings() -> None:
    loaded = load_job(CORPUS / "meta-workflow-min-clients-disagree", environ={})
    assert [p.severity for p in loaded.problems] == ["warning"]


def test_a_workflow_may_wait_for_more_sites_than_meta_schedules_on(tmp_path: Path) -> None:
    # FLARE: meta's min_clients is what the job needs to be scheduled; the workflow may want more.
    folder = copy_job(tmp_path, {Path("app/config/config_fed_server.json"):
                                 ('"min_clients": 2,', '"min_clients": 3,')})
    loaded = load_job(folder, environ={})
    assert loaded.problems == ()
    assert loaded.client_sites() == ["site-1", "site-2", "site-3"]  # launch starts all it waits for


SERVER = Path("app/config/config_fed_server.json")


def test_the_args_flare_added_to_its_classes_are_accepted(tmp_path: Path) -> None:
    # FLARE main's PTFileModelPersistor and ScatterAndGather arguments (FLARE-COMPAT.md).
    folder = copy_job(tmp_path, {SERVER: (
        '"model": {', '"load_weights_only": true, "allow_numpy_conversion": false, '
        '"load_device": "cpu", "model": {')})
    text = (folder / SERVER).read_text().replace(
        '"num_rounds": "{num_rounds}",',
        '"num_rounds": "{num_rounds}", "memory_gc_rounds": 2, "enable_tensor_disk_offload": true,')
    (folder / SERVER).write_text(text)
    loaded = load_job(folder, environ={})
    assert loaded.problems == ()
    built = build_site(loaded, "server")
    assert built.components["scatter_and_gather"].memory_gc_rounds == 2
    assert built.components["persistor"].allow_numpy_conversion is False


def test_a_checkpoint_is_never_unpickled_even_if_the_config_asks(tmp_path: Path) -> None:
    folder = copy_job(tmp_path, {SERVER: ('"model": {', '"load_weights_only": false, "model": {')})
    with pytest.raises(ConfigError) as err:
        load_job(folder, environ={})
    [problem] = err.value.problems
    assert problem.code == "bad-arg" and "load_weights_only" in problem.message
    assert problem.position is not None and problem.position.line == 17
    assert problem.message == "argument 'load_weights_only' of PTFileModelPersistor must be true, not false"


NETS = """from flconfig.examples.models import DigitsCNN


class WideCNN(DigitsCNN):
    def __init__(self):
        super().__init__(channels=4)
"""


def test_python_path_lets_a_job_name_classes_beside_it(tmp_path: Path) -> None:
    # FLARE's examples keep networks in a folder beside the job, found through PYTHONPATH.
    folder = copy_job(tmp_path, {SERVER: ('"flconfig.examples.models.DigitsCNN"', '"pt.nets.WideCNN"')})
    lib = tmp_path / "example"
    (lib / "pt").mkdir(parents=True)
    (lib / "pt" / "__init__.py").write_text("")
    (lib / "pt" / "nets.py").write_text(NETS)

    with pytest.raises(ConfigError) as err:
        load_job(folder, environ={})
    [problem] = err.value.problems
    assert problem.code == "path-not-allowed"
    assert "--python-path with the folder holding pt/" in (problem.hint or "")

    loaded = load_job(folder, environ={}, python_path=[lib])
    try:
        model = build_site(loaded, "server").components["persistor"].model
        assert type(model).__name__ == "WideCNN" and model.features[0].out_channels == 4
        assert type(model).__module__ == "pt.nets"
    finally:  # building imported this test's 'pt': leave no trace for other tests' 'pt'
        for name in [m for m in sys.modules if m == "pt" or m.startswith("pt.")]:
            del sys.modules[name]
        while str(lib.resolve()) in sys.path:
            sys.path.remove(str(lib.resolve()))


def test_python_path_allows_only_what_really_lies_inside_it(tmp_path: Path) -> None:
    folder = copy_job(tmp_path, {SERVER: ('"flconfig.examples.models.DigitsCNN"', '"pt.nets.WideCNN"')})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "nets.py").write_text(NETS)
    lib = tmp_path / "example"
    (lib / "pt").mkdir(parents=True)
    (lib / "pt" / "__init__.py").write_text("")
    (lib / "pt" / "nets.py").symlink_to(outside / "nets.py")
    _, problems = inspect_job(folder, environ={}, python_path=[lib])
    assert [p.code for p in problems if p.is_error] == ["path-not-allowed"]
    _, problems = inspect_job(folder, environ={}, python_path=[tmp_path / "nowhere"])
    assert any(p.code == "usage" and "--python-path folder does not exist" in p.message for p in problems)


def test_a_constructor_that_rejects_its_args_fails_the_build_with_a_position(tmp_path: Path) -> None:
    # Valid by the schema (two strings), refused by LearnerExecutor: one task for two roles.
    folder = copy_job(tmp_path, {CLIENT: ('"learner_id": "pt_learner"',
                                          '"learner_id": "pt_learner", "validate_task": "train"')})
    loaded = load_job(folder, environ={})
    with pytest.raises(ConfigError) as err:
        build_site(loaded, "site-1")
    [problem] = err.value.problems
    assert problem.code == "build-failed"
    assert "LearnerExecutor" in problem.message and "must be different task names" in problem.message
    assert problem.position is not None and problem.position.line == 7
    assert problem.json_path == ("executors", 0, "executor")


# --- JSON and YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize("site", ["server", "site-1"])
def test_the_yaml_twin_builds_the_same_components(job: Job, site: str) -> None:
    twin = load_job(YAML_JOB, environ={})
    assert twin.problems == ()
    assert twin.client_sites() == job.client_sites()
    from_json, from_yaml = build_site(job, site), build_site(twin, site)

    def planned(built):  # what was built from, without where it was written
        def walk(c):
            return (c.id, c.cls.path, dict(c.args), {k: walk(v) for k, v in c.nested.items()})

        plan = built.plan
        return ([walk(c) for c in plan.components], plan.workflows,
                [(e.tasks, walk(e.executor)) for e in plan.executors],
                [(f.section, f.tasks, walk(f.filter)) for f in plan.filters])

    assert planned(from_json) == planned(from_yaml)

    assert [type(h) for h in from_json.handlers] == [type(h) for h in from_yaml.handlers]
    assert list(from_json.components) == list(from_yaml.components)
    for ident, obj in from_json.components.items():
        assert plain_state(obj) == plain_state(from_yaml.components[ident]), ident
    assert [t for t, _ in from_json.executors] == [t for t, _ in from_yaml.executors]


def test_checks_are_pure_the_job_is_the_same_after_any_number_of_them(tmp_path: Path) -> None:
    """Checks return problems and change nothing; resolving classes is part of loading."""
    from flconfig.validate.checks import check_job
    from flconfig.validate.loader import inspect_job

    job_dir = copy_job(tmp_path, {CLIENT: ('"learner_id": "pt_learner"', '"learner_id": "pt_lerner"')})
    job, problems = inspect_job(job_dir, environ={})
    assert job is not None
    assert any("pt_lerner" in p.message for p in problems)
    stored = job.problems
    infos = [spec.info for config in job.configs() for spec in config.all_specs()]
    first, second = check_job(job), check_job(job)
    assert first == second
    assert {p.message for p in first} <= {p.message for p in problems}
    assert job.problems == stored == tuple(problems)
    assert [spec.info for config in job.configs() for spec in config.all_specs()] == infos


def test_a_loaded_job_cannot_be_changed(job: Job) -> None:
    """The checked job is immutable: its parts are frozen, its collections read-only."""
    import dataclasses

    config = job.server_config
    assert config is not None
    spec = config.components[0]
    for obj, attr, value in ((job, "problems", ()), (job.apps[next(iter(job.apps))], "client", None),
                             (config, "components", ()), (spec, "info", None), (spec, "args", {})):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, value)
    with pytest.raises(TypeError):
        job.apps["other"] = job.apps[next(iter(job.apps))]  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.components.append(spec)  # type: ignore[attr-defined]
    assert spec.info is not None and spec.info.args_schema  # resolved at loading, not later


def test_flares_system_variables_are_defined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLARE defines ROOT_URL, CP_URL, RELAY_URL, SECURE_MODE, JOB_CUSTOM_DIR, JOB_CONFIG_DIR
    and PYTHONPATH for its configs; a config naming them is valid here too."""
    from flconfig.validate.loader import inspect_job

    names = ["ROOT_URL", "CP_URL", "RELAY_URL", "SECURE_MODE", "JOB_CONFIG_DIR", "PYTHONPATH"]
    uses = "".join(f'"uses_{n.lower()}": "{{{n}}}", ' for n in names)
    job_dir = copy_job(tmp_path, {CLIENT: ('"format_version": 2,', f'"format_version": 2, {uses}')})
    monkeypatch.setenv("PYTHONPATH", "/opt/process-path")  # this process's: never read
    unset, _ = inspect_job(job_dir)
    assert unset is not None and unset.apps["app"].client.doc.data["uses_pythonpath"] == ""  # type: ignore[union-attr]
    job, problems = inspect_job(job_dir, environ={"PYTHONPATH": "/opt/flare-examples"})
    assert problems == [] and job is not None
    data = job.apps["app"].client.doc.data  # type: ignore[union-attr]
    assert data["uses_root_url"] == data["uses_cp_url"] == data["uses_relay_url"] == "grpc://127.0.0.1"
    assert data["uses_secure_mode"] is False  # a whole-string reference keeps the value's type
    assert data["uses_job_config_dir"] == str(job_dir / "app" / "config")
    assert data["uses_pythonpath"] == "/opt/flare-examples"
