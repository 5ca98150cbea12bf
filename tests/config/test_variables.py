"""Variable resolution: FLARE's {name} / {@def:k=v} / {$ENV} rules, with positions kept."""

from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from flconfig.config.documents import Document
from flconfig.config.parsers import parse_json, parse_yaml
from flconfig.config.variables import resolve
from flconfig.errors import Position, Problem

SYSTEM = {"SITE_NAME": "site-1", "WORKSPACE": "/ws", "JOB_ID": "job-7", "SECURE_MODE": False,
          "JOB_CUSTOM_DIR": "/ws/job-7/app_site-1/custom"}


def run(text: str, system=None, environ=None, file: str = "config_fed_client.json"):
    doc = parse_json(text, file)
    return resolve(doc, SYSTEM if system is None else system, environ or {})


def codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in problems]


def where(problem: Problem) -> tuple[int, int]:
    assert problem.position is not None
    return problem.position.line, problem.position.column


# --- values ------------------------------------------------------------------------------

def test_whole_string_reference_keeps_native_type():
    new, problems = run(json.dumps({
        "min_clients": 8, "lr": 0.01, "flag": True, "nothing": None, "name": "x",
        "args": {"a": "{min_clients}", "b": "{lr}", "c": "{flag}", "d": "{nothing}",
                 "e": " {name} "},
    }))
    assert problems == []
    assert new.data["args"] == {"a": 8, "b": 0.01, "c": True, "d": None, "e": "x"}
    assert type(new.data["args"]["a"]) is int


def test_dict_and_list_variables_are_inserted_whole():
    new, problems = run(json.dumps({
        "model": {"path": "net.Net", "args": {"width": 4}},
        "tasks": ["train", "validate"],
        "components": [{"id": "p", "args": {"model": "{model}", "tasks": "{tasks}"}}],
    }))
    assert problems == []
    args = new.data["components"][0]["args"]
    assert args == {"model": {"path": "net.Net", "args": {"width": 4}}, "tasks": ["train", "validate"]}
    # a copy, not the same object as the definition
    args["model"]["args"]["width"] = 99
    assert new.data["model"]["args"]["width"] == 4


def test_multi_level_references_resolve():
    new, problems = run(json.dumps({
        "a": "{b}", "b": "{c}", "c": 3, "s": "round-{a}-of-{c}",
        "nested": {"inner": ["{a}", {"deep": "{b}"}]},
    }))
    assert problems == []
    assert new.data["a"] == 3 and new.data["b"] == 3
    assert new.data["s"] == "round-3-of-3"
    assert new.data["nested"] == {"inner": [3, {"deep": 3}]}


def test_longer_strings_substitute_primitives_and_format_specs():
    new, problems = run(json.dumps({
        "lr": 0.5, "n": 3, "on": True, "path": "/data",
        "s1": "lr={lr} n={n} on={on}", "s2": "{path}/site-{n}", "s3": "{lr:.3f}", "s4": "x{n:03d}",
    }))
    assert problems == []
    assert new.data["s1"] == "lr=0.5 n=3 on=True"
    assert new.data["s2"] == "/data/site-3"
    assert new.data["s3"] == "0.500"
    assert new.data["s4"] == "x003"


def test_system_variables_override_config_keys_and_fill_references():
    new, problems = run(json.dumps({
        "SITE_NAME": "from-config",
        "out": "{WORKSPACE}/{JOB_ID}/{SITE_NAME}", "secure": "{SECURE_MODE}",
    }))
    assert new.data["out"] == "/ws/job-7/site-1"
    assert new.data["secure"] is False
    assert new.data["SITE_NAME"] == "from-config"  # the key itself stays in the data
    assert codes(problems) == ["variable-shadowed"]
    assert problems[0].severity == "warning"


def test_environment_variables_need_a_dollar_and_lose_to_defined_names():
    new, problems = run(json.dumps({"home": "{$HOME}", "dir": "{$DATA}/x", "plain": "{HOME}"}),
                        environ={"HOME": "/home/u", "DATA": "/d"})
    assert new.data["home"] == "/home/u"
    assert new.data["dir"] == "/d/x"
    assert codes(problems) == ["undefined-variable"]  # {HOME} without $ is not the env var

    new, problems = run(json.dumps({"$HOME": "mine", "home": "{$HOME}"}), environ={"HOME": "/home/u"})
    assert problems == [] and new.data["home"] == "mine"


