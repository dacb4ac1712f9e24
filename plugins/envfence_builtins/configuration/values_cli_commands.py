"""The ``values`` plugin's commands: ``envfence get``, ``export`` and ``set`` (see :mod:`.values_cli`)."""

from __future__ import annotations

import io
import json
import re
import shlex
import stat
import sys
from typing import Any

import click

from envfence.cli import State, pass_state
from envfence.cli.examples import examples
from envfence.cli.output import dumps
from envfence.errors import UsageError
from envfence.models import reveal

from .values_cli_hooks import ValuesHooks


def plain_key(session, key: str) -> str:
    """``key`` under its plain name; another environment's prefixed key is refused."""
    env = session.environment.name
    owner, plain = session.settings.naming.split(key)
    if owner not in (None, env):
        raise UsageError(f"{key} belongs to {owner}, but this is {env}", f"use --env {owner}, or the plain name {plain}")
    return plain


def is_secret(session, plain: str) -> bool:
    """Whether ``plain`` names a secret: declared one, or secret-shaped (``_TOKEN``, ``_KEY`` ...)."""
    from envfence.pipeline import is_secret_key

    declared = set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}
    return is_secret_key(plain, declared)


def reveal_audited(session, keys: list[str], command: str) -> None:
    """Record that ``command`` shows the secrets ``keys``: on disk before the values are."""
    # A read that shows secrets is an action: the trail must be on disk before the value is.
    session.prepare()
    session.audit("secret.revealed", keys=sorted(keys), by=command)


def dotenv_line(key: str, value: str) -> str:
    """``KEY=value`` as a ``.env`` reader gives it back (see :func:`envfence.cli.output.dotenv_value`)."""
    from envfence.cli.output import dotenv_value

    return f"{key}={dotenv_value(value)}"


def replace_binding(text: str, key: str, line: str) -> str:
    """``text`` with every binding of ``key`` replaced by ``line`` (once), or ``line`` appended."""
    from dotenv.parser import parse_stream

    out, done = [], False
    for binding in parse_stream(io.StringIO(text)):
        if binding.key == key and not binding.error:
            if not done:
                out.append(line + "\n")
                done = True
            continue
        out.append(binding.original.string)
    result = "".join(out)
    if not done:
        if result and not result.endswith("\n"):
            result += "\n"
        result += line + "\n"
    return result


@examples(
    "envfence get AIRTABLE_BASE_ID",
    "envfence --env production get AIRTABLE_API_KEY --reveal   # audited",
)
@click.command("get")
@click.argument("key")
@click.option("--reveal", "reveal_secret", is_flag=True, help="Print a secret's value (recorded in the audit trail).")
@pass_state
def get(state: State, key: str, reveal_secret: bool) -> None:
    """Print the value of KEY in this environment (a credential through its prefix).

    Exit 1 when KEY is not set. A secret is printed only with --reveal,
    which is audited.
    """
    session = state.session()
    plain = plain_key(session, key)
    view = session.config.environment_view()
    if plain not in view:
        import difflib

        guess = difflib.get_close_matches(plain, sorted(view), n=1)
        raise click.exceptions.Exit(_missing(state, session, plain, guess))
    value = view[plain]
    session.config_read("get", [plain])
    secret = is_secret(session, plain) or not isinstance(value, str)
    if secret and not reveal_secret:
        raise UsageError(f"{plain} is a secret", f"add --reveal to print it (recorded in the audit trail): envfence get {plain} --reveal")
    text = str(reveal(value))
    shown = text if secret or reveal_secret else session.redactor()(text)
    if secret or (reveal_secret and session.redactor()(text) != text):
        reveal_audited(session, [plain], "get")
    elif shown != text:
        click.echo(f"envfence: {plain} holds a secret, masked; --reveal shows it (audited)", err=True)
    click.echo(dumps({"key": plain, "value": shown, "secret": secret}) if state.json else shown)


def _missing(state: State, session: Any, plain: str, guess: list[str]) -> int:
    message = f"{plain} is not set in {session.environment.name}" + (f"; did you mean {guess[0]}?" if guess else "")
    if state.json:
        click.echo(dumps({"error": message, "exit_code": 1}))
    else:
        click.echo(f"envfence: {message}", err=True)
    return 1


@examples(
    "envfence export                       # shell export lines, secrets left out",
    "envfence export --format dotenv > .env.snapshot",
    "envfence --env production export --format json --reveal   # audited",
)
@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["shell", "dotenv", "json"]), default="shell", show_default=True,
              help="shell: export lines for eval; dotenv: KEY=value lines; json: an object.")
