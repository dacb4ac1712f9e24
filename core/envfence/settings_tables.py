"""Settings tables declared once: the keys of envfence.toml, their kinds, defaults and meaning.

The core declares its own keys in :data:`CORE`; a plugin declares its table
through the ``declare_tables`` hook and reads it back with :meth:`Table.read`::

    TABLE = Table("backup", "archives of the environment's state")
    TABLE.add("keep", whole(minimum=1), 7, "how many archives the retention keeps")

    @hookimpl
    def declare_tables():
        return [TABLE]

    def keep(settings) -> int:
        return TABLE.read(settings)["keep"]

The one declaration feeds the loader (typed values, defaults, a
:class:`~envfence.errors.ConfigurationError` naming the file, table and key),
``envfence check`` (:func:`findings`: a wrong value is an error, an unknown key a
warning with a did-you-mean), ``envfence config schema`` (:func:`schema`) and
the docs' settings reference (:func:`reference`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import slotted
from .errors import ConfigurationError
from .settings_kinds import Kind, shown, toml


@slotted.frozen
class Key:
    """One declared key of a table."""

    name: str
    kind: Kind
    default: Any  #: the value when the file sets none (None: no value)
    description: str
    required: bool = False  #: the table must set it
    #: A further check of a value of the right kind (a path inside the tree, a known zone): a problem or None.
    check: Callable[[Any], str | None] | None = slotted.field(default=None, repr=False)
    #: Sibling values this key goes with only (``isolation_reason`` needs ``isolation = "in-process"``).
    requires: Mapping[str, Any] = slotted.field(factory=dict)


@slotted.frozen
class Problem:
    """A key of the file that its declaration refuses (or does not know)."""

    key: str  #: dotted, from the top of the file: ``alerts.escalation.after``
    message: str
    hint: str
    unknown: bool = False


class Table:
    """A declared settings table: its keys and its sub-tables (one fixed, or one per free name)."""

    def __init__(self, name: str, description: str, *, extra: bool = False) -> None:
        """``extra``: the table also takes keys it does not declare (a plugin that reads free names)."""
        self.name = name
        self.description = description
        self.extra = extra
        self.keys: dict[str, Key] = {}
        self.tables: dict[str, Table] = {}
        self.each: dict[str, Each] = {}
        self.free: Free | None = None  #: keys of free names, each holding a value of one kind
        self.plugin: str | None = None  #: set by the core when the hook hands it in
        #: A core sub-table whose wrong values do not stop a session from opening: its reader refuses
        #: them when it reads the table (a run reads [resources]), and ``check`` reports them.
        self.deferred = False

    def add(self, name: str, kind: Kind, default: Any = None, description: str = "", *,
            required: bool = False, check: Callable[[Any], str | None] | None = None,
            requires: Mapping[str, Any] | None = None) -> None:
        """Declare key ``name`` of kind ``kind`` (``requires``: sibling values it goes with only)."""
        self.keys[name] = Key(name, kind, default, description, required, check, dict(requires or {}))

    def add_table(self, name: str, description: str, *, extra: bool = False, deferred: bool = False) -> Table:
        """Declare the sub-table ``[<this>.name]`` and return it, for its keys (``deferred``: see :attr:`deferred`)."""
        table = Table(_join(self.name, name), description, extra=extra)
        table.deferred = deferred
        self.tables[name] = table
        return table

    def add_each(self, name: str, description: str, *, names: str = r"[A-Za-z0-9][A-Za-z0-9_-]*",
                 names_hint: str = "letters, digits, - and _, starting with a letter or digit", noun: str = "name",
                 defaults: Mapping[str, Mapping[str, Any]] | None = None, extra: bool = False,
                 shorthand: str | None = None) -> Table:
        """Declare ``[<this>.name.NAME]``, one table of the returned shape per free ``NAME`` matching ``names``.

        ``defaults`` gives some names values of their own (the built-in environments), which
        also count for the required keys. An empty ``name`` makes this table's own keys the
        free names (``[settings.NAME]``). ``shorthand`` names the key a name may be given
        alone (``sync = "acme:sync"`` for ``[automations.sync] run = "acme:sync"``).
        """
        table = Table(_join(self.name, name) + ".NAME", description, extra=extra)
        self.each[name] = Each(table, names, names_hint, dict(defaults or {}), noun, shorthand)
        return table

    def add_free(self, kind: Kind, description: str, *, names: str = r"[A-Za-z0-9][A-Za-z0-9_-]*",
                 names_hint: str = "an environment's name") -> None:
        """Declare that any other key named like ``names`` holds a value of ``kind`` (``production = ["sun 02:00-04:00"]``)."""
        self.free = Free(kind, description, names, names_hint)

    def known(self) -> frozenset[str]:
        """Every key and sub-table name this table declares (not its free names)."""
        # Asked at every opening and by every read of named tables; declarations only grow, so their sizes tell.
        sizes = (len(self.keys), len(self.tables), len(self.each))
        kept = self.__dict__.get("_known")
        if kept is None or kept[0] != sizes:
            kept = self.__dict__["_known"] = (sizes, frozenset(self.keys) | frozenset(self.tables) | (frozenset(self.each) - {""}))
        return kept[1]

    def problems(self, value: Any, where: str, defaults: Mapping[str, Any] | None = None) -> list[Problem]:
        """What the declaration refuses in ``value``, the table at dotted path ``where``."""
        if not isinstance(value, dict):
            return [Problem(where, "must be a table", f"write it as [{where}]")]
        found: list[Problem] = []
        for name, raw in value.items():
            found += self._one(name, raw, _join(where, name))
        for key in self.keys.values():
            wanted = {k: v for k, v in key.requires.items() if value.get(k) != v}
            if key.name in value and wanted:
                with_ = " and ".join(f"{k} = {toml(v)}" for k, v in wanted.items())
                found.append(Problem(_join(where, key.name), f"goes with {with_} only", f"set {with_}, or remove it"))
            if key.required and key.name not in value and key.name not in (defaults or {}):
                found.append(Problem(_join(where, key.name), "missing",
                                     f"{key.description}; e.g. {key.name} = {key.kind.example()}"))
        return found

    def _one(self, name: str, raw: Any, path: str) -> list[Problem]:
        if name in self.keys:
            return [p for p in [key_problem(self.keys[name], raw, path)] if p]
        if name in self.tables:
            return self.tables[name].problems(raw, path)
        if name in self.each:
            return self.each[name].problems(raw, path)
        if "" in self.each:  # a free name beside the declared ones: [settings.NAME], [webhooks.NAME]
            each = self.each[""]
            if self.keys and not isinstance(raw, dict) and each.shorthand is None:
                # A value, not a table, beside declared keys: a misspelled key more likely than a NAME ([backup] kep = 7).
                return [Problem(path, "unknown key", did_you_mean(name, self.known()))]
            return each.one(name, raw, path)
        if self.free is not None:
            return self.free.problems(name, raw, path)
        if self.extra:
            return []
        return [Problem(path, "unknown key", did_you_mean(name, self.known()), unknown=True)]

    def read(self, settings: Any) -> Values:
        """This table of ``settings`` (a :class:`~envfence.settings.ProjectSettings`), read through the declaration.

        A value is checked when it is read (:meth:`Values.__getitem__`); ``envfence check`` reports the others.
        """
        raw: Any = settings.raw
        for part in self.name.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        return Values(self, raw, settings.source, self.name)

    def overlaid(self, settings: Any, environment: str) -> dict[str, tuple[Any, str]]:
        """The table's keys with ``[<table>.<environment>]`` laid over them, each with its dotted key.

        For a table whose free names are environments (``add_each("", ..., noun="environment name")``):
        ``{"memory": ("1GB", "resources.production.memory")}``. Other environments' tables are theirs
        to judge; a run here is not refused for them.

        :raises ConfigurationError: naming the file and the key: a value the declaration refuses among
            those that apply here, an unknown key, or a ``[<table>.NAME]`` for no declared environment.
        """
        values = self.read(settings)
        for problem in self.problems_here(values.raw, environment):
            raise values._fail(problem)
        found = {key: (values[key], f"{self.name}.{key}") for key in values.raw if key in self.keys}
        for name, own in values.each("").items():
            if name not in settings.environments:
                raise values._fail(Problem(
                    f"{self.name}.{name}", "unknown key (not a setting, nor a declared environment)",
                    f"use {', '.join(self.keys)}, or [{self.name}.<environment>] for one of {', '.join(settings.environments)}"))
            if name == environment:
                found.update({key: (own[key], f"{self.name}.{name}.{key}") for key in own.raw})
        return found

    def problems_here(self, value: Any, environment: str) -> list[Problem]:
        """:meth:`problems` of this table's ``value`` that apply in ``environment`` (see :meth:`overlaid`)."""
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k == environment or k in self.keys or not isinstance(v, dict)}
        return self.problems(value, self.name)

    def read_strict(self, settings: Any) -> Values:
        """:meth:`read`, after refusing the first problem of the whole table, an unknown key too.

        :raises ConfigurationError: naming the file, the table and the key.
        """
        values = self.read(settings)
        if values.present:
            for problem in self.problems(values.raw, self.name):
                raise values._fail(problem)
        return values