def test_environment_values_are_not_resolved_again():
    new, problems = run(json.dumps({"x": "{$J}", "a": 1}), environ={"J": '{"a": {a}}'})
    assert problems == []
    assert new.data["x"] == '{"a": {a}}'


# --- @ definitions -------------------------------------------------------------------------

def test_parameterised_definition_is_copied_and_resolved_with_local_values():
    new, problems = run(json.dumps({
        "lr": 0.1,
        "@trainer": {"path": "t.Trainer", "args": {"epochs": "{epochs}", "lr": "{lr}",
                                                   "name": "{label}", "x": "{x}", "on": "{on}",
                                                   "tag": "e{epochs}-{label}"}},
        "components": ["{@trainer:epochs=2:label=fast:x=1.5:on=TRUE}",
                       "{@trainer:epochs=5:label=slow:x=2:on=false}"],
    }))
    assert problems == []
    first, second = new.data["components"]
    assert first["args"] == {"epochs": 2, "lr": 0.1, "name": "fast", "x": 1.5, "on": True,
                             "tag": "e2-fast"}
    assert second["args"]["epochs"] == 5 and second["args"]["on"] is False
    assert second["args"]["x"] == 2 and type(second["args"]["x"]) is int


def test_parameter_values_may_be_references():
    new, problems = run(json.dumps({
        "rounds": 7, "@wf": {"num_rounds": "{n}"}, "wf": "{@wf:n={rounds}}",
    }))
    assert problems == []
    assert new.data["wf"] == {"num_rounds": 7}


def test_top_level_at_keys_are_removed_from_the_result():
    new, problems = run('{\n  "@def": {"a": "{p}"},\n  "x": "{@def:p=1}"\n}')
    assert problems == []
    assert new.data == {"x": {"a": 1}}
    assert not any(path[:1] == ("@def",) for path in new.values)
    assert not any(path[:1] == ("@def",) for path in new.keys)


def test_parameters_on_a_non_dict_definition_are_an_error():
    new, problems = run('{\n  "@n": 3,\n  "x": "{@n:a=1}"\n}')
    assert codes(problems) == ["variable-type"]
    assert where(problems[0]) == (3, 8)
    assert "'@n' must be a dict" in problems[0].message
    assert new.data["x"] == "{@n:a=1}"


def test_undefined_name_inside_a_definition_points_at_the_use():
    text = '{\n  "@d": {"a": "{p}", "b": "{q}"},\n  "x": "{@d:p=1}"\n}'
    new, problems = run(text)
    assert codes(problems) == ["undefined-variable"]
    assert where(problems[0]) == (3, 8)
    assert "'q'" in problems[0].message and "'@d' at line 2" in problems[0].message
    assert "{@d:q=...}" in (problems[0].hint or "")


# --- positions -----------------------------------------------------------------------------

def test_inserted_dict_parts_get_the_position_of_the_referring_string():
    text = (
        '{\n'
        '  "model": {"path": "net.Net", "args": {"width": 4, "layers": [1, 2]}},\n'
        '  "components": [\n'
        '    {"id": "p", "args": {"model": "{model}"}}\n'
        '  ]\n'
        '}\n'
    )
    new, problems = run(text)
    assert problems == []
    ref = Position("config_fed_client.json", 4, 35)
    base = ("components", 0, "args", "model")
    assert new.values[base] == ref
    for sub in [("path",), ("args",), ("args", "width"), ("args", "layers"), ("args", "layers", 1)]:
        assert new.values[(*base, *sub)] == ref
        assert new.position((*base, *sub)) == ref
    assert new.keys[(*base, "args", "width")] == ref
    # the key "model" is where it was, and the definition keeps its own positions
    assert new.keys[base] == Position("config_fed_client.json", 4, 26)
    assert new.values[("model", "args", "width")] == Position("config_fed_client.json", 2, 50)
    # a problem made later on the resolved document points at the reference
    later = new.problem("schema", "width must be > 4", (*base, "args", "width"))
    assert later.position == ref


def test_substituted_primitive_keeps_the_position_of_its_string():
    new, _ = run('{\n  "n": 3,\n  "args": {"rounds": "{n}"}\n}')
    assert new.data["args"]["rounds"] == 3
    assert new.values[("args", "rounds")] == Position("config_fed_client.json", 3, 22)


