"""Job meta rules: the deploy map (as FLARE checks it at submission), min and mandatory clients."""

from __future__ import annotations

import json

import pytest

from flconfig.config.documents import Document
from flconfig.config.meta import MetaInfo, check_meta, default_meta
from flconfig.config.parsers import parse_json
from flconfig.errors import Problem
from flconfig.schemas import check_document


def check(text: str):
    return check_meta(parse_json(text, "meta.json"))


def at(problem: Problem) -> tuple[int, int]:
    assert problem.position is not None and problem.position.file == "meta.json"
    return problem.position.line, problem.position.column


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


# --- valid metas -----------------------------------------------------------------------------

def test_single_app_at_all():
    info, problems = check(json.dumps({
        "name": "tb", "resource_spec": {}, "min_clients": 2, "deploy_map": {"app": ["@ALL"]}}))
    assert problems == []
    assert info == MetaInfo("tb", 2, (), {"app": ("@ALL",)}, True)
    assert info.server_app() == "app"
    assert info.client_sites() == ()
    assert info.app_for("site-9") == "app" and info.app_for("server") == "app"
    assert info.apps_needing("server") == {"app"} and info.apps_needing("client") == {"app"}


def test_at_all_is_matched_case_insensitively_and_normalised():
    info, problems = check('{"deploy_map": {"app": ["@all"]}, "min_clients": 5}')
    assert problems == []  # min_clients is not checked against @ALL
    assert info.deploy_all and info.deploy_map == {"app": ("@ALL",)}
    _, problems = check('{"deploy_map": {"app": ["@All"], "other": ["site-1"]}}')
    assert [p.code for p in problems] == ["deploy-map"]


def test_multi_app_job():
    info, problems = check(json.dumps({
        "name": "hist", "min_clients": 2, "mandatory_clients": ["site-2"],
        "deploy_map": {"app_server": ["server"], "app_site-1": ["site-1"], "app_site-2": ["site-2"]}}))
    assert problems == []
    assert not info.deploy_all
    assert info.mandatory_clients == ("site-2",)
    assert info.server_app() == "app_server"
    assert info.client_sites() == ("site-1", "site-2")
    assert info.app_for("site-2") == "app_site-2"
    assert info.app_for("site-3") is None
    assert info.apps_needing("server") == {"app_server"}
    assert info.apps_needing("client") == {"app_site-1", "app_site-2"}


def test_sites_and_targets_entry_forms():
    info, problems = check(json.dumps({"deploy_map": {
        "app": ["server", {"sites": ["site-1", "site-2"]}],
        "other": [{"targets": ["site-3"]}, "site-4"],
    }}))
    assert problems == []
    assert info.deploy_map == {"app": ("server", "site-1", "site-2"), "other": ("site-3", "site-4")}
    assert info.client_sites() == ("site-1", "site-2", "site-3", "site-4")
    assert info.app_for("site-3") == "other"


def test_an_app_deployed_by_one_object_or_one_name():
    # FLARE main's extract_participants: "app": {"targets": [...]}, {"sites": [...]} or "site".
    info, problems = check(json.dumps({"deploy_map": {
        "app": {"targets": ["server", "site-1"]}, "b": {"sites": ["site-2"]}, "c": "site-3"}}))
    assert problems == []
    assert info.deploy_map == {"app": ("server", "site-1"), "b": ("site-2",), "c": ("site-3",)}
    info, problems = check('{"deploy_map": {"app": {"targets": ["@ALL"]}}}')
    assert problems == [] and info.deploy_map == {"app": ("@ALL",)}


def test_the_meta_schema_takes_the_same_forms():
    import jsonschema

    from flconfig.schemas import load_schema

    schema = load_schema("meta")
    for form in ({"targets": ["@ALL"]}, "@ALL", ["server", {"sites": ["site-1"]}]):
        jsonschema.validate({"name": "j", "deploy_map": {"app": form}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "j", "deploy_map": {"app": 3}}, schema)


def test_shared_server_and_client_app():
    info, problems = check('{"deploy_map": {"app": ["server", "site-1", "site-2"]}, "min_clients": 2}')
    assert problems == []
    assert info.apps_needing("server") == {"app"} == info.apps_needing("client")


def test_empty_app_is_allowed_with_a_warning():
    info, problems = check('{"deploy_map": {"app": ["@ALL"], "spare": []}}')
    assert errors(problems) == []
    assert [p.severity for p in problems] == ["warning"]
    assert info.deploy_map["spare"] == ()


def test_default_meta_for_legacy_folder():
    info = default_meta("my_job")
    assert info == MetaInfo("my_job", 1, (), {"my_job": ("@ALL",)}, True)
    assert info.server_app() == "my_job" and info.app_for("site-1") == "my_job"


