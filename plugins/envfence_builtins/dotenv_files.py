"""Load the ``.env`` file layers of the decided environment.

``.env`` < ``.env.<environment>`` < ``.env.local`` < ``.env.<environment>.local``,
each parsed by python-dotenv's parser. A line the parser cannot read becomes a
finding naming the file and line (python-dotenv itself only warns); a file that
cannot be read at all, or is not a regular file, stops loading with an error
naming it. Line ends (CRLF, CR) are read as LF everywhere, inside quoted values
too, as python-dotenv's own loader reads them.

``${NAME}`` (and ``${NAME:-default}``) sees NAME's final value at its
precedence: the process environment when it holds NAME, else NAME's value in
the highest layer that sets it, wherever that line is. A value that refers to
its own key (``PATH=${PATH}:/opt``) sees the value that key had below it: an
earlier line, a lower layer, else the process environment. Expansion is one
pass over the definitions, each expanded once, bounded in depth and size.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import weakref
from pathlib import Path
from typing import Any, Mapping

import attrs

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import PRECEDENCE, ConfigLayer, Finding

_BOM = b"\xef\xbb\xbf"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

#: References may nest this deep (A refers to B, which refers to C, ...).
MAX_DEPTH = 32
#: One expanded value may hold at most this many characters.
MAX_VALUE_CHARS = 1 << 20
#: All expansions of one load together may produce at most this many characters.
MAX_TOTAL_CHARS = 32 << 20


def layer_files(environment: str) -> list[tuple[str, int]]:
    """The layer file names of ``environment`` with their precedence, lowest first."""
    return [
        (".env", PRECEDENCE[".env"]),
        (f".env.{environment}", PRECEDENCE[".env.<environment>"]),
        (".env.local", PRECEDENCE[".env.local"]),
        (f".env.{environment}.local", PRECEDENCE[".env.<environment>.local"]),
    ]


@attrs.frozen
class Definition:
    """One ``KEY=value`` line as written, before ``${}`` expansion."""

    key: str
    raw: str
    line: int
    source: str


@attrs.frozen
class ParsedFile:
    """A file's definitions in file order, the findings met parsing it, and its digest."""

    definitions: tuple[Definition, ...]
    findings: tuple[Finding, ...]
    digest: str