def _join(where: str, name: str) -> str:
    """``where.name``; a name from the file that could forge a line of output (a line break, a control) is quoted."""
    if name and not (name.isprintable() and "<" not in name and ">" not in name):
        name = repr(name)
    return ".".join(part for part in (where, name) if part)


@slotted.frozen
class Free:
    """Keys of free names beside a table's declared ones, each holding a value of one kind."""

    kind: Kind
    description: str
    names: str  #: the regular expression a name must match whole
    names_hint: str

    def problems(self, name: str, value: Any, path: str) -> list[Problem]:
        """Why ``name = value`` cannot be one of these keys."""
        if not re.fullmatch(self.names, name):
            return [Problem(path, "unknown key", f"name {self.names_hint}, or a declared key")]
        problem = self.kind.problem(value)
        return [Problem(path, problem, f"{self.description}; e.g. {name} = {self.kind.example()}")] if problem else []


@slotted.frozen
class Each:
    """``[table.name.NAME]``: one table of the same shape per free name."""

    table: Table
    names: str  #: the regular expression a name must match whole
    names_hint: str
    defaults: Mapping[str, Mapping[str, Any]]
    noun: str = "name"  #: what a name is, for messages ("environment name")
    shorthand: str | None = None  #: the key a name's value stands for when it is not a table

    def expand(self, value: Any) -> Any:
        """``value`` as a table: a shorthand value becomes ``{shorthand: value}``."""
        if self.shorthand is not None and not isinstance(value, dict) and self.table.keys[self.shorthand].kind.accepts(value):
            return {self.shorthand: value}
        return value

    def problems(self, value: Any, where: str) -> list[Problem]:
        """The problems of every ``NAME`` table in ``value``."""
        if not isinstance(value, dict):
            return [Problem(where, "must be a table of tables", f"write [{where}.NAME] sections")]
        return [p for name, body in value.items() for p in self.one(name, body, _join(where, name))]

    def one(self, name: str, body: Any, path: str) -> list[Problem]:
        """The problems of the table of free name ``name`` at ``path``."""
        if not re.fullmatch(self.names, name):
            return [Problem(path, f"is not a valid {self.noun}", f"use {self.names_hint}")]
        return self.table.problems(self.expand(body), path, self.defaults.get(name))


