"""Sweep configs: YAML files of cases, loaded safely, validated, expanded into named cases.

A config has four optional top-level keys::

    defaults: {option: value}      merged under every case
    grid:     {option: [values]}   the cartesian product; every point is a case
    cases:    [{name, option: value}]
    seeds:    [int]                every case runs once per seed

Options are :class:`~rnn_parity.spec.CheckSpec` fields (``check``'s options in
snake_case) and every case is validated by ``CheckSpec`` itself, so a config
gets exactly ``check``'s defaults and rules. :func:`load_cases` returns the
cases of one or more files in config order, or raises :class:`ConfigError`
with every problem found, one line each: ``FILE: key.path (line N): message``.

YAML is read with PyYAML's safe loader only, and a tag outside plain YAML
(``!!python/object:…``, ``!custom``) is refused before anything is constructed.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .errors import InvalidInput
from .keras_call import resolve
from .spec import CheckSpec, error_reason

__all__ = ["Case", "ConfigError", "SweepFile", "config_json_schema", "load_cases", "name_filter", "select"]

OPTIONS = tuple(CheckSpec.model_fields)
SECTIONS = ("defaults", "grid", "cases", "seeds")

#: Keys people reach for, and the option they mean (``check``'s long flag names, plurals).
_ALIASES = {
    "batch": "N",
    "timesteps": "T",
    "features": "D",
    "units": "M",
    "outputs": "K",
    "no_bias": "use_bias",
    "seeds": "seed",
    "bias": "use_bias",
}

#: Tags PyYAML's safe loader builds from plain YAML; anything else is refused.
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in "str int float bool null seq map merge timestamp binary set omap pairs".split()
}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-5`` as a number (YAML 1.2) rather than the string YAML 1.1 makes it.

    So a quoted ``"1e-5"`` stays a string and is refused where a number is due.
    """