def test_apps_needing_rejects_unknown_roles():
    with pytest.raises(ValueError):
        default_meta("a").apps_needing("worker")  # type: ignore[arg-type]


# --- @ALL ------------------------------------------------------------------------------------

def test_no_other_site_with_at_all_each_offender_reported():
    text = ('{\n'
            '  "deploy_map": {\n'
            '    "app": ["@ALL", "site-1"],\n'
            '    "app2": ["server", {"sites": ["site-2"]}]\n'
            '  }\n'
            '}\n')
    info, problems = check(text)
    assert info.deploy_all
    assert [p.code for p in problems] == ["deploy-map"] * 3
    assert [at(p) for p in problems] == [(3, 21), (4, 14), (4, 35)]
    assert "site 'site-1' cannot be listed when @ALL is used" in problems[0].message
    assert all(p.hint for p in problems)


def test_at_all_twice():
    _, problems = check('{"deploy_map": {\n"a": ["@ALL"],\n"b": ["@all"]}}')
    assert len(problems) == 1 and at(problems[0]) == (3, 7)
    assert "@ALL is listed again" in problems[0].message


# --- without @ALL ----------------------------------------------------------------------------

def test_server_missing():
    text = '{\n  "deploy_map": {\n    "app": ["site-1"]\n  }\n}'
    _, problems = check(text)
    assert [p.code for p in problems] == ["deploy-map"]
    assert problems[0].message == "no app is deployed to the server"
    assert at(problems[0]) == (2, 3)


def test_server_spelled_in_capitals_gets_a_hint():
    _, problems = check('{"deploy_map": {"app": ["Server", "site-1"]}}')
    assert "lower case" in (problems[0].hint or "")


def test_server_twice():
    text = '{\n  "deploy_map": {\n    "a": ["server"],\n    "b": ["site-1", "server"]\n  }\n}'
    _, problems = check(text)
    assert len(problems) == 1
    assert at(problems[0]) == (4, 21)
    assert "the server already runs app 'a'" in problems[0].message


def test_site_with_two_apps_reported_at_second_occurrence():
    text = ('{\n'
            '  "deploy_map": {\n'
            '    "a": ["server", "site-1"],\n'
            '    "b": [{"targets": ["site-2", "site-1"]}]\n'
            '  }\n'
            '}\n')
    _, problems = check(text)
    assert len(problems) == 1
    assert problems[0].code == "deploy-map"
    assert at(problems[0]) == (4, 34)
    assert problems[0].message == "site 'site-1' already runs app 'a': a site runs one app of a job"
    assert problems[0].json_path == ("deploy_map", "b", 0, "targets", 1)


def test_site_listed_twice_for_the_same_app():
    _, problems = check('{"deploy_map": {"a": ["server", "site-1", "site-1"]}}')
    assert [p.message for p in problems] == ["site 'site-1' is listed twice for app 'a'"]


def test_min_clients_above_deployed_clients():
    text = ('{\n'
            '  "min_clients": 3,\n'
            '  "deploy_map": {"a": ["server", "site-1"], "b": ["site-2"]}\n'
            '}\n')
    info, problems = check(text)
    assert info.min_clients == 3
    assert len(problems) == 1 and problems[0].code == "meta"
    assert problems[0].message == "min_clients is 3 but the deploy_map deploys 2 client sites: site-1, site-2"
    assert at(problems[0]) == (2, 18)
    assert "lower min_clients to 2" in (problems[0].hint or "")


def test_min_clients_counts_distinct_sites_only():
    _, problems = check('{"min_clients": 2, "deploy_map": {"a": ["server", "site-1", "site-1"]}}')
    messages = [p.message for p in problems]
    assert "min_clients is 2 but the deploy_map deploys 1 client site: site-1" in messages


def test_min_clients_with_only_a_server():
    _, problems = check('{"min_clients": 1, "deploy_map": {"a": ["server"]}}')
    assert [p.message for p in problems] == [
        "min_clients is 1 but the deploy_map deploys no client site"]


def test_mandatory_client_not_deployed():
    text = ('{\n'
            '  "mandatory_clients": ["site-1", "site-9"],\n'
            '  "deploy_map": {"a": ["server", "site-1"]}\n'
            '}\n')
    _, problems = check(text)
    assert [p.code for p in problems] == ["meta"]
    assert problems[0].message == "mandatory client 'site-9' is not in the deploy_map"
    assert at(problems[0]) == (2, 35)


def test_mandatory_and_min_are_not_checked_under_at_all():
    _, problems = check('{"min_clients": 9, "mandatory_clients": ["x"], "deploy_map": {"a": ["@ALL"]}}')
    assert problems == []