def _read_bytes(path: Path, source: str) -> bytes:
    """The file's bytes; a FIFO, socket, device or directory is refused without blocking on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read ({exc.strerror})",
            "make the file readable by this user (chmod u+r), or remove it",
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigurationError(f"{path}: is a directory, expected a .env file", f"remove or rename the directory {source}")
        if not stat.S_ISREG(mode):
            raise ConfigurationError(
                f"{path}: is not a regular file (a FIFO, socket or device), expected a .env file",
                f"replace {source} with a regular file, or remove it",
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read ({exc.strerror})",
            "make the file readable by this user (chmod u+r), or remove it",
        ) from None
    finally:
        os.close(fd)


def parse_file(path: Path, source: str, parsed: dict[tuple[str, str], Any] | None = None) -> ParsedFile | None:
    """Parse one file without expanding references; None when it does not exist.

    :param parsed: files already parsed for this session, by path and digest;
        parsing does not depend on the environment, so a file read again
        (for another environment's layers) is taken from there.
    """
    if not path.exists() and not path.is_symlink():
        return None
    raw = _read_bytes(path, source)
    digest = hashlib.sha256(raw).hexdigest()
    if parsed is not None and (str(path), digest) in parsed:
        return parsed[(str(path), digest)]
    result = _parse(raw, path, source, digest)
    if parsed is not None:
        parsed[(str(path), digest)] = result
    return result


def _parse(raw: bytes, path: Path, source: str, digest: str) -> ParsedFile:
    findings: list[Finding] = []
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
        findings.append(
            Finding("DOTENV_BOM", "info", f"{source} starts with a byte-order mark; it was ignored",
                    "save the file as UTF-8 without BOM", file=source, line=1, plugin="dotenv_files")
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{path}:{line}: not valid UTF-8 (byte {exc.start})",
            "save the file as UTF-8",
        ) from None
    # Universal newlines, as python-dotenv's loader opens files: a CRLF or a
    # lone CR inside a quoted value is a newline, not a stray \r in the value.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")

    from dotenv.parser import parse_stream

    definitions: list[Definition] = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            # The line itself is not shown: it may hold a secret.
            findings.append(
                Finding("DOTENV_PARSE_ERROR", "error", f"{source}:{line}: the line cannot be parsed and was ignored",
                        "write it as KEY=VALUE; quote a value that holds spaces, quotes or #",
                        file=source, line=line, plugin="dotenv_files")
            )
            continue
        if binding.key is None:
            continue  # a comment or a blank line
        if binding.value is None and not _IDENTIFIER.fullmatch(binding.key):
            # Not a name: most likely a value that wrapped onto its own line. Never echo it.
            findings.append(
                Finding("DOTENV_PARSE_ERROR", "error", f"{source}:{line}: the line cannot be parsed and was ignored",
                        "write it as KEY=VALUE; a value that wrapped onto its own line belongs after the =",
                        file=source, line=line, plugin="dotenv_files")
            )
            continue
        if binding.value is None:
            findings.append(
                Finding("DOTENV_NO_VALUE", "warning", f"{source}:{line}: {binding.key} has no '=' and was ignored",
                        f"write it as {binding.key}=VALUE, or {binding.key}= for an empty value",
                        key=binding.key, file=source, line=line, plugin="dotenv_files")
            )
            continue
        if "\0" in binding.key or "\0" in binding.value:
            # No process can receive it (execve refuses it), so it never joins the configuration.
            key = binding.key.replace("\0", "\\0")
            findings.append(
                Finding("DOTENV_NUL_BYTE", "error", f"{source}:{line}: {key} holds a NUL byte and was ignored",
                        "remove the NUL byte (\\0) from the line; no environment variable can hold one",
                        key=key, file=source, line=line, plugin="dotenv_files")
            )
            continue
        definitions.append(Definition(binding.key, binding.value, line, source))
    return ParsedFile(tuple(definitions), tuple(findings), digest)


class _Expander:
    """Expands every definition's ``${}`` references once, against final values.

    Each definition is expanded at most once and each expansion reads only
    already-expanded strings, so the work is linear in the size of the result.
    """

    def __init__(self, definitions: list[Definition], environ: Mapping[str, str]):
        self.definitions = definitions
        self.environ = environ
        self.below: list[int | None] = []
        self.top: dict[str, int] = {}
        for index, definition in enumerate(definitions):
            self.below.append(self.top.get(definition.key))
            self.top[definition.key] = index
        self.values: list[str | None] = [None] * len(definitions)
        self.active = [False] * len(definitions)
        self.findings: list[Finding] = []
        self.budget = MAX_TOTAL_CHARS

    def value(self, index: int, depth: int = 0) -> str:
        done = self.values[index]
        if done is not None:
            return done
        definition = self.definitions[index]
        raw = definition.raw
        if "${" not in raw:
            self.values[index] = raw
            return raw
        if self.active[index]:
            return self._fail(index, "its references form a cycle")
        if depth >= MAX_DEPTH:
            return self._fail(index, f"its references nest deeper than {MAX_DEPTH}")
        from dotenv.variables import Literal, parse_variables

        self.active[index] = True
        parts: list[str] = []
        size = 0
        try:
            for atom in parse_variables(raw):
                if isinstance(atom, Literal):
                    part = atom.value
                else:
                    part = self.lookup(atom.name, index, depth)
                    if part is None:
                        part = atom.default or ""
                    if self.values[index] is not None:  # failed inside, through a cycle
                        return self.values[index]
                size += len(part)
                if size > MAX_VALUE_CHARS or size > self.budget:
                    limit = MAX_VALUE_CHARS if size > MAX_VALUE_CHARS else MAX_TOTAL_CHARS
                    return self._fail(index, f"its expansion grows past {limit:,} characters")
                parts.append(part)
        finally:
            self.active[index] = False
        self.budget -= size
        result = "".join(parts)
        self.values[index] = result
        return result

    def lookup(self, name: str, index: int, depth: int) -> str | None:
        if name == self.definitions[index].key:
            below = self.below[index]
            if below is not None:
                return self.value(below, depth + 1)
            return self.environ.get(name)
        if name in self.environ:
            return self.environ[name]
        top = self.top.get(name)
        return None if top is None else self.value(top, depth + 1)

    def _fail(self, index: int, why: str) -> str:
        """Record a finding and keep the value as written, unexpanded."""
        definition = self.definitions[index]
        self.findings.append(
            Finding("DOTENV_INTERPOLATION", "error",
                    f"{definition.source}:{definition.line}: {definition.key} cannot be expanded: {why}",
                    "simplify the ${...} references of this key",
                    key=definition.key, file=definition.source, line=definition.line, plugin="dotenv_files")
        )
        self.values[index] = definition.raw
        return definition.raw


def read_layers(
    root: Path, environment: str, environ: Mapping[str, str], parsed: dict[tuple[str, str], Any] | None = None
) -> list[ConfigLayer]:
    """The four file layers of ``environment`` with references expanded, missing ones with ``exists=False``.

    :param parsed: as for :func:`parse_file`.
    """
    files: list[tuple[str, int, Path, ParsedFile | None]] = []
    definitions: list[Definition] = []
    for name, precedence in layer_files(environment):
        path = root / name
        result = parse_file(path, name, parsed)
        files.append((name, precedence, path, result))
        if result is not None:
            definitions.extend(result.definitions)
    expander = _Expander(definitions, environ)
    layers = []
    start = 0
    for name, precedence, path, result in files:
        if result is None:
            layers.append(ConfigLayer(name, {}, precedence, path=path, exists=False, plugin="dotenv_files"))
            continue
        values = {}
        for index in range(start, start + len(result.definitions)):
            values[definitions[index].key] = expander.value(index)
        start += len(result.definitions)
        findings = result.findings + tuple(f for f in expander.findings if f.file == name)
        layers.append(ConfigLayer(name, values, precedence, path=path, plugin="dotenv_files", findings=findings, digest=result.digest))
    return layers



# The files parsed for the session being opened, known by its settings object.
# A validator that loads another environment's layers (the services plugin's
# port check) would otherwise parse .env and .env.local a second time: half of
# a large project's load time. A new session starts afresh, so every session
# reads and parses its files itself.
_parsed: tuple[Any, dict] = (lambda: None, {})


def _parsed_for(settings) -> dict[tuple[str, str], Any] | None:
    global _parsed
    owner, parsed = _parsed
    if owner() is not settings:
        try:
            owner = weakref.ref(settings)
        except TypeError:  # a settings object that cannot be referenced weakly: no reuse
            return None
        _parsed = owner, (parsed := {})
    return parsed


@hookimpl
def load_config(root: Path, environment, settings, environ: Mapping[str, str]) -> list[ConfigLayer]:
    """The four file layers, missing ones included with ``exists=False``."""
    return read_layers(root, environment.name, environ, _parsed_for(settings))