_Loader.yaml_implicit_resolvers = {key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

#: A file standing for more values than this (aliases expanded) is refused, not expanded.
MAX_VALUES = 100_000
#: At most this many cases per file (grid points times seeds, plus explicit cases times seeds).
MAX_CASES = 100_000
#: At most this many problems are listed; the rest are counted.
MAX_PROBLEMS = 40

KeyPath = tuple  # where a value sits in a file: ("cases", 3, "T")


class ConfigError(InvalidInput):
    """One or more problems in config files (exit 2); ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS]
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class Case:
    """One case of a sweep.

    Attributes:
        name: unique within its config file.
        spec: the validated options.
        config: the config file, as given.
        origin: where the case comes from in that file: ``cases[3]`` or ``grid``.
    """

    name: str
    spec: CheckSpec
    config: str
    origin: str


SeedList = Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(min_length=1)]


class SweepFile(BaseModel):
    """The layout of a config file; the options inside are validated by :class:`CheckSpec`."""

    model_config = ConfigDict(extra="forbid", title="rnn-parity sweep config")

    defaults: dict[str, Any] = Field(default_factory=dict, description="options merged under every case")
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="option: [values]; every combination of the lists is a case"
    )
    cases: list[dict[str, Any]] = Field(
        default_factory=list, description="explicit cases: any options, and an optional unique name"
    )
    seeds: SeedList | None = Field(None, description="every case runs once per seed (replaces the seed option)")


# ----- locations -----
def format_path(path: KeyPath) -> str:
    """``("cases", 3, "T")`` → ``cases[3].T``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Source:
    """A config file's text mapped to lines: where each key and each value starts."""

    def __init__(self, file: str):
        self.file = file
        self.value_lines: dict[KeyPath, int] = {}
        self.key_lines: dict[KeyPath, int] = {}
        self._problems: list[tuple[int, str]] = []
        self._sizes: dict[int, int] = {}

    @property
    def problems(self) -> list[str]:
        """One line each, in file order."""
        return [text for _, text in sorted(self._problems, key=lambda p: p[0])]

    def add(self, text: str, line: int | None = None) -> None:
        self._problems.append((line or 0, text))

    def line(self, path: KeyPath, *, key: bool = False) -> int | None:
        if key and path in self.key_lines:
            return self.key_lines[path]
        while path not in self.value_lines and path:
            path = path[:-1]
        return self.value_lines.get(path)

    def problem(self, path: KeyPath, message: str, *, key: bool = False, origin: str | None = None) -> None:
        where = origin or format_path(path)
        line = self.line(path, key=key)
        at = f"{where} (line {line})" if where and line else (where or (f"line {line}" if line else ""))
        self.add(f"{self.file}: {at}: {message}" if at else f"{self.file}: {message}", line)

    def walk(self, node: yaml.Node, path: KeyPath = ()) -> int:
        """Record lines, refuse tags that are not plain YAML, find duplicate keys.

        Returns how many values the node stands for once aliases are expanded; a node
        reached again through an alias is counted, not walked again.
        """
        self.value_lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self._sizes:
            return self._sizes[id(node)]
        self._sizes[id(node)] = 1
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self.problem(
                path,
                f"the tag {tag} is not allowed: a config holds plain values "
                "(numbers, strings, booleans, lists and mappings)",
            )
            return 1
        size = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    size += self.walk(value_node, path)
                    continue
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.key_lines[path + (key,)] = line
                    self.problem(path + (key,), f"duplicate key (first on line {seen[key]})", key=True)
                    continue
                seen[key] = line
                self.key_lines[path + (key,)] = line
                size += self.walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                size += self.walk(item, path + (i,))
        self._sizes[id(node)] = size
        return size


def _read(path: str) -> tuple[_Source, Any]:
    """Parse one file safely; problems are collected on the returned source."""
    source = _Source(path)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        source.problem((), "no such file")
        return source, None
    except IsADirectoryError:
        source.problem((), "is a folder, not a config file")
        return source, None
    except UnicodeDecodeError:
        source.problem((), "is not UTF-8 text")
        return source, None
    except OSError as exc:
        source.problem((), f"cannot read it ({exc.strerror or exc})")
        return source, None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return source, None
        if source.walk(node) > MAX_VALUES:
            source.problem((), f"expands to more than {MAX_VALUES} values through aliases; refused")
        if source.problems:
            return source, None
        return source, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        message = exc.problem or exc.context or "cannot parse it"
        if exc.problem and exc.context and exc.context_mark:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        source.add(f"{path}: {where}invalid YAML: {message}", mark.line + 1 if mark else None)
        return source, None
    except yaml.YAMLError as exc:
        source.add(f"{path}: invalid YAML: {str(exc).splitlines()[0]}")
        return source, None
    finally:
        loader.dispose()


# ----- validation -----
def suggest(key: str, known: tuple[str, ...] | list[str], aliases: dict[str, str] | None = None) -> str | None:
    """The known key closest to ``key`` (case, dashes and near-misses of a few aliases forgiven), or None."""
    norm = str(key).strip().lower().replace("-", "_")
    targets = {k.lower(): k for k in known}
    targets.update({alias: k for alias, k in (aliases or {}).items() if k in known and alias not in targets})
    if norm in targets:
        return targets[norm]
    close = difflib.get_close_matches(norm, list(targets), n=1, cutoff=0.6)
    return targets[close[0]] if close else None


def _unknown(key: str, known, aliases=None, what: str = "option") -> str:
    guess = suggest(key, known, aliases)
    return f"is not a known {what}" + (f"; did you mean {guess}?" if guess else "")


_STRUCTURE = {
    ("defaults",): "must be a mapping of option: value",
    ("grid",): "must be a mapping of option: [values]",
    ("cases",): "must be a list of cases",
    ("seeds",): "must be a list of seeds, e.g. [0, 1, 2]",
}


def _structure_reason(loc: tuple, err: dict) -> str:
    """The message for an error in the file's layout (sections, grid lists, seeds)."""
    kind, section = err["type"], loc[0] if loc else None
    if kind == "extra_forbidden" and len(loc) == 1:
        if loc[0] in OPTIONS:
            return "is an option, not a top-level key: put it under defaults, grid or a case"
        return _unknown(loc[0], SECTIONS, {"case": "cases", "seed": "seeds", "default": "defaults"}, "top-level key")
    if len(loc) == 1 and kind in ("dict_type", "list_type"):
        return _STRUCTURE[loc] + _got(err["input"])
    if section == "grid" and len(loc) == 2 and kind == "list_type":
        return f"must be a list of values, e.g. [{err['input']!r}]"
    if section == "grid" and len(loc) == 2 and kind == "too_short":
        return "must list at least one value"
    if section == "cases" and kind == "dict_type":
        return "must be a mapping of option: value" + _got(err["input"])
    if section == "seeds" and kind == "too_short":
        return "must list at least one seed"
    if section == "seeds":
        return "must be an integer ≥ 0" + _got(err["input"])
    return error_reason(err) + _got(err["input"])


def _got(value) -> str:
    return f", got {value!r}"


def _option_problems(options: dict) -> list[tuple[tuple, str]]:
    """Each option's own rules (type, range, choices) as ``(loc, message)``; combinations are judged later."""
    try:
        CheckSpec.model_validate(options, context={"style": "config"})
    except ValidationError as exc:
        return [(tuple(err["loc"]), f"{error_reason(err)}{_got(err['input'])}") for err in exc.errors() if err["loc"]]
    return []


def _check_options(source: _Source, values: dict, path: KeyPath, *, allow_name: bool) -> None:
    options = {}
    for key, value in values.items():
        if key == "name":
            if not allow_name:
                source.problem(path + (key,), "a name belongs to one case: put it in a case under cases", key=True)
            elif not isinstance(value, str) or not value.strip():
                source.problem(path + (key,), f"must be a non-empty string{_got(value)}")
        elif key not in OPTIONS:
            source.problem(path + (key,), _unknown(key, OPTIONS, _ALIASES), key=True)
        else:
            options[key] = value
    for loc, message in _option_problems(options):
        source.problem(path + loc, message)


def _check_grid(source: _Source, grid: dict) -> None:
    for key, values in grid.items():
        if key == "name":
            source.problem(("grid", key), "a name belongs to one case: put it in a case under cases", key=True)
        elif key not in OPTIONS:
            source.problem(("grid", key), _unknown(key, OPTIONS, _ALIASES), key=True)
        else:
            for i, value in enumerate(values):
                for loc, message in _option_problems({key: value}):
                    source.problem(("grid", key, i) + loc[1:], message)


def _check_file(source: _Source, data) -> SweepFile | None:
    """Check the layout, then every option where the layout allows; the layout only when all is well."""
    if data is None:
        source.problem((), "is empty: a config needs cases or a grid")
        return None
    if not isinstance(data, dict):
        got = ", got a list" if isinstance(data, list) else _got(data)
        source.problem((), f"the top level must be a mapping with defaults, grid, cases or seeds{got}")
        return None
    data = {str(k): v for k, v in data.items() if v is not None}  # an empty section is an absent one
    bad: set[tuple] = set()  # sections (or grid keys, case items) whose layout is wrong
    try:
        layout = SweepFile.model_validate(data)
    except ValidationError as exc:
        layout = None
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "[key]")
            source.problem(loc, _structure_reason(loc, err), key=err["type"] == "extra_forbidden")
            bad.add(loc[:2] if loc[:1] in (("grid",), ("cases",)) and len(loc) > 1 else loc[:1])
    defaults = data.get("defaults", {}) if ("defaults",) not in bad else {}
    if isinstance(defaults, dict):
        _check_options(source, {str(k): v for k, v in defaults.items()}, ("defaults",), allow_name=False)
    grid = data.get("grid", {}) if ("grid",) not in bad else {}
    _check_grid(source, {str(k): v for k, v in grid.items() if ("grid", k) not in bad})
    cases = data.get("cases", []) if ("cases",) not in bad else []
    for i, case in enumerate(cases):
        if ("cases", i) not in bad:
            _check_options(source, {str(k): v for k, v in case.items()}, ("cases", i), allow_name=True)
    if "seeds" in data and ("seeds",) not in bad:
        seeds_line = source.line(("seeds",))
        places = [("defaults", "seed")] if "seed" in defaults else []
        places += [("grid", "seed")] if "seed" in grid else []
        places += [("cases", i, "seed") for i, case in enumerate(cases) if isinstance(case, dict) and "seed" in case]
        for place in places:
            message = f"seeds (line {seeds_line}) already sets every case's seed; use one or the other"
            source.problem(place, message, key=True)
    if not data.get("cases") and not data.get("grid"):
        source.problem((), "defines no cases: add a cases list or a grid")
    if source.problems or layout is None:
        return None
    return layout.model_copy(
        update={
            "defaults": {str(k): v for k, v in layout.defaults.items()},
            "cases": [{str(k): v for k, v in case.items()} for case in layout.cases],
        }
    )