# --- shapes and names -------------------------------------------------------------------------

def test_empty_deploy_map():
    info, problems = check('{\n  "deploy_map": {}\n}')
    assert [p.code for p in problems] == ["deploy-map"]
    assert "empty" in problems[0].message
    assert at(problems[0]) == (2, 17)
    assert info.deploy_map == {}


def test_deploy_map_with_no_site_at_all():
    _, problems = check('{"deploy_map": {"a": [], "b": []}}')
    assert [p.message for p in errors(problems)] == ["deploy_map deploys no app to any site"]


def test_missing_deploy_map():
    _, problems = check('{"name": "x"}')
    assert [p.code for p in problems] == ["deploy-map"] and at(problems[0]) == (1, 1)


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "site 1", "-site", "@SERVER", ".hidden", ""])
def test_bad_site_names(bad):
    text = '{\n  "deploy_map": {"a": ["server", ' + json.dumps(bad) + ']}\n}'
    _, problems = check(text)
    assert [p.code for p in problems] == ["bad-site-name"]
    assert at(problems[0]) == (2, 34)


def test_good_site_names_pass():
    _, problems = check('{"deploy_map": {"a": ["server", "site-1", "Site_2", "h.example.org", "3"]}}')
    assert problems == []


def test_bad_app_name():
    _, problems = check('{\n  "deploy_map": {"../x": ["@ALL"]}\n}')
    assert [p.code for p in problems] == ["deploy-map"]
    assert at(problems[0]) == (2, 18)


def test_odd_types_give_problems_not_exceptions():
    for text in ['[]', '"x"', '{"deploy_map": []}', '{"deploy_map": {"a": 3}}',
                 '{"deploy_map": {"a": [1, null, {"x": 1}, {"sites": "s"}, {"sites": [2]}]}}',
                 '{"deploy_map": {"a": ["@ALL"]}, "min_clients": "2"}',
                 '{"deploy_map": {"a": ["@ALL"]}, "min_clients": true}',
                 '{"deploy_map": {"a": ["@ALL"]}, "min_clients": 0}',
                 '{"deploy_map": {"a": ["@ALL"]}, "mandatory_clients": "site-1"}',
                 '{"deploy_map": {"a": ["@ALL"]}, "mandatory_clients": [1]}']:
        info, problems = check(text)
        assert isinstance(info, MetaInfo)
        assert errors(problems), text


def test_non_string_keys_in_a_hand_built_document():
    info, problems = check_meta(Document("meta.json", {"deploy_map": {1: ["@ALL"]}}))
    assert info.deploy_map == {"1": ("@ALL",)} and problems == []


# --- how flconfig launch runs the sites (meta "launch", "resource_spec") -------------------

def test_launch_defaults_and_resource_spec_are_read():
    info, problems = check(json.dumps({
        "deploy_map": {"app": ["@ALL"]}, "launch": {"backend": "ray", "site_cpus": 0.5, "site_gpus": 0.25},
        "resource_spec": {"site-1": {"num_gpus": 1}}}))
    assert problems == []
    assert (info.launch.backend, info.launch.site_cpus, info.launch.site_gpus) == ("ray", 0.5, 0.25)
    assert info.resource_spec == {"site-1": {"num_gpus": 1}}
    info, _ = check('{"deploy_map": {"app": ["@ALL"]}}')
    assert (info.launch.backend, info.launch.site_cpus, info.launch.site_gpus) == (None, None, None)
    assert info.resource_spec == {}


@pytest.mark.parametrize("launch, says", [
    ({"backend": "spark"}, "'backend' must be one of 'process' or 'ray', not 'spark'"),
    ({"site_cpus": 0}, "'site_cpus' must be greater than 0"),
    ({"site_gpus": -1}, "'site_gpus' must be at least 0"),
    ({"ray_address": "10.0.0.1:6379"}, "ray_address"),
])
def test_a_launch_value_the_schema_refuses_is_reported_at_its_line_and_not_used(launch, says):
    text = json.dumps({"deploy_map": {"app": ["@ALL"]}, "launch": launch}, indent=1)
    doc = parse_json(text, "meta.json")
    problems = check_document(doc, "meta")
    assert len(problems) == 1 and says in problems[0].message, [p.message for p in problems]
    key = next(iter(launch))
    assert at(problems[0])[0] == 1 + next(i for i, line in enumerate(text.splitlines()) if f'"{key}"' in line)
    info, _ = check_meta(doc)
    assert (info.launch.backend, info.launch.site_cpus, info.launch.site_gpus) == (None, None, None)
