"""JSON Schemas of job files, `check_document` / `check_args`, and `flconfig schema`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import REPO
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from flconfig.cli import main
from flconfig.config.parsers import load_document, parse_json, parse_yaml
from flconfig.schemas import SCHEMA_KINDS, bundle_schema, check_args, check_document, load_schema

PACKAGE_SCHEMAS = REPO / "flconfig" / "schemas"
TOP_SCHEMAS = REPO / "schemas"
FLARE_JOB = REPO / ".." / "shared" / "flare-jobs" / "tensorboard-streaming"


def _walk(node, where=""):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


def _only(problems):
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    return problems[0]


def _where(problem):
    return (problem.position.line, problem.position.column, problem.code, problem.severity)


# --- the schema files ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_is_valid_draft7_with_its_id(kind):
    schema = load_schema(kind)
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == f"https://flconfig.dev/schemas/{kind}.schema.json"


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_every_property_has_a_description(kind):
    missing = [
        f"{where}/properties/{name}"
        for where, node in _walk(load_schema(kind))
        for name, sub in (node.get("properties") or {}).items()
        if isinstance(node.get("properties"), dict) and not (isinstance(sub, dict) and sub.get("description"))
    ]
    assert missing == []


def test_the_top_level_schemas_are_the_package_copy_not_a_second_one():
    # One copy: editors point at schemas/, which is a link to the schemas the package ships.
    assert TOP_SCHEMAS.is_symlink()
    assert TOP_SCHEMAS.resolve() == PACKAGE_SCHEMAS.resolve()
    for kind in SCHEMA_KINDS:
        assert (TOP_SCHEMAS / f"{kind}.schema.json").is_file()


def test_every_ref_resolves_offline_from_the_package_files():
    schemas = [json.loads((PACKAGE_SCHEMAS / f"{k}.schema.json").read_text()) for k in SCHEMA_KINDS]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s, DRAFT7)) for s in schemas)
    refs = 0
    for schema in schemas:
        resolver = registry.resolver(base_uri=schema["$id"])
        for _, node in _walk(schema):
            if isinstance(node.get("$ref"), str):
                assert resolver.lookup(node["$ref"]).contents, node["$ref"]
                refs += 1
    assert refs >= 8


SAMPLES = {
    "meta": [{"deploy_map": {"app": ["@ALL", {"sites": ["a"]}]}}, {"deploy_map": {"x y": [{"site": 1}]}}],
    "client": [
        {"format_version": 2, "executors": [{"tasks": ["t"], "executor": {"path": "a.B"}}]},
        {"format_version": 2, "executors": [{"tasks": [], "executor": {"arg": 1}}],
         "task_data_filters": [{"tasks": ["t"], "filters": [{"id": ""}]}], "components": [{"path": 1}]},
    ],
    "server": [
        {"format_version": 2, "workflows": [{"name": "X"}]},
        {"format_version": 2, "server": {"x": 1}, "workflows": [{}], "components": [{"name": "Y"}]},
    ],
    "component": [{"path": "a.B", "args": {}}, {"id": 3, "config_type": "x"}],
}


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_bundled_schema_refers_only_to_itself_and_judges_alike(kind):
    bundle = bundle_schema(kind)
    Draft7Validator.check_schema(bundle)
    refs = [node["$ref"] for _, node in _walk(bundle) if "$ref" in node]
    assert all(ref.startswith("#") for ref in refs)
    schemas = [load_schema(k) for k in SCHEMA_KINDS]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s, DRAFT7)) for s in schemas)
    modular = Draft7Validator(load_schema(kind), registry=registry)
    bundled = Draft7Validator(bundle)  # no registry: a reference to another file would fail

    def errors(validator, sample):
        return sorted((list(e.absolute_path), e.message) for e in validator.iter_errors(sample))

    good, bad = SAMPLES[kind]
    assert errors(bundled, good) == errors(modular, good) == []
    assert errors(bundled, bad) == errors(modular, bad) != []


@pytest.mark.parametrize("kind", ["meta", "client", "server"])
def test_a_documents_own_schema_key_is_allowed(kind):
    body = {"meta": '"deploy_map": {"app": ["@ALL"]}',
            "client": '"format_version": 2, "executors": [{"tasks": ["train"], "executor": {"path": "a.B"}}]',
            "server": '"format_version": 2, "workflows": [{"path": "a.B"}]'}[kind]
    text = f'{{"$schema": "https://flconfig.dev/schemas/{kind}.schema.json", {body}}}'
    assert check_document(parse_json(text, "f.json"), kind) == []


# --- the FLARE example job -------------------------------------------------------------------


@pytest.mark.parametrize("kind, rel", [
    ("meta", "meta.json"),
    ("client", "app/config/config_fed_client.json"),
    ("server", "app/config/config_fed_server.json"),
])
def test_the_flare_tensorboard_job_passes(kind, rel):
    # How fast: benchmarks/validate_cold_start.py (the whole validate, under 0.3 s).
    if not FLARE_JOB.is_dir():
        pytest.skip("the FLARE example job is not checked out next to the repository")
    doc = load_document(FLARE_JOB / rel)
    assert check_document(doc, kind) == []


# --- broken documents: what the user sees ----------------------------------------------------

CLIENT_OK_EXECUTORS = '"executors": [{"tasks": ["train"], "executor": {"path": "a.B"}}]'


def test_wrong_format_version():
    text = '{\n  "format_version": 3,\n  ' + CLIENT_OK_EXECUTORS + "\n}\n"
    problem = _only(check_document(parse_json(text, "c.json"), "client"))
    assert _where(problem) == (2, 21, "schema", "error")
    assert problem.message == "'format_version' must be 2, not 3"
    assert problem.json_path == ("format_version",)
    assert problem.hint == "set it to 2"
    assert str(problem).startswith("c.json:2:21: error: 'format_version' must be 2, not 3 [format_version]")


def test_quoted_format_version_says_to_drop_the_quotes():
    text = '{"format_version": "2", ' + CLIENT_OK_EXECUTORS + "}"
    problem = _only(check_document(parse_json(text, "c.json"), "client"))
    assert problem.message == "'format_version' must be 2, not '2'"
    assert problem.hint == "set it to 2 (without quotes)"


# One mistake, one problem: where it is, what it says, what to do. (text, parser, kind,
# (line, col, code, severity), message, json_path or None, the hint's start or None)
ONE_PROBLEM = {
    "missing executors: at the object, with an example": (
        '\n{\n  "format_version": 2,\n  "components": []\n}\n', "json", "client",
        (2, 1, "missing-key", "error"), "missing required key 'executors'", None,
        'add \'executors\' — for example {"executors": [{"tasks": ["train"'),
    "misspelt executors: one error at the key, with a suggestion": (
        '{\n  "format_version": 2,\n  "excutors": []\n}\n', "json", "client",
        (3, 3, "unknown-key", "error"), "unknown key 'excutors' in client config — did you mean 'executors'?",
        ("excutors",), "rename it to 'executors'"),
    "a misspelt optional key in YAML is an error too": (
        "format_version: 2\nexecutors:\n  - tasks: [train]\n    executor: {path: a.B}\ncomponets: []\n", "yaml",
        "client", (5, 1, "unknown-key", "error"),
        "unknown key 'componets' in client config — did you mean 'components'?", ("componets",), None),
    "a variable next to the key it resembles is only a warning": (
        '{"format_version": 2, "workflows": [{"path": "a.B"}], "workflow": "x"}', "json", "server",
        (1, 55, "unknown-key", "warning"), "key 'workflow' looks like a misspelling of 'workflows', which is also set",
        None, None),
    "tasks not a list": (
        '{\n  "format_version": 2,\n  "executors": [\n    {"tasks": "train", "executor": {"path": "a.B"}}\n  ]\n}\n',
        "json", "client", (4, 15, "schema", "error"), "expected a list, got a string ('train')",
        ("executors", 0, "tasks"), None),
    "empty tasks": (
        '{"format_version": 2,\n "executors": [{"tasks": [], "executor": {"path": "a.B"}}]}', "json", "client",
        (2, 26, "schema", "error"), "'tasks' must not be empty", None, None),
    "a component without id": (
        '{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ',\n "components": [\n   {"path": "a.B"}\n ]}', "json",
        "client", (3, 4, "missing-key", "error"), "missing required key 'id' in component", ("components", 0),
        "add 'id' — The name other components use"),
    "a component with neither path nor name": (
        '{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ',\n "components": [{"id": "x", "args": {}}]}', "json",
        "client", (2, 17, "missing-key", "error"), "component needs one of 'path', 'class_path' or 'name'", None,
        'add "path": "package.module.ClassName"'),
    "arg instead of args": (
        '{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ',\n "components": [\n  {"id": "x", "path": "a.B",\n'
        '   "arg": {"lr": 0.1}}]}', "json", "client", (4, 4, "unknown-key", "error"),
        "unknown key 'arg' in component — did you mean 'args'?", ("components", 0, "arg"), "rename it to 'args'"),
    # One of FLARE's examples has a stray "args.events" beside "args" (newton_raphson, 2.5).
    "an unknown spec key is a warning, as FLARE ignores it": (
        '{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ',\n "components": [\n  {"id": "x", "path": "a.B", '
        '"args": {},\n   "args.events": ["e"]}]}', "json", "client", (4, 4, "unknown-key", "warning"),
        "unknown key 'args.events' in component is ignored, as FLARE ignores it", None,
        "to pass 'events' to the component, put it inside 'args'; else remove it"),
    "a misspelt path is reported once, not also as a missing path": (
        '{"format_version": 2, "workflows": [{"pth": "a.B"}]}', "json", "server",
        (1, 38, "unknown-key", "error"), "unknown key 'pth' in component — did you mean 'path'?", None, None),
    "a path without a dot": (
        '{"format_version": 2, "workflows": [{"path": "ScatterAndGather"}]}', "json", "server",
        (1, 46, "schema", "error"),
        "'path' must be a dotted class path such as 'package.module.ClassName', not 'ScatterAndGather'", None, None),
    "a bad filter direction": (
        '{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ',\n "task_result_filters": [\n  {"tasks": ["train"], '
        '"filters": [{"path": "a.F"}], "direction": "both"}]}', "json", "client", (3, 67, "schema", "error"),
        "'direction' must be one of 'in', 'out' or 'inout', not 'both'", None, None),
    "a negative heart_beat_timeout": (
        '{\n  "format_version": 2,\n  "server": {"heart_beat_timeout": -5},\n  "workflows": [{"path": "a.B"}]\n}',
        "json", "server", (3, 36, "schema", "error"), "'heart_beat_timeout' must be greater than 0, not -5",
        ("server", "heart_beat_timeout"), None),
    "a YAML 1.1 trap: its note becomes the hint": (
        "format_version: 2\nserver:\n  heart_beat_timeout: 6e2\nworkflows:\n  - path: a.B\n", "yaml", "server",
        (3, 23, "schema", "error"), "expected a number, got a string ('6e2')", None,
        "YAML 1.1 reads 6e2 as the string"),
    "an empty deploy_map": (
        '{\n  "name": "job",\n  "deploy_map": {}\n}', "json", "meta", (3, 17, "schema", "error"),
        "'deploy_map' must not be empty", None, None),
    "min_clients 0": (
        '{"min_clients": 0, "deploy_map": {"app": ["@ALL"]}}', "json", "meta", (1, 17, "schema", "error"),
        "'min_clients' must be at least 1, not 0", None, None),
    "a bad app name, at the key": (
        '{"deploy_map": {\n  "app": ["server"],\n  "my app": ["site-1"]\n}}', "json", "meta",
        (3, 3, "schema", "error"), None, None, None),
    "meta's unknown keys are allowed, but near misses warn": (
        '{"deploy_map": {"app": ["@ALL"]}, "min_client": 2, "owner": "me", "job_id": "abc"}', "json", "meta",
        (1, 35, "unknown-key", "warning"), "unknown key 'min_client' in job meta — did you mean 'min_clients'?",
        None, None),
    "a document that is not an object": (
        "[1, 2]", "json", "meta", (1, 1, "schema", "error"), "expected an object, got a list", None, None),
}


@pytest.mark.parametrize("case", sorted(ONE_PROBLEM))
def test_one_mistake_is_one_problem_at_its_place_saying_what_and_how(case: str) -> None:
    text, parser, kind, where, message, json_path, hint = ONE_PROBLEM[case]
    parse = parse_json if parser == "json" else parse_yaml
    problem = _only(check_document(parse(text, f"c.{parser}"), kind))
    assert _where(problem) == where
    if message is not None:
        assert problem.message == message
    if json_path is not None:
        assert problem.json_path == json_path
    if hint is not None:
        assert problem.hint.startswith(hint)


def test_a_bad_app_names_message_says_what_an_app_name_is() -> None:
    text = ONE_PROBLEM["a bad app name, at the key"][0]
    problem = _only(check_document(parse_json(text, "meta.json"), "meta"))
    assert problem.message.startswith("key 'my app' in 'deploy_map' must be an app folder name")


def test_filter_direction_ignores_case_like_flare():
    text = ('{"format_version": 2, ' + CLIENT_OK_EXECUTORS + ', "task_data_filters": '
            '[{"tasks": ["train"], "filters": [{"path": "a.F"}], "direction": "InOut"}]}')
    assert check_document(parse_json(text, "c.json"), "client") == []


def test_a_whole_variable_reference_is_not_judged_by_type():
    text = '{"format_version": 2, "hb": 600, "server": {"heart_beat_timeout": "{hb}"}, "workflows": [{"path": "a.B"}]}'
    assert check_document(parse_json(text, "s.json"), "server") == []


def test_deploy_map_sites_objects_and_their_misspelling():
    good = '{"deploy_map": {"a": ["server", {"sites": ["site-1"]}], "b": [{"targets": ["site-2"]}]}}'
    assert check_document(parse_json(good, "meta.json"), "meta") == []
    bad = '{"deploy_map": {"a": [{"site": ["site-1"]}, 5]}}'
    problems = check_document(parse_json(bad, "meta.json"), "meta")
    assert [p.message for p in problems] == [
        "unknown key 'site' in deploy_map entry — did you mean 'sites'?",
        "expected a string or an object, got an integer (5)",
    ]


def test_all_problems_in_one_pass_sorted_by_position():
    text = ('{\n  "format_version": 1,\n  "executors": [{"tasks": [""], "executor": {"path": "a.B", "x": 1}}],\n'
            '  "components": [{"id": "", "path": "a.B"}],\n  "default_task_fetch_interval": 0\n}')
    problems = check_document(parse_json(text, "c.json"), "client")
    assert [(p.position.line, p.position.column) for p in problems] == [(2, 21), (3, 28), (3, 61), (4, 25), (5, 34)]
    assert [p.message for p in problems] == [
        "'format_version' must be 2, not 1",
        "'tasks[0]' must not be empty",
        "unknown key 'x' in component is ignored, as FLARE ignores it",
        "'id' must not be empty",
        "'default_task_fetch_interval' must be greater than 0, not 0",
    ]


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="unknown schema kind 'job'"):
        check_document(parse_json("{}", "x.json"), "job")


# --- check_args ------------------------------------------------------------------------------

LEARNER_SCHEMA = {
    "type": "object",
    "properties": {"lr": {"type": "number"}, "epochs": {"type": "integer"},
                   "model": {"type": "string"}, "learner_id": {"type": "string"}},
    "required": ["learner_id"],
    "additionalProperties": False,
}
ARGS_TEXT = '{"id": "l", "path": "a.B",\n "args": {\n   "learner_id": "x",\n   %s\n }}'


def _check_args(line, schema=LEARNER_SCHEMA, label="DigitsLearner"):
    doc = parse_json(ARGS_TEXT % line, "c.json")
    return check_args(doc, ("args",), doc.data["args"], schema, label)


def test_unknown_argument_with_suggestion():
    problem = _only(_check_args('"lr_rate": 0.1'))
    assert _where(problem) == (4, 4, "unknown-arg", "error")
    assert problem.message == "unknown argument 'lr_rate' for DigitsLearner — did you mean 'lr'?"
    assert problem.json_path == ("args", "lr_rate")


def test_unknown_argument_without_suggestion_lists_the_arguments():
    problem = _only(_check_args('"zzz": 1'))
    assert problem.message == "unknown argument 'zzz' for DigitsLearner"
    assert problem.hint == "DigitsLearner takes: lr, epochs, model, learner_id"


def test_argument_of_the_wrong_type():
    problem = _only(_check_args('"epochs": "5"'))
    assert _where(problem) == (4, 14, "bad-arg", "error")
    assert problem.message == "argument 'epochs' of DigitsLearner must be an integer, got '5' (a string)"
    assert problem.hint == "write it without quotes: 5"


def test_missing_required_argument():
    doc = parse_json('{"id": "e", "path": "a.B",\n "args": {"x": 1}}', "c.json")
    schema = {"type": "object", "properties": {"learner_id": {"type": "string"}}, "required": ["learner_id"]}
    problem = _only(check_args(doc, ("args",), doc.data["args"], schema, "LearnerExecutor"))
    assert _where(problem) == (2, 10, "missing-arg", "error")
    assert problem.message == "missing required argument 'learner_id' for LearnerExecutor"


def test_nested_components_and_variable_references_are_not_judged_by_type():
    assert _check_args('"model": {"path": "net.Net", "args": {}}, "epochs": "{epochs}"') == []


def test_args_of_a_component_without_args_are_located_at_the_component():
    doc = parse_json('{"components": [\n  {"id": "e", "path": "a.B"}]}', "c.json")
    schema = {"type": "object", "required": ["learner_id"]}
    problem = _only(check_args(doc, ("components", 0, "args"), {}, schema, "LearnerExecutor"))
    assert (problem.position.line, problem.position.column) == (2, 3)


# --- flconfig schema -------------------------------------------------------------------------


def test_cli_prints_a_schema_exactly(capsys):
    assert main(["schema", "client"]) == 0
    assert capsys.readouterr().out == (PACKAGE_SCHEMAS / "client.schema.json").read_text()


def test_cli_prints_a_bundled_schema(capsys):
    assert main(["schema", "server", "--bundle"]) == 0
    assert json.loads(capsys.readouterr().out) == bundle_schema("server")


def test_cli_lists_the_schemas(capsys):
    assert main(["schema", "--list"]) == 0
    out = capsys.readouterr().out
    for kind in SCHEMA_KINDS:
        assert f"https://flconfig.dev/schemas/{kind}.schema.json" in out


def test_cli_writes_all_schemas(tmp_path, capsys):
    target = tmp_path / "out" / "schemas"
    assert main(["schema", "--write", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{k}.schema.json" for k in SCHEMA_KINDS)
    for path in target.iterdir():
        assert path.read_bytes() == (PACKAGE_SCHEMAS / path.name).read_bytes()
    assert f"wrote {target / 'meta.schema.json'}" in capsys.readouterr().out


def test_cli_rejects_an_unknown_kind(capsys):
    assert main(["schema", "job"]) == 2
    err = capsys.readouterr().err
    assert "unknown schema 'job'; choose one of: meta, client, server, component" in err


def test_checking_imports_no_heavy_modules():
    code = ("import sys, flconfig.schemas, flconfig.cli.schema_cmd; "
            "print([m for m in ('torch', 'tensorboard', 'grpc') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
