"""Load the ``.env`` file layers of the decided environment.

``.env`` < ``.env.<environment>`` < ``.env.local`` < ``.env.<environment>.local``,
each parsed by python-dotenv's parser. A line the parser cannot read becomes a
finding naming the file and line (python-dotenv itself only warns); a file that
cannot be read at all stops loading with an error naming it. ``${NAME}``
expands to NAME from an earlier line or a lower layer, else the process
environment.
"""

from __future__ import annotations

import hashlib
import io
import re
import weakref
from pathlib import Path
from typing import Any, Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import PRECEDENCE, ConfigLayer, Finding

_BOM = b"\xef\xbb\xbf"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def layer_files(environment: str) -> list[tuple[str, int]]:
    """The layer file names of ``environment`` with their precedence, lowest first."""
    return [
        (".env", PRECEDENCE[".env"]),
        (f".env.{environment}", PRECEDENCE[".env.<environment>"]),
        (".env.local", PRECEDENCE[".env.local"]),
        (f".env.{environment}.local", PRECEDENCE[".env.<environment>.local"]),
    ]


def read_layer(
    path: Path, source: str, precedence: int, context: Mapping[str, str], parsed: dict[tuple[str, str], Any] | None = None
) -> ConfigLayer:
    """Parse one file into a layer; ``context`` resolves ``${NAME}`` references.

    :param parsed: files already parsed for this session, by path and digest;
        a file without ``$`` (whose values do not depend on ``context``) is
        taken from there instead of being parsed again.
    """
    if not path.exists() and not path.is_symlink():
        return ConfigLayer(source, {}, precedence, path=path, exists=False, plugin="dotenv_files")
    if path.is_dir():
        raise ConfigurationError(f"{path}: is a directory, expected a .env file", f"remove or rename the directory {source}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read ({exc.strerror})",
            "make the file readable by this user (chmod u+r), or remove it",
        ) from None
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

    digest = hashlib.sha256(raw).hexdigest()
    known = (str(path), digest) if parsed is not None and "$" not in text else None
    if known is not None and known in parsed:
        values, findings = parsed[known]
        return ConfigLayer(source, dict(values), precedence, path=path, plugin="dotenv_files", findings=findings, digest=digest)

    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    resolve = None
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
        value = binding.value
        if "$" in value:
            if resolve is None:
                from dotenv.variables import parse_variables

                resolve = parse_variables
            env = {**context, **values}
            value = "".join(atom.resolve(env) for atom in resolve(value))
        values[binding.key] = value
    if known is not None:
        parsed[known] = (dict(values), tuple(findings))
    return ConfigLayer(
        source, values, precedence, path=path, plugin="dotenv_files", findings=tuple(findings), digest=digest,
    )


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
    layers = []
    context = dict(environ)
    parsed = _parsed_for(settings)
    for name, precedence in layer_files(environment.name):
        layer = read_layer(root / name, name, precedence, context, parsed)
        context.update(layer.values)
        layers.append(layer)
    return layers
