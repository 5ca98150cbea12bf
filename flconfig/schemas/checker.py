"""Checking parsed documents against the JSON Schemas: :func:`check_document` and
:func:`check_args` turn schema violations into located :class:`~flconfig.errors.Problem`
values with short messages and a hint on how to fix each one.

Imports only the standard library, jsonschema (and its ``referencing``) and flconfig's
documents and errors, so validating a job never pulls in torch, tensorboard or grpc.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from ..config.documents import Document, type_name
from ..config.job import is_nested_spec
from ..errors import JsonPath, Problem, closest, format_json_path
from .files import SCHEMA_KINDS, check_kind, load_schema

# A whole string that is a variable reference ("{num_rounds}", "{@def:k=v}") becomes a
# value of any type once variables are resolved, so its type cannot be judged here.
_VARIABLE_REF = re.compile(r"^\s*\{[^{}]*\}\s*$")
# How close (difflib ratio) an unknown key must be to a known one to be called its
# misspelling: strict at open top levels, where unknown keys are legal variables; looser
# in closed objects, where any unknown key is an error anyway and a suggestion only helps.
_OPEN_CUTOFF = 0.8
_CLOSED_CUTOFF = 0.6

_TYPE_NAMES = {
    "array": "a list",
    "object": "an object",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def _registry() -> Registry:
    return Registry().with_resources(
        (load_schema(kind)["$id"], Resource.from_contents(load_schema(kind), DRAFT7))
        for kind in SCHEMA_KINDS
    ).crawl()


@cache
def _validator(kind: str) -> Draft7Validator:
    return Draft7Validator(load_schema(kind), registry=_registry())


@lru_cache(maxsize=256)
def _args_validator(schema_json: str) -> Draft7Validator:
    return _new_args_validator(json.loads(schema_json))


def _new_args_validator(schema: Mapping[str, Any]) -> Draft7Validator:
    # Formats are checked in component args: "regex" (it must compile) is the one used.
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


# --- checking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Issue:
    """One schema violation, before it is placed in a document."""

    code: str
    message: str
    path: JsonPath
    hint: str | None = None
    at_key: bool = False
    severity: str = "error"
    #: For a missing key: every key that would satisfy the requirement.
    missing: frozenset[str] = frozenset()
    #: For an unknown key: the known key it probably means.
    suggestion: str | None = None


class _Check:
    """Turns jsonschema errors for one instance into :class:`_Issue` values.

    ``root`` is the path of the validated instance inside the document; with an
    ``args_label`` the instance is a component's args and messages speak of
    arguments of that component.
    """

    def __init__(self, root: JsonPath = (), args_label: str | None = None, doc: Document | None = None):
        self.root = root
        self.args_label = args_label
        self.doc = doc

    def hidden(self, rel: JsonPath) -> str | None:
        """The expression that produced the value at ``rel`` (or part of it): messages show
        it, never the value (which may come from the environment or the machine)."""
        if self.doc is None or not self.doc.hides(self.root + rel):
            return None
        return self.doc.source(self.root + rel) or "a substituted value"

    # naming ---------------------------------------------------------------------------
    def subject(self, rel: JsonPath) -> str:
        if self.args_label is not None and rel:
            return f"argument {format_json_path(rel)!r} of {self.args_label}"
        return f"{_name(self.root + rel)!r}" if self.root + rel else "the document"

    def container(self, rel: JsonPath, schema: Mapping[str, Any]) -> str:
        if self.args_label is not None and not rel:
            return f"args of {self.args_label}"
        title = schema.get("title") if isinstance(schema, Mapping) else None
        if title:
            return str(title)
        full = self.root + rel
        return repr(_name(full)) if full else "the document"

    # errors -> issues -------------------------------------------------------------------
    def issues(self, errors: Iterable[ValidationError]) -> Iterator[_Issue]:
        for error in errors:
            for leaf in _leaves(error):
                yield from self.issue(leaf)

    def issue(self, error: ValidationError) -> Iterator[_Issue]:
        rel: JsonPath = tuple(error.absolute_path)
        path = self.root + rel
        kw = error.validator
        value: Any = error.instance
        schema = error.schema if isinstance(error.schema, Mapping) else {}

        if kw == "required":
            for key in _validator_value(error):
                if isinstance(value, Mapping) and key not in value:
                    yield self.missing(rel, schema, [key])
            return
        if kw in ("anyOf", "oneOf") and _required_branches(_validator_value(error)):
            keys = _required_branches(_validator_value(error))
            if isinstance(value, Mapping) and not any(k in value for k in keys):
                yield self.missing(rel, schema, keys)
                return
        if kw == "additionalProperties" and isinstance(value, Mapping):
            yield from self.unknown_keys(rel, schema, value)
            return
        if _is_variable_ref(value) or self.is_nested_component(rel, value):
            return
        if len(error.relative_schema_path) >= 2 and error.relative_schema_path[-2] == "propertyNames":
            rule = schema.get("patternErrorMessage") or f"a key matching {schema.get('pattern')!r}"
            yield _Issue("schema" if self.args_label is None else "bad-arg",
                         f"key {value!r} in {self.subject(rel)} must be {rule}",
                         path + (value,), _first_sentence(schema.get("description")), at_key=True)
            return
        yield self.bad_value(error, rel, schema)

    def missing(self, rel: JsonPath, schema: Mapping[str, Any], keys: list[str]) -> _Issue:
        path = self.root + rel
        props = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        if len(keys) == 1:
            key = keys[0]
            prop = props.get(key) if isinstance(props.get(key), Mapping) else {}
            described = _first_sentence(prop.get("description"))
            if prop.get("examples"):
                described = f"for example {_json({key: prop['examples'][0]})}"
            if self.args_label is not None and not rel:
                message = f"missing required argument {key!r} for {self.args_label}"
                code = "missing-arg"
                hint = f"add {key!r} to the args" + (f" — {described}" if described else "")
            else:
                where = "" if not path else f" in {self.container(rel, schema)}"
                message = f"missing required key {key!r}{where}"
                code = "missing-key" if self.args_label is None else "missing-arg"
                hint = f"add {key!r}" + (f" — {described}" if described else "")
        else:
            message = f"{self.container(rel, schema)} needs one of {_or_list(keys)}"
            code = "missing-key" if self.args_label is None else "missing-arg"
            hint = _first_sentence(schema.get("description")) or f"add one of {_or_list(keys)}"
            if keys[0] == "path":
                hint = ('add "path": "package.module.ClassName" (or a registered "name") '
                        "naming the class to build")
        return _Issue(code, message, path, hint, missing=frozenset(keys))

    def unknown_keys(
        self, rel: JsonPath, schema: Mapping[str, Any], value: Mapping[str, Any]
    ) -> Iterator[_Issue]:
        props = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in value:
            if key in props or any(re.search(p, key) for p in patterns):
                continue
            suggestion = _closest(key, props, _CLOSED_CUTOFF) or _prefix_match(key, props)
            if self.args_label is not None and not rel:
                message = f"unknown argument {key!r} for {self.args_label}"
                code = "unknown-arg"
                takes = f"{self.args_label} takes: {', '.join(props)}" if props else (
                    f"{self.args_label} takes no arguments")
            else:
                message = f"unknown key {key!r} in {self.container(rel, schema)}"
                code = "unknown-key" if self.args_label is None else "unknown-arg"
                takes = f"{self.container(rel, schema)} takes only: {', '.join(props)}"
            severity = "error"
            if suggestion:
                message += f" — did you mean {suggestion!r}?"
                hint = f"rename it to {suggestion!r}"
            elif self.args_label is None and schema.get("title") == "component":
                # FLARE ignores a component spec's unknown keys; a misspelt one stays an error.
                message += " is ignored, as FLARE ignores it"
                severity = "warning"
                head, dot, tail = key.partition(".")
                hint = (f"to pass {tail!r} to the component, put it inside {head!r}; else remove it"
                        if dot and head == "args" else takes)
            else:
                hint = takes
            yield _Issue(code, message, self.root + rel + (key,), hint, at_key=True,
                         severity=severity, suggestion=suggestion)

    def is_nested_component(self, rel: JsonPath, value: Any) -> bool:
        # A direct arg holding a component spec is replaced by the built object before
        # the constructor sees it, so the arg's declared type describes that object.

        return self.args_label is not None and len(rel) == 1 and is_nested_spec(value)

    def bad_value(self, error: ValidationError, rel: JsonPath, schema: Mapping[str, Any]) -> _Issue:
        kw, expected, value = error.validator, _validator_value(error), error.instance
        subject = self.subject(rel)
        hint = _first_sentence(schema.get("description"))
        expr = self.hidden(rel)  # when set, messages name the expression, never the value it gave
        given = _short(value) if expr is None else expr
        types = _branch_types(expected) if kw in ("anyOf", "oneOf") else []
        if kw == "type":
            types = [expected] if isinstance(expected, str) else list(expected)
        if types:
            wanted = _or_list([_TYPE_NAMES.get(t, t) for t in types], quote=False)
            unquoted = _unquoted(value, types) if expr is None else None
            if unquoted is not None:
                hint = f"write it without quotes: {unquoted}"
            if self.args_label is not None and rel:
                message = f"{subject} must be {wanted}, got {_show(value, expr)}"
            else:
                message = f"expected {wanted}, got {_describe(value, expr)}"
        elif kw == "const":
            message = f"{subject} must be {_json(expected)}, not {given}"
            unquoted = _unquoted(value, [_json_type(expected)]) if expr is None else None
            hint = f"set it to {_json(expected)}" + (" (without quotes)" if unquoted is not None else "")
        elif kw == "enum":
            choices = _or_list([_short(v) for v in expected], quote=False)
            one = "" if len(expected) == 1 else "one of "
            message = f"{subject} must be {one}{choices}, not {given}"
        elif kw == "pattern":
            rule = schema.get("patternErrorMessage") or f"a string matching {expected!r}"
            message = f"{subject} must be {rule}, not {given}"
        elif kw == "format":
            message = f"{subject} must be {_FORMATS.get(expected, repr(expected))}, not {given}"
        elif kw in ("minLength", "minItems", "minProperties") and expected == 1:
            message = f"{subject} must not be empty"
        elif kw in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
            what = {"Length": "characters", "Items": "items", "Properties": "keys"}[kw[3:]]
            bound = "at least" if kw.startswith("min") else "at most"
            message = f"{subject} must have {bound} {expected} {what}"
        elif kw in _BOUNDS:
            message = f"{subject} must be {_BOUNDS[kw]} {_short(expected)}, not {given}"
        else:
            message = f"{subject}: {error.message}"
        code = "schema" if self.args_label is None else "bad-arg"
        return _Issue(code, message, self.root + rel, hint)


_FORMATS = {"regex": "a valid regular expression"}

_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "greater than",
    "exclusiveMaximum": "less than",
    "multipleOf": "a multiple of",
}


def check_document(doc: Document, kind: str) -> list[Problem]:
    """Every way ``doc`` breaks the ``kind`` schema, located in ``doc``, sorted by position.

    A string value that is a whole variable reference (``"{num_rounds}"``) is
    not judged by type: check the document after variables are resolved.
    Top-level keys close to a known key are reported as misspellings: an
    error in client and server configs (or when the key they mean is
    required and missing), a warning otherwise.
    """
    check_kind(kind)
    instance = doc.data
    schema = load_schema(kind)
    check = _Check(doc=doc)
    issues = list(check.issues(_validator(kind).iter_errors(instance)))
    if isinstance(instance, Mapping) and schema.get("additionalProperties", True) is not False:
        issues += _misspelt_top_keys(instance, schema, strict=kind in ("client", "server"))
    return _to_problems(doc, issues)


def check_args(
    doc: Document,
    args_path: JsonPath,
    args: Mapping[str, Any],
    args_schema: Mapping[str, Any],
    component_label: str,
) -> list[Problem]:
    """Check one component's ``args`` against that component's argument schema.

    ``args_schema`` is a JSON schema object (``properties``, ``required``,
    ``additionalProperties`` ...); ``args_path`` is where the args sit in
    ``doc``; ``component_label`` names the component in messages (e.g. its
    class name). ``args`` is the dict the constructor receives (for FLARE's
    ``class_attributes`` escape, the inner dict and its path). A direct arg
    holding a nested component spec, and a whole variable reference, are not
    judged by type. ``args`` that is not a dict gives no problems here: the
    document's schema reports it.
    """
    if not isinstance(args, Mapping):
        return []
    try:
        validator = _args_validator(json.dumps(args_schema))
    except (TypeError, ValueError):  # not JSON text (e.g. a tuple default): check uncached
        validator = _new_args_validator(args_schema)
    check = _Check(tuple(args_path), component_label, doc)
    issues = check.issues(validator.iter_errors(args))
    return _to_problems(doc, issues)


def _misspelt_top_keys(
    data: Mapping[str, Any], schema: Mapping[str, Any], strict: bool
) -> list[_Issue]:
    known = list(schema.get("properties", {}))
    required = set(schema.get("required", ()))
    title = schema.get("title", "the document")
    issues = []
    for key in data:
        if key in known or not isinstance(key, str) or key.startswith("@"):
            continue
        match = _closest(key, known, _OPEN_CUTOFF)
        if match is None:
            continue
        if match in data:
            issues.append(_Issue(
                "unknown-key", f"key {key!r} looks like a misspelling of {match!r}, which is also set",
                (key,), "rename it if it is not meant as a variable", at_key=True, severity="warning"))
            continue
        error = strict or match in required
        if strict:
            hint = f"rename it to {match!r}; as written it is only a variable and is otherwise ignored"
        elif error:
            hint = f"rename it to {match!r}, which is required"
        else:
            hint = f"rename it to {match!r} if that is what you meant"
        issues.append(_Issue(
            "unknown-key", f"unknown key {key!r} in {title} — did you mean {match!r}?", (key,), hint,
            at_key=True, severity="error" if error else "warning", suggestion=match))
    return issues


def _to_problems(doc: Document, issues: Iterable[_Issue]) -> list[Problem]:
    issues = list(issues)
    # A misspelt key already says the key it means is missing: report it once.
    suggested = {(i.path[:-1], i.suggestion) for i in issues if i.suggestion}
    seen: set[tuple[object, ...]] = set()
    problems = []
    for issue in issues:
        if issue.missing and any((issue.path, k) in suggested for k in issue.missing):
            continue
        hint = issue.hint
        if not issue.at_key and not issue.missing:
            hint = doc.notes.get(tuple(issue.path)) or hint
        problem = doc.problem(issue.code, issue.message, issue.path, hint,
                              severity=issue.severity, at_key=issue.at_key)
        ident = (problem.position, problem.severity, problem.message)
        if ident not in seen:
            seen.add(ident)
            problems.append(problem)
    return sorted(problems, key=Problem.sort_key)


# --- choosing among anyOf / oneOf branches ------------------------------------------------


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The errors worth showing for ``error``: for anyOf/oneOf, those of the branch meant."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[object, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # A branch whose type the value does not even have is not the one the author meant.
        meant = [errs for errs in branches.values()
                 if not any(e.validator == "type" and not e.relative_path for e in errs)]
        if len(meant) == 1 and len(branches) == len(_validator_value(error)):
            for sub in meant[0]:
                yield from _leaves(sub)
            return
    yield error


def _required_branches(branches: Any) -> list[str]:
    """``["path", "name"]`` for ``anyOf: [{required: [path]}, {required: [name]}]``, else []."""
    keys: list[str] = []
    for branch in branches if isinstance(branches, list) else ():
        if not isinstance(branch, Mapping) or set(branch) != {"required"}:
            return []
        if len(branch["required"]) != 1:
            return []
        keys.append(branch["required"][0])
    return keys


def _branch_types(branches: Any) -> list[str]:
    types: list[str] = []
    for branch in branches if isinstance(branches, list) else ():
        if not isinstance(branch, Mapping):
            return []
        if "$ref" in branch and "type" not in branch:
            types.append("object")
            continue
        t = branch.get("type")
        if t is None:
            return []
        for one in [t] if isinstance(t, str) else t:
            if one not in types:
                types.append(one)
    return types


# --- wording -------------------------------------------------------------------------------


def _name(path: JsonPath) -> str:
    """``tasks[1]`` for ``("executors", 0, "tasks", 1)``: the last key and any indices after it."""
    tail: list[str | int] = []
    for part in reversed(path):
        tail.insert(0, part)
        if isinstance(part, str):
            break
    return format_json_path(tuple(tail))


def _closest(key: str, known: Iterable[str], cutoff: float) -> str | None:
    return closest(key, (k for k in known if not k.startswith("$")), cutoff=cutoff,
                   ignore_case=True)


def _prefix_match(key: str, known: Iterable[str]) -> str | None:
    """``lr`` for ``lr_rate``: a known key made of the first words of the unknown one, or back."""
    low = key.lower()
    fits = [k for k in known if low.startswith(k.lower() + "_") or k.lower().startswith(low + "_")]
    return max(fits, key=len) if fits else None


def _is_variable_ref(value: Any) -> bool:
    return isinstance(value, str) and bool(_VARIABLE_REF.match(value))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _short(value: Any) -> str:
    """A value as a user wrote it: 3, 'train', true, null, a list, an object."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, (bool, type(None), int, float)):
        return _json(value)
    return "a list" if isinstance(value, list) else "an object"