def key_problem(key: Key, value: Any, path: str) -> Problem | None:
    """Why ``value`` cannot be key ``key`` at ``path``, or None."""
    problem = key.kind.problem(value)
    if problem is None and key.check is not None:
        problem = key.check(value)
    if problem is None:
        return None
    return Problem(path, problem, f"{key.description}; e.g. {path.rsplit('.', 1)[-1]} = {key.kind.example()}")


def _close(word: str, options: Iterable[str]) -> bool:
    import difflib

    return bool(difflib.get_close_matches(word, sorted(options), n=1))


def _own(value: Any) -> Any:
    """A list or a table handed out as a copy: a caller that extends it changes neither the default nor the settings."""
    if isinstance(value, (list, dict)):
        import copy

        return copy.deepcopy(value)
    return value


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """A hint for an unknown name: the closest known one, or the list."""
    import difflib  # only a misspelled key pays for it

    known = sorted(options)
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known keys: {', '.join(known)}" if known else "this table takes no keys"


class Values:
    """A table's values as the file sets them, checked against the declaration as they are read."""

    def __init__(self, table: Table, raw: Any, source: str, where: str) -> None:
        self.table = table
        self.raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.present = raw is not None  #: the file has this table
        self._source = source
        self._where = where
        if raw is not None and not isinstance(raw, dict):
            raise self._fail(Problem(where, f"must be a table, not {shown(raw)}", f"write it as [{where}]"))

    def _fail(self, problem: Problem) -> ConfigurationError:
        return ConfigurationError(f"{self._source}: {problem.key}: {problem.message}", problem.hint)

    def __bool__(self) -> bool:
        """True when the file sets anything in this table."""
        return bool(self.raw)

    def __contains__(self, name: object) -> bool:
        """True when the file sets ``name`` (a key or a sub-table)."""
        return name in self.raw

    def __getitem__(self, name: str) -> Any:
        """Key ``name``: the file's value, checked, or the declared default.

        :raises ConfigurationError: the value is not of the declared kind (naming the file, table and key).
        """
        key = self.table.keys[name]
        if name not in self.raw:
            return _own(key.default)
        problem = key_problem(key, self.raw[name], f"{self._where}.{name}")
        if problem is not None:
            raise self._fail(problem)
        return _own(self.raw[name])

    def refuse(self, name: str) -> None:
        """Refuse the first problem the declaration finds in part ``name`` of this table (a key, a sub-table or
        the ``[…name.NAME]`` tables), when the file sets it.

        :raises ConfigurationError: naming the file, the table and the key.
        """
        if name in self.raw:
            for problem in self.table._one(name, self.raw[name], _join(self._where, name)):
                raise self._fail(problem)

    def get(self, name: str, fallback: Any = None) -> Any:
        """Key ``name`` as :meth:`__getitem__` reads it, ``fallback`` where it has no value at all."""
        value = self[name]
        return fallback if value is None else value

    def sub(self, name: str) -> Values:
        """The fixed sub-table ``name``."""
        return Values(self.table.tables[name], self.raw.get(name), self._source, f"{self._where}.{name}")

    def each(self, name: str) -> dict[str, Values]:
        """The ``[…name.NAME]`` tables, by name, in the file's order.

        :raises ConfigurationError: a name that does not match, or a value that is not a table.
        """
        spec = self.table.each[name]
        known = self.table.known()
        body = {k: v for k, v in self.raw.items() if k not in known} if name == "" else self.raw.get(name, {})
        path = _join(self._where, name)
        if not isinstance(body, dict):
            raise self._fail(Problem(path, f"must be a table of tables, not {shown(body)}", f"write [{path}.NAME] sections"))
        for item in body:
            if not re.fullmatch(spec.names, item):
                raise self._fail(Problem(_join(path, item), f"is not a valid {spec.noun}", f"use {spec.names_hint}"))
        return {item: Values(spec.table, spec.expand(value), self._source, _join(path, item)) for item, value in body.items()}

    def free(self) -> dict[str, Any]:
        """The free-named keys the file sets, by name, each checked.

        :raises ConfigurationError: a name or a value the declaration refuses.
        """
        spec = self.table.free
        assert spec is not None, f"{self.table.name} declares no free keys"
        known = self.table.known()
        found = {}
        for name, value in self.raw.items():
            if name not in known:
                for problem in spec.problems(name, value, _join(self._where, name)):
                    raise self._fail(problem)
                found[name] = value
        return found

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of each declared key the file sets, checked."""
        for name in self.raw:
            if name in self.table.keys:
                yield name, self[name]


def combine(tables: Iterable[Table]) -> list[Table]:
    """``tables`` with those of one name merged (several plugins share ``[webhooks]``), in first-seen order."""
    merged: dict[str, Table] = {}
    for table in tables:
        had = merged.get(table.name)
        if had is None:
            merged[table.name] = table
            continue
        both = Table(table.name, f"{had.description}; {table.description}", extra=had.extra or table.extra)
        for part in (had, table):
            both.keys.update(part.keys)
            both.tables.update(part.tables)
            both.each.update(part.each)
        # An open place kept for another plugin's part ([webhooks.routes] in the sources' table) gives way to it.
        for name in [n for n, t in both.tables.items() if n in both.each and t.extra and not (t.keys or t.tables or t.each)]:
            del both.tables[name]
        merged[table.name] = both
    return list(merged.values())


def schema_of(table: Table, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of ``table`` (``defaults``: the values a free name has of its own)."""
    properties: dict[str, Any] = {}
    for key in table.keys.values():
        entry = {**key.kind.schema, "description": key.description}
        if key.default is not None:
            entry["default"] = key.default
        properties[key.name] = entry
    for name, sub in table.tables.items():
        properties[name] = schema_of(sub)
    for name, each in table.each.items():
        if name:
            properties[name] = _each_schema(each)
    out: dict[str, Any] = {"type": "object", "description": table.description, "properties": properties}
    if table.free is not None:
        free_names = {"pattern": f"^(?:{table.free.names})$"}
        out["propertyNames"] = {"anyOf": [{"enum": sorted(properties)}, free_names]} if properties else free_names
        out["additionalProperties"] = {**table.free.kind.schema, "description": table.free.description}
    elif "" in table.each:  # the free names' tables, beside the declared names
        free = _each_schema(table.each[""])
        out["properties"] = {**free["properties"], **properties}
        out["propertyNames"] = {"anyOf": [{"enum": sorted(properties)}, free["propertyNames"]]} if properties else free["propertyNames"]
        out["additionalProperties"] = free["additionalProperties"]
    elif not table.extra:
        out["additionalProperties"] = False
    required = [k.name for k in table.keys.values() if k.required and k.name not in (defaults or {})]
    if required:
        out["required"] = required
    together = {
        k.name: {"properties": {n: {"const": v} for n, v in k.requires.items()}, "required": list(k.requires)}
        for k in table.keys.values() if k.requires
    }
    if together:
        out["dependentSchemas"] = together
    return out


