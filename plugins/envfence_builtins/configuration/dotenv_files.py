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

import io
import os
import re
import stat
from pathlib import Path
from typing import Any, Mapping

from envfence import slotted
from envfence.digests import sha256_hex
from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.layers import ENCRYPTED_PREFIX
from envfence.models import PRECEDENCE, ConfigLayer, Finding
from envfence.recent import Recent

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


@slotted.frozen
class Definition:
    """One ``KEY=value`` line as written, before ``${}`` expansion."""

    key: str
    raw: str
    line: int
    source: str


@slotted.frozen
class ParsedFile:
    """A file's definitions in file order, the findings met parsing it, and its digest."""

    definitions: tuple[Definition, ...]
    findings: tuple[Finding, ...]
    digest: str


def _read_bytes(path: Path, source: str) -> bytes | None:
    """The file's bytes, None when there is no file; a FIFO, socket, device or directory is refused without blocking on it.

    A dangling symlink is not "no file": it names a file that should be there.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        # A missing file, or a path through a file (ENOTDIR): no file there either way.
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and not os.path.islink(path):
            return None
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


#: The files parsed lately, by path and layer name. Parsing depends on the bytes alone, so a file whose
#: bytes have the digest of the one kept is not parsed again by the next session; its bytes are read and
#: hashed on every load, so an edit (within the same second, to the same size) is always seen.
_PARSED: Recent[tuple[str, str], ParsedFile] = Recent(64)


def parse_file(path: Path, source: str) -> ParsedFile | None:
    """Parse one file without expanding references; None when it does not exist.

    A file whose bytes were parsed before (by this process, at this path) is
    taken from :data:`_PARSED`; its digest decides, never its time stamps.
    """
    raw = _read_bytes(path, source)
    if raw is None:
        return None
    digest = sha256_hex(raw)
    key = (str(path), source)
    known = _PARSED.get(key)
    if known is not None and known.digest == digest:
        return known
    result = _parse(raw, path, source, digest)
    _PARSED.put(key, result)
    return result


def _parse(raw: bytes, path: Path, source: str, digest: str) -> ParsedFile:
    """A file's bytes as its definitions, with a finding for each line that cannot be one (never echoing a value)."""
    findings: list[Finding] = []
    text = _decode(raw, path, source, findings)
    from dotenv.parser import parse_stream

    definitions: list[Definition] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None and not binding.error:
            continue  # a comment or a blank line
        problem = _binding_problem(binding, source)
        if problem is not None:
            findings.append(problem)
        else:
            definitions.append(Definition(binding.key, binding.value, binding.original.line, source))
    return ParsedFile(tuple(definitions), tuple(findings), digest)


def _decode(raw: bytes, path: Path, source: str, findings: list[Finding]) -> str:
    """The text of a file: UTF-8 without its byte-order mark, universal newlines.

    :raises ConfigurationError: not UTF-8, naming the file and the line.
    """
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
    return text


def _binding_problem(binding: Any, source: str) -> Finding | None:
    """Why a parsed line does not become a definition, or None when it does."""
    line = binding.original.line
    if binding.error or (binding.value is None and not _looks_like_a_name(binding.key)):
        # The line itself is never shown: it may hold a secret (a value that wrapped onto its own line).
        hint = ("write it as KEY=VALUE; quote a value that holds spaces, quotes or #" if binding.error
                else "write it as KEY=VALUE; a value that wrapped onto its own line belongs after the =")
        return Finding("DOTENV_PARSE_ERROR", "error", f"{source}:{line}: the line cannot be parsed and was ignored",
                       hint, file=source, line=line, plugin="dotenv_files")
    if binding.value is None:
        return Finding("DOTENV_NO_VALUE", "warning", f"{source}:{line}: {binding.key} has no '=' and was ignored",
                       f"write it as {binding.key}=VALUE, or {binding.key}= for an empty value",
                       key=binding.key, file=source, line=line, plugin="dotenv_files")
    if "\0" in binding.key or "\0" in binding.value:
        # No process can receive it (execve refuses it), so it never joins the configuration.
        key = binding.key.replace("\0", "\\0")
        return Finding("DOTENV_NUL_BYTE", "error", f"{source}:{line}: {key} holds a NUL byte and was ignored",
                       "remove the NUL byte (\\0) from the line; no environment variable can hold one",
                       key=key, file=source, line=line, plugin="dotenv_files")
    return None