def test_resolve_does_not_change_the_input_document():
    doc = parse_json('{"m": {"a": 1}, "@d": {"x": "{v}"}, "k": ["{m}", "{@d:v=2}"]}', "c.json")
    before = copy.deepcopy(doc.data), dict(doc.values), dict(doc.keys)
    new, _ = resolve(doc, {}, {})
    assert (doc.data, doc.values, doc.keys) == before
    assert new is not doc and new.file == doc.file


def test_yaml_notes_follow_the_value_to_its_reference():
    text = "lr: 1e-3\nargs:\n  lr: \"{lr}\"\n"
    doc = parse_yaml(text, "c.yaml")
    new, problems = resolve(doc, {}, {})
    assert problems == []
    assert new.data["args"]["lr"] == "1e-3"
    note = new.notes[("args", "lr")]
    assert "see line 1" in note and "'lr'" in note and "1e-3" not in note  # where, not the value


def test_unquoted_yaml_reference_is_flagged():
    doc = parse_yaml("rounds: 3\nargs:\n  num_rounds: {rounds}\n", "c.yaml")
    new, problems = resolve(doc, {}, {})
    assert codes(problems) == ["variable-syntax"]
    assert problems[0].severity == "warning"
    assert where(problems[0]) == (3, 15)
    assert "quote it" in new.notes[("args", "num_rounds")]


# --- errors --------------------------------------------------------------------------------

def test_undefined_variable_is_an_error_at_the_exact_string():
    text = '{\n  "num_rounds": 5,\n  "args": {\n    "rounds": "{num_round}"\n  }\n}\n'
    new, problems = run(text)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.code == "undefined-variable" and problem.is_error
    assert where(problem) == (4, 15)
    assert problem.json_path == ("args", "rounds")
    assert "'num_round'" in problem.message
    assert problem.hint == "did you mean 'num_rounds'?"
    assert new.data["args"]["rounds"] == "{num_round}"  # left as written, never None


def test_undefined_variable_hints():
    _, problems = run('{"a": "{zzz_unknown}", "b": "x {qqq} y", "c": "{$NO_SUCH_VAR}"}')
    hints = {p.json_path[0]: p.hint or "" for p in problems}
    assert hints["a"] == 'define it as a top-level key, e.g. "zzz_unknown": ...'
    assert "{{qqq}}" in hints["b"]
    assert hints["c"].startswith("pass it from your environment with --env NO_SUCH_VAR")
    assert codes(problems) == ["undefined-variable"] * 3


def test_undefined_variable_in_yaml_is_located():
    doc = parse_yaml("a: 1\nlist:\n  - ok\n  - \"{b}\"\n", "c.yml")
    _, problems = resolve(doc, {}, {})
    assert codes(problems) == ["undefined-variable"]
    assert where(problems[0]) == (4, 5)


def test_all_problems_are_reported_in_one_pass():
    _, problems = run('{"a": "{x1}", "b": ["{x2}", "{x3} and {x4}"], "c": {"d": "{x5}"}}')
    assert sorted(p.message for p in problems) == [f"undefined variable 'x{i}'" for i in range(1, 6)]


def test_a_cycle_is_an_error_naming_its_variables():
    text = '{\n  "a": "{b}",\n  "b": "{a}",\n  "x": "{a}"\n}'
    _, problems = run(text)
    assert codes(problems) == ["variable-cycle"]
    assert "a -> b -> a" in problems[0].message
    assert where(problems[0]) == (3, 8)


def test_self_reference_and_recursive_definitions_are_cycles():
    _, problems = run('{"a": "x{a}"}')
    assert codes(problems) == ["variable-cycle"]
    assert "'a' refers to itself" in problems[0].message
    _, problems = run('{"@d": {"again": "{@d:n=1}"}, "x": "{@d:n=1}"}')
    assert codes(problems) == ["variable-cycle"]


def test_reference_chains_deeper_than_20_are_reported():
    config = {f"v{i}": f"{{v{i + 1}}}" for i in range(30)}
    config["v30"] = 1
    _, problems = run(json.dumps(config))
    assert "variable-cycle" in codes(problems)
    assert "more than 20 levels" in problems[0].message
    config = {f"v{i}": f"{{v{i + 1}}}" for i in range(15)}
    config["v15"] = 1
    new, problems = run(json.dumps(config))
    assert problems == [] and new.data["v0"] == 1