@click.option("--reveal", "reveal_secrets", is_flag=True, help="Include secrets (recorded in the audit trail).")
@pass_state
def export(state: State, fmt: str, reveal_secrets: bool) -> None:
    """Print this environment's configuration under plain names.

    \b
    eval "$(envfence export)"                 # into the current shell
    envfence --env prod export --format dotenv > prod.env
    Secrets are left out (and counted on stderr) unless --reveal, which
    is audited.
    """
    session = state.session()
    view = session.config.environment_view()
    secret = sorted(k for k, v in view.items() if is_secret(session, k) or not isinstance(v, str))
    values = {k: str(reveal(v)) for k, v in sorted(view.items()) if reveal_secrets or k not in secret}
    # A value holding a secret (a password inside DATABASE_URL) is masked as `config show` masks it.
    holding = sorted(k for k, v in values.items() if k not in secret and session.redactor()(v) != v)
    if reveal_secrets and (secret or holding):
        reveal_audited(session, secret + holding, "export")
    elif holding:
        values.update({k: session.redactor()(values[k]) for k in holding})
    session.config_read("export", values)
    if state.json or fmt == "json":
        click.echo(json.dumps(values, indent=2))
    elif fmt == "shell":
        for k, v in values.items():
            click.echo(f"export {k}={shlex.quote(v)}")
    else:
        for k, v in values.items():
            click.echo(dotenv_line(k, v))
    if secret and not reveal_secrets:
        click.echo(f"envfence: {len(secret)} secret(s) left out ({', '.join(secret)}); --reveal includes them (audited)", err=True)
    if holding and not reveal_secrets:
        click.echo(f"envfence: secrets inside {', '.join(holding)} masked; --reveal shows them (audited)", err=True)


@examples(
    "envfence set LOG_LEVEL DEBUG",
    "envfence --env production set AIRTABLE_API_KEY < token.txt   # never echoed",
)
@click.command("set")
@click.argument("key")
@click.argument("value", required=False)
@pass_state
def set_(state: State, key: str, value: str | None) -> None:
    """Write KEY=VALUE into this environment's file; VALUE from stdin when absent.

    A non-secret goes to .env.ENVIRONMENT. A secret is encrypted into
    .env.ENVIRONMENT when the environment has a key (envfence secret
    keygen), else written to .env.ENVIRONMENT.local, which stays out of
    git. The value is never printed. Other lines, comments included, are
    kept.
    """
    session = state.session()
    plain = plain_key(session, key)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", plain):
        raise UsageError(f"{key!r} is not a usable key", "use letters, digits and underscores, starting with a letter")
    value = _new_value(session, plain, value)
    env = session.environment.name
    secret = is_secret(session, plain)
    # A strict profile reads a credential only under its prefix (a plain one is CREDENTIAL_UNPREFIXED there).
    written = session.config.key_for(plain) if secret and session.profile.strict else plain
    name, value, encrypted = _placed(session, written, value, secret)
    session.prepare()
    _write_binding(session, name, written, value)
    session.audit("config.set", key=written, file=name, secret=secret, encrypted=encrypted)
    how = " (encrypted)" if encrypted else (" (a secret: this file stays out of git)" if secret else "")
    if state.json:
        click.echo(dumps({"key": written, "file": name, "secret": secret, "encrypted": encrypted}))
        return
    click.echo(f"set {written} in {name}{how}")
    if secret and not encrypted:
        if session.plugins.implementations("encrypt_value"):
            click.echo(f"  to keep it in {f'.env.{env}'} encrypted instead: envfence --env {env} secret keygen", err=True)
        else:
            click.echo(f"  no plugin encrypts values (the encryption plugin is disabled): enable it to keep {written} "
                       f"in .env.{env} encrypted", err=True)


def _new_value(session: Any, plain: str, value: str | None) -> str:
    """The value given, else read from a hidden prompt (a terminal) or stdin.

    An empty stdin is refused (an explicit empty value is the argument ``''``), and so is a value that ``.env``
    would misread.
    """
    if value is None:
        if sys.stdin.isatty():
            value = click.prompt(f"value of {plain}", hide_input=True, confirmation_prompt=is_secret(session, plain), err=True)
        else:
            value = sys.stdin.read().removesuffix("\n")
            if not value:
                # An empty stdin is a pipe that lost its value (an unset variable, a missing file), not a value.
                raise UsageError(
                    f"no value for {plain}: stdin was empty",
                    f"pipe the value in (printf %s \"$VALUE\" | envfence set {plain}), run it on a terminal to be "
                    f"asked, or give it as an argument (envfence set {plain} '' stores an empty value on purpose)",
                )
    if "${" in value:
        # Every .env reader expands ${NAME}, quoted or not, and the format has no escape for it.
        raise UsageError(
            f"the value of {plain} holds '${{', which would be read back as a reference to another key",
            "set it in the process environment instead, or build it from references on purpose by editing the file",
        )
    return value


def _placed(session: Any, written: str, value: str, secret: bool) -> tuple[str, str, bool]:
    """``(file name, value as written, encrypted)``: a secret sealed or encrypted into ``.env.<env>``, else kept ``.local``.

    The plugin that holds the environment's keys (``encryption``) seals it to the environment's public key, or
    encrypts it with its key; without one the secret stays on this machine.
    """
    env = session.environment.name
    if not secret:
        return f".env.{env}", value, False
    encrypted = ValuesHooks(session.plugins).encrypt_value(session=session, key=written, value=value).first
    if encrypted is None:
        return f".env.{env}.local", value, False  # no key here: the secret stays on this machine
    return f".env.{env}", encrypted, True


def _write_binding(session: Any, name: str, key: str, value: str) -> None:
    """Replace ``key``'s binding in the project's file ``name`` (atomically, its mode kept), never through a link."""
    from envfence.files import write_atomic

    root = session.root.path
    path = root / name
    if path.is_symlink():
        # Replacing the link would drop every other value of the file it leads to.
        raise UsageError(f"{path} is a symbolic link; envfence writes no file through a link",
                         f"edit the file it leads to, or replace the link with a plain {name}")
    try:
        text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})", "make it readable by this user") from None
    write_atomic(root, name, replace_binding(text, key, dotenv_line(key, value)), mode=mode)