def _looks_like_a_name(text: str) -> bool:
    """True when a line without ``=`` reads as a key (``DEBUG``), so a warning may name it.

    A token pasted on a line of its own (``ghp_16C7e42F292c...``) is also an
    identifier; one with more than three digits, or with digits and letters of
    both cases, is taken for a value and never echoed.
    """
    if not _IDENTIFIER.fullmatch(text) or "." in text or len(text) > 64:
        return False
    digits = sum(c.isdigit() for c in text)
    mixed = any(c.islower() for c in text) and any(c.isupper() for c in text)
    return digits <= 3 and not (mixed and digits)


class _Unexpandable(Exception):
    """A reference chain that cannot be expanded from where its expansion began (a cycle, too deep)."""


class _Expander:
    """Expands every definition's ``${}`` references once, against final values.

    Each definition is expanded at most once and each expansion reads only
    already-expanded strings, so the work is linear in the size of the result.
    A value that cannot be expanded, and every value that refers to it, is
    kept as written with a finding. A reference to a key with another
    environment's prefix is never followed (``environment`` never reads it),
    unless the referring key carries that prefix too. A value built from a
    secret's value is secret itself (:attr:`secret`).

    :param naming: the project's credential naming, None to follow every reference.
    :param is_secret: whether a key (its full name) names a secret.
    """

    def __init__(
        self,
        definitions: list[Definition],
        environ: Mapping[str, str],
        environment: str | None = None,
        naming: Any = None,
        is_secret: Any = None,
    ):
        self.definitions = definitions
        self.environ = environ
        self.environment = environment
        self.naming = naming
        self.is_secret = is_secret or (lambda key: False)
        self.below: list[int | None] = []
        self.top: dict[str, int] = {}
        for index, definition in enumerate(definitions):
            self.below.append(self.top.get(definition.key))
            self.top[definition.key] = index
        self.values: list[str | None] = [None] * len(definitions)
        self.failed = [False] * len(definitions)
        self.secret = [False] * len(definitions)
        self.encrypted = [False] * len(definitions)  # refers to an encrypted value, directly
        self.active = [False] * len(definitions)
        self.findings: list[Finding] = []
        self.budget = MAX_TOTAL_CHARS

    def value(self, index: int) -> str:
        """Definition ``index``'s expanded value, or its value as written when it cannot be expanded."""
        try:
            return self._value(index, 0)
        except _Unexpandable as exc:
            return self._fail(index, str(exc))

    def _value(self, index: int, depth: int) -> str:
        done = self.values[index]
        if done is not None:
            if self.failed[index] and depth:
                raise _Unexpandable(f"it refers to {self.definitions[index].key}, which cannot be expanded")
            return done
        definition = self.definitions[index]
        raw = definition.raw
        if "${" not in raw:
            self.values[index] = raw
            return raw
        if self.active[index]:
            raise _Unexpandable("its references form a cycle")
        if depth >= MAX_DEPTH:
            raise _Unexpandable(f"its references nest deeper than {MAX_DEPTH}")
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
                    if atom.default and "${" in atom.default:
                        self._nested_default(index)
                    if part is None:
                        part = atom.default or ""
                size += len(part)
                if size > MAX_VALUE_CHARS or size > self.budget:
                    limit = MAX_VALUE_CHARS if size > MAX_VALUE_CHARS else MAX_TOTAL_CHARS
                    why = f"its expansion grows past {limit:,} characters"
                    if depth:  # too large wherever its expansion begins
                        self._fail(index, why)
                        raise _Unexpandable(f"it refers to {definition.key}, which cannot be expanded")
                    raise _Unexpandable(why)
                parts.append(part)
        finally:
            self.active[index] = False
        self.budget -= size
        result = "".join(parts)
        self.values[index] = result
        if self.encrypted[index] and not result.startswith(ENCRYPTED_PREFIX):
            # Decryption opens whole values only: this one would carry the encrypted text.
            self.findings.append(
                Finding("DOTENV_ENCRYPTED_REFERENCE", "warning",
                        f"{definition.source}:{definition.line}: {definition.key} embeds an encrypted value through ${{...}}; "
                        "it holds the encrypted text, not the secret",
                        f"refer to the encrypted key alone ({definition.key}=${{NAME}}), or build {definition.key} in code from the secret",
                        key=definition.key, file=definition.source, line=definition.line, plugin="dotenv_files")
            )
        return result

    def lookup(self, name: str, index: int, depth: int) -> str | None:
        key = self.definitions[index].key
        if not self._may_follow(key, name):
            owner = self.naming.environment_of(name)
            self.findings.append(
                Finding("DOTENV_FOREIGN_REFERENCE", "error",
                        f"{self.definitions[index].source}:{self.definitions[index].line}: {key} refers to {name}, "
                        f"a {owner} credential, which {self.environment} never reads; the reference was left empty",
                        f"refer to the {self.environment} credential instead, or move this line to .env.{owner}",
                        key=key, file=self.definitions[index].source, line=self.definitions[index].line,
                        plugin="dotenv_files")
            )
            return None
        if self.is_secret(name):
            self.secret[index] = True
        if name == key:
            below = self.below[index]
            if below is not None:
                return self._follow(below, index, depth)
            return self._seen(self.environ.get(name), index)
        if name in self.environ:
            return self._seen(self.environ[name], index)
        top = self.top.get(name)
        return None if top is None else self._follow(top, index, depth)

    def _may_follow(self, key: str, name: str) -> bool:
        """False when ``name`` is another environment's credential and ``key`` is not that environment's."""
        if self.naming is None:
            return True
        owner = self.naming.environment_of(name)
        return owner in (None, self.environment) or owner == self.naming.environment_of(key)

    def _follow(self, target: int, index: int, depth: int) -> str:
        value = self._value(target, depth + 1)
        if self.secret[target]:
            self.secret[index] = True
        return self._seen(value, index)

    def _seen(self, value: str | None, index: int) -> str | None:
        if value is not None and value.startswith(ENCRYPTED_PREFIX):
            self.secret[index] = self.encrypted[index] = True
        return value

    def _nested_default(self, index: int) -> None:
        """``${A:-${B}}``: python-dotenv reads the default as ``${B`` and a stray ``}``, never B's value."""
        definition = self.definitions[index]
        self.findings.append(
            Finding("DOTENV_NESTED_DEFAULT", "warning",
                    f"{definition.source}:{definition.line}: {definition.key} has a ${{...}} inside a :- default, "
                    "which is not expanded: the default is taken as written, up to the first }",
                    f"give {definition.key} a plain default, or set the key the default refers to",
                    key=definition.key, file=definition.source, line=definition.line, plugin="dotenv_files")
        )

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
        self.failed[index] = True
        return definition.raw


