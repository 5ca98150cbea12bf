"""The :class:`Registry`: what a config may name, resolved without importing anything (see
the package docstring of :mod:`flconfig.registry`)."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..common.loader import import_class
from ..common.loader import short_path as _short
from ..errors import FlconfigError, ImportFailure
from ..files import is_within
from .aliases import FLARE_ALIASES
from .arg_schema import annotation_schema
from .arg_schema import union as _union
from .introspect import (
    NO_DEFAULT,
    NOT_LITERAL,
    ClassDescription,
    Introspector,
    Param,
    installed_location,
    parse_error,
)
from .plugins import read_entry_points

#: The entry-point group plugins register components in.
ENTRY_POINT_GROUP = "flconfig.components"
#: Environment variable listing allowed module prefixes (``,`` or ``os.pathsep``).
ALLOW_ENV = "FLCONFIG_ALLOW_MODULES"

#: The kind of component an ``*_id`` argument must name. Any other ``*_id``
#: argument names a component of any kind (``"any"``).
ID_REFERENCE_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "learner_id": "learner",
        "aggregator_id": "aggregator",
        "persistor_id": "persistor",
        "pt_persistor_id": "persistor",
        "shareable_generator_id": "shareable_generator",
        "model_locator_id": "model_locator",
        "analytic_sender_id": "analytics_sender",
        "metrics_sender_id": "analytics_sender",
        "filter_id": "filter",
        "formatter_id": "any",
    }
)

_BUILTIN_PACKAGES = ("flconfig.components", "flconfig.tracking", "flconfig.examples")
_NOT_COMPONENT_MODULES = frozenset({
    "flconfig.components.base",
    "flconfig.tracking.records",
    "flconfig.tracking.tb_files",
    "flconfig.tracking.crc32c",
    "flconfig.tracking.logged_values",
    "flconfig.tracking.images",
    "flconfig.tracking.histograms",
    "flconfig.tracking.drainer",
    "flconfig.tracking.flare_log",
    "flconfig.components.client_api_scripts",
    "flconfig.components.client_api_exchange",
})
_FLCONFIG_DIR = Path(__file__).resolve().parent.parent  # the flconfig package
_ENTRY_VALUE = re.compile(
    r"^\s*(?P<module>[A-Za-z_][\w.]*)\s*(?::\s*(?P<attr>[A-Za-z_][\w.]*))?\s*(?:\[[^\]]*\])?\s*$"
)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


#: The default of an argument that has none, or whose default is not a literal.
MISSING: Any = _Missing()


@dataclass(frozen=True)
class ArgSpec:
    """One constructor argument of a component."""

    name: str
    #: The type hint's source text (``"list[str] | None"``), or None.
    annotation: str | None
    required: bool
    #: The literal default; :data:`MISSING` when required or not a literal.
    default: Any
    #: The kind of component a string value names (``"any"`` for a plain
    #: ``*_id`` argument); None if the argument is no reference. Only string
    #: values are references.
    reference: str | None = None


@dataclass(frozen=True, eq=False)
class ComponentInfo:
    """What the registry knows about a component class, read from its source.

    Compared by identity: the registry hands out one per class, and
    :meth:`Registry.load_class` accepts only those.
    """

    #: Canonical dotted path of the implementing class (where it is defined).
    path: str
    #: The class name.
    name: str
    module: str
    qualname: str
    #: The component's kind (``learner``, ``workflow``, ``model`` ...).
    #: ``"unknown"`` when a base class could not be read; ``"plain"`` when
    #: every base was read and none is a component base.
    kind: str
    #: The kind and the kinds it inherits (a TBWriter is also a widget).
    kinds: frozenset[str]
    #: ``"builtin"``, ``"plugin"``, ``"custom"`` or ``"allowed"``.
    origin: str
    file: str | None
    args: Mapping[str, ArgSpec]
    #: The constructor takes ``**kwargs`` (or its signature is not known).
    var_kwargs: bool
    #: JSON schema of the ``args`` object.
    args_schema: dict[str, Any]
    #: Literal UPPER_CASE class attributes (``EMITS_ARG``, ``LISTENS_ARG``,
    #: ``DEFAULT_EVENTS``, ``REFERENCES``, ``ARGS_SCHEMA`` ...).
    attributes: Mapping[str, Any]
    #: Line of the ``class`` statement in ``file`` (0 if not known).
    line: int = 0
    #: The first sentence of the class's docstring ("" without one).
    doc: str = ""

    def accepts(self, kind: str) -> bool:
        """True if this component may stand where ``kind`` is expected.

        ``"any"`` accepts every component; a component whose kind could not
        be read is given the benefit of the doubt.
        """
        return kind == "any" or kind in self.kinds or self.kind == "unknown"


class ResolveError(FlconfigError):
    """A component's ``path`` or ``name`` does not resolve to a class flconfig may build.

    ``code`` is ``path-not-allowed``, ``unknown-component``,
    ``ambiguous-name``, ``unresolvable``, ``custom-code-not-allowed`` (the participant
    runs no custom code) or ``custom-not-deployed`` (the class is in the ``custom/`` of
    an app not deployed to the participant); ``hint`` says what to do;
    ``candidates`` are paths or names the user may have meant.
    """

    def __init__(
        self, code: str, message: str, hint: str = "", candidates: Sequence[str] = ()
    ) -> None:
        self.code = code
        self.message = message
        self.hint = hint
        self.candidates = list(candidates)
        super().__init__(message)


@dataclass(frozen=True)
class _Plugin:
    entry: str
    path: str
    module: str
    qualname: str
    dist: str


class Registry:
    """Resolves component paths and names to :class:`ComponentInfo`, lazily.

    Create one per job with :meth:`create`. Nothing is imported and nothing
    is scanned until a lookup needs it.
    """

    def __init__(
        self,
        custom_dirs: Sequence[Path],
        allowed_modules: Sequence[str],
        job_roots: Sequence[Path] = (),
        python_path: Sequence[Path] = (),
        *,
        allow_custom_code: bool = True,
        participant: str = "this participant",
        other_custom: Mapping[str, Path] | None = None,
    ) -> None:
        self.custom_dirs: tuple[Path, ...] = tuple(custom_dirs)
        #: Whether the participant runs the job's own code: with False, no class whose
        #: file lies in the job folder resolves, and none is ever imported.
        self.allow_custom_code = allow_custom_code
        #: How messages name the participant this registry resolves for ("the server").
        self.participant = participant
        #: The custom/ folders of the job's other apps, by app name: never searched for
        #: classes, only named when a config refers into one of them.
        self.other_custom: Mapping[str, Path] = MappingProxyType(dict(other_custom or {}))
        #: Folders the user allowed with ``--python-path``: their modules are importable and
        #: their classes allowed, like the job's own (a class's real file must lie inside).
        self.python_path: tuple[Path, ...] = tuple(python_path)
        self.allowed_modules: tuple[str, ...] = tuple(allowed_modules)
        #: The job folders the custom/ folders belong to (resolved).
        self.job_roots: tuple[Path, ...] = tuple(job_roots)
        #: Problems met with plugins (a bad entry point), for the CLI to show.
        self.warnings: list[str] = []
        self._introspector = Introspector((*self.custom_dirs, *self.python_path))
        self._infos: dict[str, ComponentInfo] = {}
        self._plugins: list[_Plugin] | None = None
        self._builtins: list[ComponentInfo] | None = None
        self._name_table: dict[str, list[ComponentInfo]] | None = None

    @classmethod
    def create(
        cls,
        custom_dirs: Sequence[Path] = (),
        allowed_modules: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        job_root: Path | None = None,
        python_path: Sequence[Path] = (),
        *,
        allow_custom_code: bool = True,
        participant: str = "this participant",
        other_custom: Mapping[str, Path] | None = None,
    ) -> Registry:
        """A registry for one participant of a job (the server, or the sites of one app).

        ``custom_dirs`` are the ``custom/`` folder of the app deployed to the participant
        (missing ones are skipped); ``job_root`` is the job folder, which a module in them
        may link into (its real file must lie in that custom folder or elsewhere in the
        job folder, never in another app's ``custom/``). ``allowed_modules`` are dotted
        module prefixes whose classes configs may name, added to those in
        ``FLCONFIG_ALLOW_MODULES`` of ``environ`` (default: none; never this process's
        environment: the CLI passes it). Raises
        ValueError for a prefix that is not a dotted module name. ``python_path`` are
        folders (after ``custom/``, in order) whose modules a config may name, as FLARE
        imports what is on ``PYTHONPATH``. With ``allow_custom_code`` False the
        participant runs no code of the job folder: such a class does not resolve
        (``custom-code-not-allowed``) and :meth:`load_class` never imports one.
        ``other_custom`` maps the job's other apps to their ``custom/`` folders, only to
        say so when a config names a class in one of them (``custom-not-deployed``).
        """
        env: Mapping[str, str] = {} if environ is None else environ
        prefixes: list[str] = []
        for prefix in list(allowed_modules) + _split_env(env.get(ALLOW_ENV, "")):
            prefix = prefix.strip()
            if not _DOTTED.match(prefix):
                raise ValueError(
                    f"{prefix!r} is not a module name to allow (expected a dotted prefix such as 'my_pkg.models')"
                )
            if prefix not in prefixes:
                prefixes.append(prefix)
        dirs = [Path(d).resolve() for d in custom_dirs]
        roots = [job_root.resolve()] if job_root is not None else []
        extra = [Path(d).resolve() for d in python_path]
        others = {app: Path(d).resolve() for app, d in (other_custom or {}).items()}
        return cls([d for d in dirs if d.is_dir()], prefixes, roots, [d for d in extra if d.is_dir()],
                   allow_custom_code=allow_custom_code, participant=participant,
                   other_custom={app: d for app, d in others.items() if d.is_dir()})

    # -- resolving ------------------------------------------------------------

    def resolve(self, spec_key: str, value: str) -> ComponentInfo:
        """The component a spec names: ``spec_key`` is ``path``, ``class_path`` or ``name``.

        Raises :class:`ResolveError`.
        """
        if spec_key in ("path", "class_path"):
            return self._resolve_path(spec_key, value)
        if spec_key == "name":
            return self._resolve_name(value)
        raise ValueError(f"spec_key must be 'path', 'class_path' or 'name', not {spec_key!r}")

    def names(self) -> list[str]:
        """Every short name a spec's ``name`` may use, sorted."""
        return sorted(self._names())

    def components(self) -> list[ComponentInfo]:
        """Every built-in and plugin component, by path."""
        infos = {info.path: info for info in self._builtin_infos()}
        for plugin in self._plugin_list():
            info = self._plugin_info(plugin)
            infos.setdefault(info.path, info)
        return [infos[path] for path in sorted(infos)]

    def custom_components(self) -> list[ComponentInfo]:
        """The component classes in the job's ``custom/`` folders (read, never imported),
        by path; none where the participant runs no custom code. A module that does not
        parse is named in :attr:`warnings`."""
        if not self.allow_custom_code:
            return []
        for folder in self.custom_dirs:
            for file in sorted(folder.rglob("*.py")):
                error = parse_error(file)
                if error is not None:
                    self.warnings.append(f"{_short(str(file))} {error}: its classes are not listed")
        found: dict[str, ComponentInfo] = {}
        for path in self._custom_class_paths():
            try:
                info = self._resolve_custom(path)
            except ResolveError:  # a module that shadows another or does not parse: validate says so
                continue
            if info is not None and info.kind not in ("plain", "unknown"):
                found.setdefault(info.path, info)
        return [found[path] for path in sorted(found)]

    def _resolve_path(self, spec_key: str, value: Any) -> ComponentInfo:
        if not isinstance(value, str) or not value.strip():
            raise ResolveError(
                "unresolvable",
                f"{spec_key} must be a dotted class path such as 'my_module.MyClass'",
                f'set {spec_key} to a class path, or use "name" with a registered name',
            )
        if not _DOTTED.match(value) or "." not in value:
            candidates = [n for n in self._names() if n == value]
            hint = (
                f'use "name": "{value}" for the registered component'
                if candidates
                else "write the full path: module, a dot, then the class name"
            )
            raise ResolveError(
                "unresolvable",
                f"{value!r} is not a dotted class path ({spec_key} needs 'module.Class')",
                hint,
                candidates,
            )

        alias = FLARE_ALIASES.get(value)
        if alias is not None:
            info = self._builtin_info(alias)
            if info is not None:
                return info
        if value.split(".", 1)[0] == "flconfig":
            return self._resolve_flconfig_path(value)
        for plugin in self._plugin_list():
            if value in (plugin.path, f"{plugin.module}.{plugin.qualname}"):
                return self._plugin_info(plugin)
        custom = self._resolve_custom(value)
        if custom is not None:
            return custom
        self._check_not_in_other_app(value)
        if self._is_allowed(value):
            return self._resolve_allowed(value)
        raise self._not_allowed(value)

    def _resolve_flconfig_path(self, value: str) -> ComponentInfo:
        info = self._builtin_info(value)
        if info is not None:
            return info
        module, _, name = value.rpartition(".")
        if self._is_builtin_module(module) and self._introspector.module_file(module) is None:
            # No such module (a path from before a move, a typo): the class where it lives.
            same_name = [c.path for c in self._builtin_infos() if c.qualname == name]
            classes = same_name or [c.path for c in self._builtin_infos()]
            raise ResolveError(
                "unresolvable",
                f"{value!r}: flconfig has no module {module!r}",
                "check the module path" + _did_you_mean(value, classes),
                _close(value, classes),
            )
        if self._is_builtin_module(module):
            classes = [c.path for c in self._builtin_infos() if c.module == module]
            raise ResolveError(
                "unresolvable",
                f"{value!r}: module {module!r} has no component class {value.rpartition('.')[2]!r}",
                "check the class name" + _did_you_mean(value, classes),
                _close(value, classes),
            )
        raise self._not_allowed(value)

    def _resolve_custom(self, value: str) -> ComponentInfo | None:
        if not self.custom_dirs and not self.python_path:
            return None
        parts = value.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            file = self._introspector.module_in_search_path(module)
            if file is None:
                continue
            self._check_not_shadowing(module, file)
            description = self._introspector.describe_path(value)
            if description is None:
                names = self._introspector.class_names(module)
                if names is None:
                    raise ResolveError(
                        "unresolvable",
                        f"{value!r}: {_short(file)} {parse_error(file)}",
                        "fix the module in the job's custom/ folder",
                    )
                classes = [f"{module}.{name}" for name in names]
                raise ResolveError(
                    "unresolvable",
                    f"{value!r}: no class {'.'.join(parts[cut:])!r} in {_short(file)}",
                    "check the class name in the job's custom/ folder"
                    + _did_you_mean(value, classes),
                    _close(value, classes),
                )
            return self._homed(value, description, "custom")
        return None

    def is_job_code(self, file: str | os.PathLike[str] | None) -> bool:
        """True if ``file`` (links followed) lies in the job folder: the job's own code."""
        return file is not None and any(is_within(file, root) for root in self.job_roots)

    def _refuse_job_code(self, value: str, file: str) -> ResolveError:
        return ResolveError(
            "custom-code-not-allowed",
            f"{value!r} is the job's own code ({_short(file)}), and {self.participant} does not "
            "run custom code",
            "use a built-in component, a FLARE class flconfig provides or an installed plugin; "
            "or, if this participant should run the job's code, its operator sets "
            '"allow_custom_code": true in its kit (flconfig provision)',
        )

    def _check_not_in_other_app(self, value: str) -> None:
        """Raise ``custom-not-deployed`` if ``value`` names a module in the ``custom/`` of
        another app of the job (never searched: that app is not deployed here)."""
        parts = value.split(".")
        for app, folder in self.other_custom.items():
            for cut in range(len(parts) - 1, 0, -1):
                file = _module_file_in(folder, parts[:cut])
                if file is not None:
                    raise ResolveError(
                        "custom-not-deployed",
                        f"{value!r} is in the custom/ folder of app {app!r} ({_short(file)}), "
                        f"which is not deployed to {self.participant}",
                        f"a participant imports classes only from the custom/ folder of its own app: "
                        f"move {Path(file).name} into that app's custom/ folder",
                    )

    def _check_not_shadowing(self, module: str, file: str) -> None:
        """A custom module named like a standard-library or installed one is never custom:
        Python would import the other one (custom/ comes last on sys.path, as in FLARE)."""
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names:
            other = "the standard-library module"
        else:
            where = installed_location(top)
            if where is None or where == "built-in" or any(
                is_within(where, folder) for folder in (*self.custom_dirs, *self.python_path)
            ):
                return
            other = f"the installed module ({_short(where)})"
        raise ResolveError(
            "path-not-allowed",
            f"{_short(file)} in the job's custom/ folder has the name of {other} {top!r}; "
            "it is not custom code",
            f"rename the module in custom/ (Python would import {other} instead)",
        )

    def _resolve_allowed(self, value: str) -> ComponentInfo:
        description = self._introspector.describe_path(value)
        if description is not None:
            return self._homed(value, description, "allowed")
        parts = value.split(".")
        module = None
        for cut in range(len(parts) - 1, 0, -1):
            candidate = ".".join(parts[:cut])
            if self._introspector.module_file(candidate) is not None:
                module = candidate
                break
        if module is None:
            raise ResolveError(
                "unresolvable",
                f"{value!r}: module {'.'.join(parts[:-1])!r} was not found",
                "check the module path and that its package is installed (flconfig reads its .py source)",
            )
        names = self._introspector.class_names(module)
        if names is None:
            file = self._introspector.module_file(module) or module
            raise ResolveError(
                "unresolvable",
                f"{value!r}: {_short(file)} {parse_error(file)}",
                "fix that module, or allow one that flconfig can read as Python source",
            )
        classes = [f"{module}.{name}" for name in names]
        raise ResolveError(
            "unresolvable",
            f"{value!r}: no class {'.'.join(parts[len(module.split('.')) :])!r} in module {module!r}",
            "check the class name" + _did_you_mean(value, classes),
            _close(value, classes),
        )

    def _homed(self, value: str, description: ClassDescription, origin: str) -> ComponentInfo:
        """The info for a custom or allowed class, if it is defined where it
        may be: a name imported into a custom/ or allowed module from
        elsewhere (``from subprocess import Popen``) is judged by where the
        class really lives."""
        if origin == "custom":
            # Its real file (links followed) inside the job: custom/ itself, or a file
            # elsewhere in the job folder that custom/ links to — never another app's
            # custom/ folder.
            home = description.file is not None and any(
                is_within(description.file, folder)
                for folder in (*self.custom_dirs, *self.job_roots, *self.python_path)
            ) and not any(is_within(description.file, other) for other in self.other_custom.values())
        else:
            home = self._is_allowed(description.path)
        if home and description.file is not None and not self.allow_custom_code \
                and self.is_job_code(description.file):
            raise self._refuse_job_code(value, description.file)
        if home:
            return self._remember(description, origin)
        builtin = self._builtin_info(description.path)
        if builtin is not None:
            return builtin
        error = self._not_allowed(description.path)
        error.message = f"{value!r} is {description.path!r}, which is not an allowed component path"
        error.args = (error.message,)
        raise error

    def _not_allowed(self, value: str) -> ResolveError:
        top = value.split(".", 1)[0]
        if top in ("flconfig", "nvflare"):
            allow = ""
        elif top in sys.stdlib_module_names:  # never advise allowing the standard library
            allow = f"'{top}' is Python's standard library, not a component module"
        else:
            allow = (f"pass --allow-module {top} or set {ALLOW_ENV}={top} (an installed package), "
                     f"or --python-path with the folder holding {top}/ (as FLARE finds it on "
                     "PYTHONPATH)")
        if top == "nvflare":
            candidates = _close(value, list(FLARE_ALIASES))
            hint = "flconfig has no equivalent of this FLARE class yet" + _did_you_mean(
                value, candidates
            )
            if not candidates:
                hint += "; FLARE classes flconfig provides: " + ", ".join(
                    sorted({p.rpartition(".")[2] for p in FLARE_ALIASES})
                )
        else:
            candidates = _close(value, self._custom_class_paths())
            hint = (
                "flconfig builds only its own components, FLARE aliases, entry-point plugins, "
                "the job's custom/ modules and modules or folders you allow"
            )
            if allow:
                hint += f": {allow}"
            hint += _did_you_mean(value, candidates)
        if top == "nvflare":  # not a refusal: a FLARE class we have no equivalent of (yet)
            return ResolveError(
                "unsupported-flare-class",
                f"{value!r} is not a FLARE class flconfig supports yet", hint, candidates
            )
        return ResolveError(
            "path-not-allowed", f"{value!r} is not an allowed component path", hint, candidates
        )

    def _is_allowed(self, value: str) -> bool:
        return any(value == p or value.startswith(p + ".") for p in self.allowed_modules)

    def _resolve_name(self, value: Any) -> ComponentInfo:
        if not isinstance(value, str) or not value:
            raise ResolveError(
                "unknown-component",
                "name must be a registered component name such as 'ScatterAndGather'",
                'give a registered name, or the class by "path"',
            )
        matches = self._names().get(value, [])
        distinct = {info.path: info for info in matches}
        if len(distinct) == 1:
            return next(iter(distinct.values()))
        if len(distinct) > 1:
            paths = sorted(distinct)
            raise ResolveError(
                "ambiguous-name",
                f"name {value!r} is ambiguous: {len(paths)} components have it",
                'use "path" with one of: ' + ", ".join(paths),
                paths,
            )
        names = list(self._names())
        candidates = [n for n in names if n.lower() == value.lower()]
        candidates += [
            n
            for n in difflib.get_close_matches(value, names, n=5, cutoff=0.6)
            if n not in candidates
        ]
        if "." in value:
            hint = f'{value!r} looks like a class path: use "path" instead of "name"'
        else:
            hint = "use a registered name" + _did_you_mean(value, candidates)
            if not candidates:
                hint += ', or give the class by "path"'
        raise ResolveError(
            "unknown-component", f"no component is named {value!r}", hint, candidates
        )

    # -- importing ------------------------------------------------------------

    def load_class(self, info: ComponentInfo) -> type:
        """Import and return the class ``info`` describes.

        The only place flconfig imports a component. ``info`` must come from
        this registry (anything else is refused); for a ``custom`` class the
        participant's ``custom/`` folder is appended to ``sys.path`` first, as
        FLARE does. A participant that runs no custom code imports nothing from
        the job folder. Raises :class:`ResolveError`.
        """
        if self._infos.get(info.path) is not info:
            raise ResolveError(
                "path-not-allowed",
                f"{info.path!r} was not resolved by this registry",
                "resolve the component's path or name with Registry.resolve first",
            )
        if not self.allow_custom_code and (info.origin == "custom" or self.is_job_code(info.file)):
            raise self._refuse_job_code(info.path, info.file or info.path)
        try:
            return import_class(info.path, info.module, info.qualname, info.origin, info.file,
                                (*self.custom_dirs, *self.python_path),
                                job_root=self.job_roots[0] if self.job_roots else None,
                                allow_job_code=self.allow_custom_code)
        except ImportFailure as exc:
            raise ResolveError("unresolvable", exc.message, exc.hint) from exc.__cause__

    # -- built-ins --------------------------------------------------------------

    def _is_builtin_module(self, module: str) -> bool:
        if module in _NOT_COMPONENT_MODULES:
            return False
        if not any(module == p or module.startswith(p + ".") for p in _BUILTIN_PACKAGES):
            return False
        return not any(part.startswith("_") for part in module.split("."))

    def _builtin_info(self, path: str) -> ComponentInfo | None:
        """The built-in component at ``path`` (re-exports followed), or None."""
        info = self._infos.get(path)
        if info is not None and info.origin == "builtin":
            return info
        description = self._introspector.describe_path(path)
        if description is None or not self._is_builtin_module(description.module):
            return None
        if description.kind is None or description.qualname.startswith("_"):
            return None
        info = self._remember(description, "builtin")
        if path != info.path:
            self._infos.setdefault(path, info)
        return info

    def _builtin_infos(self) -> list[ComponentInfo]:
        if self._builtins is None:
            found: list[ComponentInfo] = []
            for module in _builtin_modules():
                for name in self._introspector.class_names(module) or []:
                    info = self._builtin_info(f"{module}.{name}")
                    if info is not None:
                        found.append(info)
            self._builtins = found
        return self._builtins

    # -- plugins ----------------------------------------------------------------

    def _plugin_list(self) -> list[_Plugin]:
        if self._plugins is None:
            self._plugins = self._load_plugins()
        return self._plugins

    def _load_plugins(self) -> list[_Plugin]:
        plugins: list[_Plugin] = []
        try:
            found = read_entry_points(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken installed distribution
            self.warnings.append(f"could not read the {ENTRY_POINT_GROUP!r} entry points: {exc}")
            return plugins
        for name, value, dist in found:
            match = _ENTRY_VALUE.match(value)
            if match is None or not match.group("attr"):
                self.warnings.append(
                    f"entry point {name!r} of {dist} ({value!r}) does not name a class"
                    " as 'module:Class'; skipped"
                )
                continue
            module, attr = match.group("module"), match.group("attr")
            plugins.append(_Plugin(name, f"{module}.{attr}", module, attr, dist))
        return plugins

    def _plugin_info(self, plugin: _Plugin) -> ComponentInfo:
        info = self._infos.get(plugin.path)
        if info is not None:
            return info
        description = self._introspector.describe_path(plugin.path)
        if description is not None:
            info = self._remember(description, "plugin")
        else:
            # Declared by an installed package but not readable as source (a
            # compiled module): trusted, with arguments unchecked.
            info = ComponentInfo(
                path=plugin.path,
                name=plugin.qualname.rpartition(".")[2],
                module=plugin.module,
                qualname=plugin.qualname,
                kind="unknown",
                kinds=frozenset(),
                origin="plugin",
                file=None,
                args=MappingProxyType({}),
                var_kwargs=True,
                args_schema={"type": "object"},
                attributes=MappingProxyType({}),
            )
            self._infos[info.path] = info
        self._infos.setdefault(plugin.path, info)
        return info

    # -- names --------------------------------------------------------------------

    def _names(self) -> dict[str, list[ComponentInfo]]:
        if self._name_table is None:
            table: dict[str, list[ComponentInfo]] = {}
            for info in self._builtin_infos():
                table.setdefault(info.name, []).append(info)
            for plugin in self._plugin_list():
                info = self._plugin_info(plugin)
                for name in {plugin.entry, info.name}:
                    entries = table.setdefault(name, [])
                    if all(e.path != info.path for e in entries):
                        entries.append(info)
            self._name_table = table
        return self._name_table

    def _custom_class_paths(self, limit: int = 300) -> list[str]:
        paths: list[str] = []
        for folder in self.custom_dirs:
            for file in sorted(folder.rglob("*.py"))[:limit]:
                rel = file.relative_to(folder).with_suffix("")
                parts = list(rel.parts)
                if parts[-1] == "__init__":
                    parts.pop()
                if not parts or not all(p.isidentifier() for p in parts):
                    continue
                module = ".".join(parts)
                paths += [f"{module}.{n}" for n in self._introspector.class_names(module) or []]
        return paths

    # -- descriptions to infos -------------------------------------------------------

    def _remember(self, description: ClassDescription, origin: str) -> ComponentInfo:
        existing = self._infos.get(description.path)
        if existing is not None:
            return existing
        info = _info_from(description, origin)
        self._infos[info.path] = info
        return info


def _info_from(description: ClassDescription, origin: str) -> ComponentInfo:
    attributes = description.attributes
    references = attributes.get("REFERENCES")
    if not isinstance(references, dict):
        references = {}
    args_schema_extra = attributes.get("ARGS_SCHEMA")
    if not isinstance(args_schema_extra, dict):
        args_schema_extra = {}
    if origin == "custom":  # a job's own code: its schema may not make the checker do unbounded work
        args_schema_extra = {name: _bounded(fragment) for name, fragment in args_schema_extra.items()}

    kind = description.kind or ("plain" if description.complete else "unknown")
    args: dict[str, ArgSpec] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    params = description.params
    var_kwargs = description.var_kwargs or params is None
    for param in params or ():
        if param.kind == "positional_only":
            continue  # configs pass keyword arguments only
        spec = _arg_spec(param, references)
        args[param.name] = spec
        properties[param.name] = _property_schema(param, spec, description.arg_docs.get(param.name))
        if spec.required:
            required.append(param.name)
    for name, fragment in args_schema_extra.items():
        # An entry for an argument the class does not take (one a base class's entries name)
        # refines nothing: it must not make a misspelt or foreign argument look valid.
        if isinstance(name, str) and isinstance(fragment, dict) and (name in properties or var_kwargs):
            properties[name] = refine(properties.get(name, {}), fragment)

    schema: dict[str, Any] = {"type": "object"}
    if params is not None or properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    if not var_kwargs:
        schema["additionalProperties"] = False
    return ComponentInfo(
        path=description.path,
        name=description.qualname.rpartition(".")[2],
        module=description.module,
        qualname=description.qualname,
        kind=kind,
        kinds=description.kinds,
        origin=origin,
        file=description.file,
        args=MappingProxyType(args),
        var_kwargs=var_kwargs,
        args_schema=schema,
        attributes=description.attributes,
        line=description.line,
        doc=_first_line(description.docstring),
    )


def _first_line(text: str | None) -> str:
    """A docstring's first sentence (its summary, over as many lines as it takes), or ""."""
    paragraph = " ".join((text or "").strip().split("\n\n", 1)[0].split())
    sentence, dot, _ = paragraph.partition(". ")
    return sentence + "." if dot else paragraph


#: The schema keywords a job's own ARGS_SCHEMA may use: none that runs a regular expression
#: the job wrote (a pattern can take exponential time on a string the job also wrote) or
#: that refers to other documents.
_BOUNDED_KEYWORDS = frozenset({
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "required", "description", "title", "default", "examples", "items",
    "properties", "additionalProperties", "anyOf", "oneOf", "allOf", "not", "patternErrorMessage",
})


def _bounded(fragment: Any) -> Any:
    """``fragment`` (a job's schema) with only :data:`_BOUNDED_KEYWORDS`, at every level."""
    if isinstance(fragment, list):
        return [_bounded(item) for item in fragment]
    if not isinstance(fragment, dict):
        return fragment
    out: dict[str, Any] = {}
    for key, value in fragment.items():
        if key not in _BOUNDED_KEYWORDS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _bounded(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "oneOf", "allOf"):
            out[key] = _bounded(value)
        else:
            out[key] = value
    return out


def _arg_spec(param: Param, references: Mapping[str, Any]) -> ArgSpec:
    reference: str | None = None
    declared = references.get(param.name)
    if isinstance(declared, str):
        reference = declared or None  # "": an ``_id`` argument that names no component
    elif param.name.endswith("_id"):
        reference = ID_REFERENCE_KINDS.get(param.name, "any")
    required = param.default is NO_DEFAULT
    default = MISSING if required or param.default is NOT_LITERAL else param.default
    return ArgSpec(param.name, param.annotation, required, default, reference)


#: The keys that say what type a value has: a refinement setting one of them replaces them all.
_TYPING_KEYS = frozenset({"type", "anyOf", "oneOf", "allOf", "enum", "const"})


def refine(derived: Mapping[str, Any], fragment: Mapping[str, Any]) -> dict[str, Any]:
    """An argument's schema from its type hint (``derived``), refined by the class's
    ``ARGS_SCHEMA`` entry: the fragment's keys are added (``minimum``, ``minLength``,
    ``pattern`` ...) and win over the derived ones; a fragment that states the type
    itself (``type``, ``anyOf``, ``enum`` ...) replaces the derived typing, while the
    derived description and default stay."""
    if _TYPING_KEYS & fragment.keys():
        derived = {k: v for k, v in derived.items() if k not in _TYPING_KEYS}
    return {**derived, **fragment}


def _property_schema(param: Param, spec: ArgSpec, doc: str | None) -> dict[str, Any]:
    schema = annotation_schema(param.annotation)
    if schema and spec.default is None:
        schema = _union([schema, {"type": "null"}])
    if schema and spec.reference is not None and not spec.name.endswith("_id"):
        # A declared reference may also be a nested component spec.
        schema = _union([schema, {"type": "object"}])
    schema = dict(schema)
    if doc:
        schema["description"] = doc
    if spec.default is not MISSING and _is_json(spec.default):
        schema["default"] = spec.default
    return schema


# --------------------------------------------------------------------------
# Helpers


def _builtin_modules() -> list[str]:
    modules: list[str] = []
    for package in _BUILTIN_PACKAGES:
        folder = _FLCONFIG_DIR.joinpath(*package.split(".")[1:])
        if not folder.is_dir():
            continue  # flconfig.examples may not be there
        for file in sorted(folder.rglob("*.py")):
            rel = file.relative_to(folder).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            if any(p.startswith("_") or not p.isidentifier() for p in parts):
                continue
            module = ".".join([package, *parts])
            if module not in _NOT_COMPONENT_MODULES:
                modules.append(module)
    return modules


def _module_file_in(folder: Path, parts: Sequence[str]) -> str | None:
    """The file of the module ``parts`` (``a/b.py`` or ``a/b/__init__.py``) under ``folder``."""
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    base = folder.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return str(candidate)
    return None


def _split_env(value: str) -> list[str]:
    items = re.split(f"[,{re.escape(os.pathsep)}]", value)
    return [item.strip() for item in items if item.strip()]


def _close(value: str, choices: Sequence[str]) -> list[str]:
    if not choices:
        return []
    found = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
    if not found:
        # Compare class names alone: 'my_trainer.SimpleTrainr' vs '...SimpleTrainer'.
        name = value.rpartition(".")[2]
        by_name = {c.rpartition(".")[2]: c for c in choices}
        found = [
            by_name[n] for n in difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.75)
        ]
    return found


def _did_you_mean(value: str, candidates: Sequence[str]) -> str:
    if not candidates:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in candidates) + "?"


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