def _each_schema(each: Each) -> dict[str, Any]:
    one = schema_of(each.table)
    if each.shorthand is not None:
        one = {"anyOf": [each.table.keys[each.shorthand].kind.schema, one]}
    return {
        "type": "object",
        "description": each.table.description,
        "propertyNames": {"pattern": f"^(?:{each.names})$"},
        "properties": {n: schema_of(each.table, d) for n, d in each.defaults.items()},
        "additionalProperties": one,
    }


def unknown_tables(settings: Any, tables: Iterable[Table], plugins: Iterable[str] = ()) -> list[Any]:
    """``SETTINGS_UNKNOWN_KEY`` warnings for the top-level names of ``settings`` nothing knows.

    A name is known when the core or one of ``tables`` declares it, or it names one of ``plugins``
    (a plugin that reads its table without declaring it, or one disabled).
    """
    from .models import Finding
    from .settings import CORE

    known = CORE.known() | {t.name for t in tables} | set(plugins)
    return [
        Finding(code="SETTINGS_UNKNOWN_KEY", severity="warning", message=f"{settings.source}: unknown key {key!r}",
                remediation=did_you_mean(key, known) if _close(key, known) else "remove it, or install the plugin that reads it",
                key=key, file=str(settings.path) if settings.path else None)
        for key in settings.raw if key not in known
    ]


