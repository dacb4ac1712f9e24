"""Configuration migration files: ``migrations/NNNN_name.toml`` (or ``.py``) and what each step does.

A TOML migration is a list of operations, applied in order::

    description = "HCP_TOKEN is now HCP_API_KEY"

    [[op]]
    op = "rename"                 # rename | split | move | set_default | drop
    key = "HCP_TOKEN"
    to = "HCP_API_KEY"

A Python migration defines ``migrate(step)`` and calls the same operations on
``step`` (``step.rename(...)``, ``step.get(key)``, ``step.set(key, value)``),
for what TOML cannot say. Either way a step edits one environment's files in
memory (:class:`Step`); :mod:`envfence.migrations` writes them.

Keys are plain names: in environment ``production`` an operation on
``HCP_TOKEN`` also reaches ``PROD_HCP_TOKEN`` (through
:class:`~envfence.naming.CredentialNaming`), never another environment's.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import slotted
from .errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .migration_step import Step

DIRECTORY = "migrations"
_NAME = re.compile(r"^(\d+)_?[\w.-]*\.(toml|py)$")
_BINDING = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)")
#: The operations a TOML migration may name, with the fields each needs.
OPERATIONS = {
    "rename": ("key", "to"),
    "split": ("key", "into", "separator"),
    "move": ("key", "from", "to"),
    "set_default": ("key", "value"),
    "drop": ("key",),
    "set_setting": ("setting", "value"),
    "rename_setting": ("setting", "to"),
    "drop_setting": ("setting",),
}
#: The operations on keys that may be limited to one file (``file = ".env.{environment}"``).
_TAKE_A_FILE = ("rename", "split", "set_default", "drop")


class MigrationError(ConfigurationError):
    """A migration cannot be read or cannot be applied; the message names the file (and line)."""


@slotted.frozen
class Migration:
    """One migration file: its number, its name (the file's stem) and how to apply it to a :class:`Step`."""

    number: int
    name: str
    path: Path
    apply: Callable[["Step"], None]
    description: str = ""


# --- one environment's files, edited in memory ----------------------------------------------


class Document:
    """A ``.env`` file as its bindings, each kept as written: a rename changes the name, never the quoting."""

    def __init__(self, name: str, text: str | None) -> None:
        from dotenv.parser import parse_stream

        self.name, self.existed, self.original = name, text is not None, text or ""
        self.chunks: list[tuple[str | None, str]] = []  # (key or None, the text as written)
        for binding in parse_stream(io.StringIO(self.original)):
            key = binding.key if not binding.error else None
            self.chunks.append((key, binding.original.string))

    @property
    def changed(self) -> bool:
        """True when the text differs from the file's."""
        return self.text() != self.original

    def text(self) -> str:
        """The file's new text."""
        return "".join(chunk for _, chunk in self.chunks)

    def keys(self) -> list[str]:
        """The bound keys, in file order."""
        return [k for k, _ in self.chunks if k is not None]

    def line_of(self, key: str) -> int:
        """The 1-based line where ``key`` is bound."""
        line = 1
        for k, chunk in self.chunks:
            if k == key:
                return line
            line += chunk.count("\n")
        return line

    def value(self, key: str) -> str | None:
        """``key``'s value as a ``.env`` reader gives it (no interpolation), or None."""
        from dotenv import dotenv_values

        chunk = next((c for k, c in self.chunks if k == key), None)
        return None if chunk is None else dotenv_values(stream=io.StringIO(chunk), interpolate=False).get(key)

    def take(self, key: str) -> str:
        """Remove ``key``'s binding(s); return the first as written (its line or lines)."""
        taken = [c for k, c in self.chunks if k == key]
        self.chunks = [(k, c) for k, c in self.chunks if k != key]
        return taken[0]

    def add(self, key: str, chunk: str) -> None:
        """Append a binding as written (a newline added where the file had none at its end)."""
        if self.chunks and not self.chunks[-1][1].endswith("\n"):
            self.chunks[-1] = (self.chunks[-1][0], self.chunks[-1][1] + "\n")
        self.chunks.append((key, chunk if chunk.endswith("\n") else chunk + "\n"))

    def replace(self, key: str, chunks: list[tuple[str, str]]) -> None:
        """Put ``chunks`` (key, text) where ``key``'s first binding is, and drop its others."""
        out, done = [], False
        for k, c in self.chunks:
            if k == key:
                out += [] if done else chunks
                done = True
            else:
                out.append((k, c))
        self.chunks = out

    def rename(self, key: str, new: str) -> None:
        """Give ``key``'s binding the name ``new``, its value and quoting untouched."""
        self.chunks = [(new, _BINDING.sub(lambda m: m.group(1) + new, c, count=1)) if k == key else (k, c)
                       for k, c in self.chunks]


class SettingsDocument:
    """The project's settings file as tomlkit keeps it (comments and layout stay); ``setting`` paths are dotted.

    In ``pyproject.toml`` the paths are under ``[tool.envfence]``.
    """

    def __init__(self, path: Path) -> None:
        import tomlkit

        self.path, self.name = path, path.name
        self.original = path.read_text(encoding="utf-8") if path.exists() else ""
        self.doc = tomlkit.parse(self.original)
        self.prefix = ["tool", "envfence"] if path.name == "pyproject.toml" else []

    @property
    def changed(self) -> bool:
        """True when the text differs from the file's."""
        return self.text() != self.original

    def text(self) -> str:
        """The file's new text."""
        import tomlkit

        return tomlkit.dumps(self.doc)

    def _table(self, setting: str, create: bool) -> tuple[Any, str]:
        *parents, last = [*self.prefix, *setting.split(".")]
        table: Any = self.doc
        for part in parents:
            if part not in table:
                if not create:
                    return None, last
                import tomlkit

                table[part] = tomlkit.table()
            table = table[part]
            if not isinstance(table, dict):
                return None, last
        return table, last

    def get(self, setting: str) -> Any:
        """The setting's value (plain Python), or None."""
        table, last = self._table(setting, create=False)
        value = None if table is None else table.get(last)
        return value.unwrap() if hasattr(value, "unwrap") else value

    def set(self, setting: str, value: Any) -> None:
        """Set the setting, making its tables when missing."""
        table, last = self._table(setting, create=True)
        table[last] = value

    def remove(self, setting: str) -> None:
        """Remove the setting (nothing when absent)."""
        table, last = self._table(setting, create=False)
        if table is not None and last in table:
            del table[last]


def binding(key: str, value: str) -> str:
    """A new binding line, written the one way envfence writes a value (:func:`~envfence.cli.output.dotenv_value`)."""
    from .cli.output import dotenv_value

    return f"{key}={dotenv_value(value)}\n"


@slotted.frozen
class Change:
    """One change a step makes, for the diff and the audit trail (values are shown masked by the caller)."""

    file: str
    action: str  #: ``added``, ``removed``, ``renamed``, ``moved``
    key: str
    to: str | None = None  #: the new name (renamed) or file (moved)
    old: str | None = None
    new: str | None = None


# --- loading --------------------------------------------------------------------------------


def discover(root: Path, run_code: bool = True) -> list[Migration]:
    """The project's migrations in order; a malformed one is a :class:`MigrationError` naming its file and line.

    With ``run_code`` False a Python migration is compiled, not run (``check`` reads only): its
    syntax is checked, and its ``apply`` refuses to be called.
    """
    folder = root / DIRECTORY
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")) or path.suffix not in (".toml", ".py"):
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{_shown(root, path)}: a migration's name starts with its number (0003_rename_token.toml)",
                                 "rename the file, or move it out of migrations/")
        number = int(match.group(1))
        if number in found:
            raise MigrationError(f"{_shown(root, path)} and {_shown(root, found[number].path)} have the same number {number}",
                                 "give each migration its own number")
        found[number] = _load(root, path, number, run_code)
    return [found[n] for n in sorted(found)]