def _describe(value: Any, expr: str | None = None) -> str:
    """``a string ('train')``, ``an integer (3)``, ``a list``; ``a string (${X})`` for a
    value the expression ``expr`` produced."""
    if isinstance(value, (list, dict)) or value is None:
        return type_name(value)
    return f"{type_name(value)} ({expr or _short(value)})"


def _show(value: Any, expr: str | None = None) -> str:
    """``'5' (a string)``, ``3 (an integer)``, ``a list``; ``${X} (a string)`` for a value
    the expression ``expr`` produced."""
    if isinstance(value, (list, dict)) or value is None:
        return type_name(value)
    return f"{expr or _short(value)} ({type_name(value)})"


def _unquoted(value: Any, types: list[str]) -> str | None:
    """The text of a quoted value that would be right without its quotes, e.g. ``5``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "integer" in types and re.fullmatch(r"-?\d+", text):
        return text
    if "number" in types and re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        return text
    if "boolean" in types and text in ("true", "false"):
        return text
    return None


def _or_list(items: list[str], quote: bool = True) -> str:
    shown = [repr(i) if quote else str(i) for i in items]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _first_sentence(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")


_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z])")


def _validator_value(error: Any) -> Any:
    """The schema value of the keyword that failed (typed loosely by jsonschema's stubs)."""
    return error.validator_value