def findings(settings: Any, tables: Iterable[Table]) -> list[Any]:
    """``check``'s findings for the plugins' tables of ``settings``: a refused value is an error, an unknown key a warning."""
    from .models import Finding

    where = str(settings.path) if settings.path else None
    found = []
    for table in combine(tables):
        if table.name not in settings.raw:
            continue
        for problem in table.problems(settings.raw[table.name], table.name):
            found.append(Finding(
                code="SETTINGS_UNKNOWN_KEY" if problem.unknown else "SETTINGS_INVALID",
                severity="warning" if problem.unknown else "error",
                # The text of the ConfigurationError the plugin's reader raises for it: one cause, one finding.
                message=f"{settings.source}: {problem.key}: {problem.message}",
                remediation=problem.hint,
                key=problem.key,
                plugin=table.plugin,
                file=where,
            ))
    return found


def session_findings(session: Any) -> list[Any]:
    """The session's envfence.toml judged by the core's and the loaded plugins' declarations (``declare_tables``), redacted."""
    from .hookcalls import tables_declared_for

    from .settings import deferred_tables

    declared = tables_declared_for(session.plugins, session.settings.raw)
    tables = [*deferred_tables(), *declared.flat()]
    others = _other_environments(session, tables)
    found = [f for f in findings(session.settings, tables) if not (f.key or "").startswith(others)] + declared.findings()
    return list(session.redact_findings(found))


def _other_environments(session: Any, tables: Iterable[Table]) -> tuple[str, ...]:
    """The dotted prefixes of other environments' own tables (``resources.production.`` in development).

    A table with one table per environment ([resources.<environment>], [backup.<environment>]) is judged
    in each environment for what applies there: production's mistake does not block development's run.
    """
    here = session.environment.name
    return tuple(
        f"{table.name}.{name}."
        for table in tables if "" in table.each and table.each[""].noun == "environment name"
        for name in session.settings.environments if name != here
    )