def _shown(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _load(root: Path, path: Path, number: int, run_code: bool = True) -> Migration:
    shown = _shown(root, path)
    if path.is_symlink() or not path.is_file():
        raise MigrationError(f"{shown}: not a regular file", "a migration is a plain file of the project")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationError(f"{shown}: cannot be read ({exc})", "make it a readable UTF-8 file") from None
    if path.suffix == ".py":
        return _load_python(shown, path, text, number, run_code)
    return _load_toml(shown, path, text, number)


def _load_toml(shown: str, path: Path, text: str, number: int) -> Migration:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise MigrationError(f"{shown}:{line.group(1) if line else 1}: not valid TOML ({exc})",
                             "fix the file; see docs/migrations.md for the format") from None
    ops = data.get("op", [])
    unknown = sorted(set(data) - {"op", "description"})
    if unknown or not isinstance(ops, list) or not ops:
        raise MigrationError(f"{shown}:1: a migration holds `description` and one or more [[op]] tables"
                             + (f", not {', '.join(unknown)}" if unknown else ""), "see docs/migrations.md for the format")
    headers = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[op]]")]
    steps = [_operation(f"{shown}:{headers[i] if i < len(headers) else 1}", op) for i, op in enumerate(ops)]

    def apply(step: Step) -> None:
        for where, call in steps:
            step.where = where
            call(step)

    return Migration(number, path.stem, path, apply, str(data.get("description", "")))