def test_dict_inside_a_longer_string_is_an_error():
    _, problems = run('{\n  "m": {"a": 1},\n  "s": "model={m}"\n}')
    assert codes(problems) == ["variable-type"]
    assert problems[0].message == "variable 'm' is a dict and cannot be part of a longer string"
    assert where(problems[0]) == (3, 8)


def test_bad_parameters_are_reported():
    _, problems = run('{"@d": {"a": "{p}"}, "x": "{@d:p}", "y": "{@d:p=1:=2}"}')
    assert codes(problems) == ["variable-syntax", "variable-syntax"]


# --- text that is not a reference -----------------------------------------------------------

def test_braces_that_are_not_references_are_left_alone():
    strings = ["a{2,3}", "{0:.2f}", "{}", '{"key": [1, 2]}', "{ spaced }", "x}y", "{a.b}",
               "^[a-z]{3}$", '{"a": {"b": 1}}']
    new, problems = run(json.dumps({"a": 1, "s": strings}))
    assert new.data["s"] == strings
    assert codes(problems) == ["variable-syntax"]  # only the {a.b} on a defined name warns
    assert problems[0].severity == "warning"


def test_doubled_braces_are_literal_braces():
    new, problems = run(json.dumps({"n": 2, "a": "{{n}}", "b": "{{{n}}}", "c": "{{not a ref}}",
                                    "d": "set {{x}} to {n}"}))
    assert problems == []
    assert new.data["a"] == "{n}"
    assert new.data["b"] == "{2}"
    assert new.data["c"] == "{not a ref}"
    assert new.data["d"] == "set {x} to 2"


def test_literal_braces_from_escapes_are_not_resolved_again():
    new, problems = run(json.dumps({"n": 2, "t": "{{n}}", "u": "{t}", "v": "pre {t}"}))
    assert problems == []
    assert new.data["u"] == "{n}" and new.data["v"] == "pre {n}"


def test_json_text_keeps_its_braces_but_references_in_it_are_filled():
    new, problems = run(json.dumps({"lr": 0.1, "j": '{"lr": {lr}, "x": {"y": 1}}'}))
    assert problems == []
    assert new.data["j"] == '{"lr": 0.1, "x": {"y": 1}}'


def test_dict_keys_are_never_substituted():
    new, problems = run(json.dumps({"k": "v", "m": {"{k}": "{k}"}}))
    assert problems == []
    assert new.data["m"] == {"{k}": "v"}


def test_a_document_that_is_not_an_object_still_resolves():
    doc = Document("x.json", ["{SITE_NAME}", "{missing}"])
    new, problems = resolve(doc, {"SITE_NAME": "server"}, {})
    assert new.data == ["server", "{missing}"]
    assert codes(problems) == ["undefined-variable"]


# --- never an exception --------------------------------------------------------------------

_TEXT = st.text(alphabet="{}@$:=_ ab0.!,[]x-", max_size=14)
_NAMES = st.sampled_from(["a", "b", "x", "@d", "@e", "$H", "lr", "ab", "SITE_NAME"])
_VALUES = st.recursive(
    st.one_of(_TEXT, st.integers(-3, 3), st.floats(allow_nan=True), st.booleans(), st.none(),
              st.sampled_from(["{a}", "{b}", "{@d}", "{@d:a=1}", "{@e:x={a}}", "{x:>{a}}",
                               "{a:99999999}", "{$H}", "{a} {b}", "{{a}}", "{ab:.2f}"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.one_of(_NAMES, _TEXT), children, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(_NAMES, _TEXT), _VALUES, max_size=6),
       st.dictionaries(st.sampled_from(["H", "X", "a"]), _TEXT, max_size=2))
def test_random_configs_only_ever_give_problems(config, environ):
    doc = Document("fuzz.json", copy.deepcopy(config))
    new, problems = resolve(doc, {"SITE_NAME": "s"}, environ)
    assert isinstance(new, Document)
    assert all(isinstance(p, Problem) and p.position is not None for p in problems)
    assert doc.data == config or config != config  # unchanged (NaN never equals itself)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_random_strings_only_ever_give_problems(text):
    doc = Document("fuzz.json", {"a": 1, "@d": {"k": "{p}"}, "s": text, "l": [text, {"t": text}]})
    new, problems = resolve(doc, {}, {})
    assert all(isinstance(p, Problem) for p in problems)
    if "{" not in text and "}" not in text:
        assert new.data["s"] == text