# ----- expansion and names -----
@dataclass
class _Draft:
    origin: str
    path: KeyPath
    values: dict
    name: str | None
    spec: CheckSpec | None = None


def _count(layout: SweepFile) -> int:
    points = math.prod(len(values) for values in layout.grid.values()) if layout.grid else 0
    return (len(layout.cases) + points) * len(layout.seeds or [None])


def _expand(layout: SweepFile) -> list[_Draft]:
    drafts = []
    for i, case in enumerate(layout.cases):
        options = {k: v for k, v in case.items() if k != "name"}
        drafts.append(_Draft(f"cases[{i}]", ("cases", i), {**layout.defaults, **options}, case.get("name")))
    if layout.grid:
        keys = list(layout.grid)
        for point in itertools.product(*(layout.grid[k] for k in keys)):
            values = dict(zip(keys, point, strict=True))
            where = "grid point " + ", ".join(f"{k}={_show(v)}" for k, v in values.items())
            drafts.append(_Draft(where, ("grid",), {**layout.defaults, **values}, None))
    if layout.seeds is None:
        return drafts
    return [_Draft(d.origin, d.path, {**d.values, "seed": seed}, d.name) for d in drafts for seed in layout.seeds]


def _show(value) -> str:
    """A value as it appears in a derived name."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return _show(value[0]) if len(value) == 1 else "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _name_keys(specs: list[CheckSpec]) -> list[str]:
    """The options whose value differs between these specs, in field order with seed last."""
    keys = [k for k in OPTIONS if len({repr(getattr(s, k)) for s in specs}) > 1]
    return sorted(keys, key=lambda k: k == "seed")


def _names(drafts: list[_Draft], seeds: list[int] | None) -> list[str]:
    unnamed = [d.spec for d in drafts if d.name is None]
    varying = _name_keys(unnamed)
    default = CheckSpec()
    names = []
    for d in drafts:
        if d.name is not None:
            names.append(d.name + (f",seed={d.spec.seed}" if seeds and len(seeds) > 1 else ""))
            continue
        keys = varying or [k for k in OPTIONS if k != "max_memory" and getattr(d.spec, k) != getattr(default, k)]
        names.append(",".join(f"{k}={_show(getattr(d.spec, k))}" for k in keys) or "defaults")
    return names


def _cases_of(source: _Source, layout: SweepFile) -> list[Case]:
    if _count(layout) > MAX_CASES:
        where = ("grid",) if layout.grid else ("cases",)
        source.problem(where, f"the file expands to {_count(layout)} cases; at most {MAX_CASES} are allowed")
        return []
    drafts = _expand(layout)
    reported = set()
    for d in drafts:
        try:
            d.spec = CheckSpec.model_validate(d.values, context={"style": "config"})
        except ValidationError as exc:
            for err in exc.errors():
                message = err["msg"].removeprefix("Value error, ")
                if (d.origin, message) not in reported:
                    reported.add((d.origin, message))
                    source.problem(d.path, message, origin=d.origin)
    if source.problems:
        return []
    names = _names(drafts, layout.seeds)
    first: dict[str, _Draft] = {}
    for d, name in zip(drafts, names, strict=True):
        if name in first and first[name] is not d:
            other = first[name]
            also = f"{other.origin}, line {source.line(other.path)}"
            if d.name is None and other.name is None:
                origin, path = d.origin, d.path
                message = f"has the same values as {also}, so both are named {name!r}; give one of them a name"
            else:
                origin = f"{d.origin}.name" if d.name is not None else d.origin
                path = d.path + ("name",) if d.name is not None else d.path
                message = f"duplicate case name {name!r} (also {also})"
            if (origin, message) not in reported:
                reported.add((origin, message))
                source.problem(path, message, origin=origin)
        first.setdefault(name, d)
    if source.problems:
        return []
    return [Case(name, d.spec, source.file, d.origin) for d, name in zip(drafts, names, strict=True)]


def load_cases(paths: list[str]) -> list[Case]:
    """Every case of these config files, in order; raises :class:`ConfigError` listing every problem.

    A case's ``keras_call: auto`` comes back resolved (:mod:`rnn_parity.keras_call`).
    """
    problems: list[str] = []
    cases: list[Case] = []
    seen: set[Path] = set()
    for path in paths:
        resolved = Path(path).resolve()
        if resolved in seen:
            problems.append(f"{path}: given twice")
            continue
        seen.add(resolved)
        source, data = _read(str(path))
        layout = _check_file(source, data) if not source.problems else None
        if layout is not None and not source.problems:
            found = _cases_of(source, layout)
            cases += found
        problems += source.problems
    if problems:
        raise ConfigError(problems)
    # keras_call auto, decided over every case given (before --filter and --shard): the same call in any run
    calls = resolve([case.spec for case in cases])
    return [replace(case, spec=spec) for case, spec in zip(cases, calls, strict=True)]


# ----- selection -----
def name_filter(pattern: str) -> re.Pattern:
    """``*`` matches any run of characters, ``?`` one character; everything else is literal; whole name."""
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """The cases whose name matches any of ``patterns`` (all of them when there is none)."""
    if not patterns:
        return list(cases)
    compiled = [name_filter(p) for p in patterns]
    return [c for c in cases if any(rx.fullmatch(c.name) for rx in compiled)]


# ----- JSON Schema -----
def config_json_schema() -> dict:
    """A JSON Schema (draft 2020-12) of a config file, built from :class:`SweepFile` and :class:`CheckSpec`.

    Every ``CheckSpec`` field appears with its type, default and description,
    so options added to the spec appear here without further work.
    """
    spec = CheckSpec.model_json_schema()
    options = {k: {key: v for key, v in prop.items() if key != "title"} for k, prop in spec["properties"].items()}
    defs = dict(spec.get("$defs", {}))
    defs["Options"] = {
        "type": "object",
        "description": "check's options in snake_case, with check's defaults",
        "properties": options,
        "additionalProperties": False,
    }
    defs["Case"] = {
        "type": "object",
        "description": "one case: options, and an optional unique name",
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "description": "the case's name (default: derived from the values that vary, e.g. T=10,M=5,seed=1)",
            },
            **options,
        },
        "additionalProperties": False,
    }
    defs["Grid"] = {
        "type": "object",
        "description": "option: [values]; every combination is a case",
        "properties": {
            k: {
                "type": "array",
                "minItems": 1,
                "items": v,
                **({"description": v["description"]} if "description" in v else {}),
            }
            for k, v in options.items()
        },
        "additionalProperties": False,
    }
    layout = SweepFile.model_json_schema()
    props = layout["properties"]
    for key, ref in (("defaults", "Options"), ("grid", "Grid")):
        props[key] = {"$ref": f"#/$defs/{ref}", "description": props[key]["description"]}
    props["cases"] = {"type": "array", "items": {"$ref": "#/$defs/Case"}, "description": props["cases"]["description"]}
    props["seeds"] = {
        "type": "array",
        "minItems": 1,
        "items": {"type": "integer", "minimum": 0},
        "description": props["seeds"]["description"],
    }
    for prop in props.values():
        prop.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rnn-parity sweep config",
        "description": "Cases for `rnn-parity sweep`: defaults merged under every case, a grid whose every point "
        "is a case, explicit cases, and seeds that repeat every case.",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "$defs": defs,
    }