def _operation(where: str, op: Any) -> tuple[str, Callable[["Step"], None]]:
    """One ``[[op]]`` table, checked: its operation and fields."""
    kind = op.get("op") if isinstance(op, dict) else None
    if kind not in OPERATIONS:
        raise MigrationError(f"{where}: unknown operation {kind!r}", f"use one of {', '.join(OPERATIONS)}")
    allowed = {"op", "environments", *OPERATIONS[kind], *(("file",) if kind in _TAKE_A_FILE else ())}
    missing = [f for f in OPERATIONS[kind] if f not in op and not (kind == "split" and f == "separator")]
    extra = sorted(set(op) - allowed)
    if missing or extra:
        problem = f"needs {', '.join(missing)}" if missing else f"does not take {', '.join(extra)}"
        raise MigrationError(f"{where}: {kind} {problem}", f"a {kind} takes {', '.join(OPERATIONS[kind])}")
    fields = {("from_" if k == "from" else k): v for k, v in op.items() if k not in ("op", "environments")}
    only = op.get("environments")

    def call(step: Step) -> None:
        if only is None or step.environment in only:
            getattr(step, kind)(**fields)

    return where, call


def _load_python(shown: str, path: Path, text: str, number: int, run_code: bool = True) -> Migration:
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as exc:
        raise MigrationError(f"{shown}:{exc.lineno or 1}: {exc.msg}", "fix the Python migration") from None
    if not run_code:
        def not_run(step: Step) -> None:
            raise MigrationError(f"{shown}: loaded without running its code", "discover it with run_code=True to apply it")

        return Migration(number, path.stem, path, not_run)
    namespace: dict[str, Any] = {"__name__": f"envfence_migration_{number}", "__file__": str(path)}
    try:
        exec(code, namespace)  # the project's own code, as its automations are
    except Exception as exc:
        raise MigrationError(f"{shown}:{_line_in(exc, path)}: {type(exc).__name__} while loading: {exc}",
                             "fix the Python migration") from None
    migrate = namespace.get("migrate")
    if not callable(migrate):
        raise MigrationError(f"{shown}:1: a Python migration defines migrate(step)", "add `def migrate(step): ...`")
    doc = (namespace.get("__doc__") or "").strip().splitlines()
    return Migration(number, path.stem, path, migrate, doc[0] if doc else "")


def _line_in(exc: BaseException, path: Path) -> int:
    """The line of ``path`` where ``exc`` was raised (its innermost frame in that file)."""
    line, tb = 1, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line