def read_layers(
    root: Path,
    environment: str,
    environ: Mapping[str, str],
    settings: Any = None,
) -> list[ConfigLayer]:
    """The four file layers of ``environment`` with references expanded, missing ones with ``exists=False``.

    :param settings: the project's settings: their credential naming keeps a
        reference from reading another environment's credential, their
        ``secrets`` make a value built from one secret.
    """
    files: list[tuple[str, int, Path, ParsedFile | None]] = []
    definitions: list[Definition] = []
    for name, precedence in layer_files(environment):
        path = root / name
        result = parse_file(path, name)
        files.append((name, precedence, path, result))
        if result is not None:
            definitions.extend(result.definitions)
    naming = getattr(settings, "naming", None)
    expander = _Expander(definitions, environ, environment, naming, _secret_names(settings, naming))
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
        findings = result.findings + tuple(dict.fromkeys(f for f in expander.findings if f.file == name))
        secrets = frozenset(definitions[i].key for i in range(start - len(result.definitions), start) if expander.secret[i])
        layers.append(ConfigLayer(name, values, precedence, path=path, plugin="dotenv_files", findings=findings,
                                  digest=result.digest, secrets=secrets))
    return layers


def _secret_names(settings: Any, naming: Any) -> Any:
    """Whether a key names a secret, as the merge decides it from names and the ``secrets`` setting."""
    from envfence.layers import is_secret_key

    declared = set(getattr(settings, "secrets", ()))

    def is_secret(key: str) -> bool:
        plain = naming.split(key)[1] if naming is not None else key
        return key in declared or is_secret_key(plain, declared)

    return is_secret


@hookimpl
def load_config(root: Path, environment, settings, environ: Mapping[str, str]) -> list[ConfigLayer]:
    """The four file layers, missing ones included with ``exists=False``."""
    return read_layers(root, environment.name, environ, settings)
