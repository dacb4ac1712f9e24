"""``envfence get``, ``export`` and ``set``: one value, all of them, or a new one.

- ``get KEY`` prints this environment's value of KEY under its plain name (a
  credential through the environment's prefix). A secret needs ``--reveal``,
  which is audited; a secret inside the value is masked without it.
- ``export --format shell|dotenv|json`` prints the whole environment view,
  as ``eval "$(envfence export)"`` wants it. Secrets are left out, and
  secrets inside other values (a password in ``DATABASE_URL``) masked as
  ``config show`` masks them, unless ``--reveal`` (audited).
- ``set KEY [VALUE]`` (the value from stdin or a hidden prompt when absent)
  writes the file that belongs to this environment: ``.env.<environment>``,
  sealed there for a secret when the environment has a key pair (no private
  key needed), encrypted when it has a key, else
  ``.env.<environment>.local`` for a secret, which is never committed. The
  value is never echoed.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import stat
import sys

from envfence import hookimpl
from envfence.errors import UsageError
from envfence.models import reveal

def _plain_key(session, key: str) -> str:
    """``key`` under its plain name; another environment's prefixed key is refused."""
    env = session.environment.name
    owner, plain = session.settings.naming.split(key)
    if owner not in (None, env):
        raise UsageError(f"{key} belongs to {owner}, but this is {env}", f"use --env {owner}, or the plain name {plain}")
    return plain


def _is_secret(session, plain: str) -> bool:
    from envfence.pipeline import is_secret_key

    declared = set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}
    return is_secret_key(plain, declared)


def _reveal_audited(session, keys: list[str], command: str) -> None:
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


@hookimpl
def register_commands(cli) -> None:
    """``envfence get``, ``envfence export`` and ``envfence set``."""
    import click

    from envfence.cli import State, pass_state
    from envfence.cli.output import dumps

    from envfence.cli.examples import examples

    @examples(
        "envfence get AIRTABLE_BASE_ID",
        "envfence --env production get AIRTABLE_API_KEY --reveal   # audited",
    )
    @cli.command("get")
    @click.argument("key")
    @click.option("--reveal", "reveal_secret", is_flag=True, help="Print a secret's value (recorded in the audit trail).")
    @pass_state
    def get(state: State, key: str, reveal_secret: bool) -> None:
        """Print the value of KEY in this environment (a credential through its prefix).

        Exit 1 when KEY is not set. A secret is printed only with --reveal,
        which is audited.
        """
        session = state.session()
        plain = _plain_key(session, key)
        view = session.config.environment_view()
        if plain not in view:
            import difflib

            guess = difflib.get_close_matches(plain, sorted(view), n=1)
            raise click.exceptions.Exit(_missing(state, session, plain, guess))
        value = view[plain]
        session.config_read("get", [plain])
        secret = _is_secret(session, plain) or not isinstance(value, str)
        if secret and not reveal_secret:
            raise UsageError(f"{plain} is a secret", f"add --reveal to print it (recorded in the audit trail): envfence get {plain} --reveal")
        text = str(reveal(value))
        shown = text if secret or reveal_secret else session.redactor()(text)
        if secret or (reveal_secret and session.redactor()(text) != text):
            _reveal_audited(session, [plain], "get")
        elif shown != text:
            click.echo(f"envfence: {plain} holds a secret, masked; --reveal shows it (audited)", err=True)
        click.echo(dumps({"key": plain, "value": shown, "secret": secret}) if state.json else shown)

    def _missing(state, session, plain, guess) -> int:
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
    @cli.command("export")
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
        secret = sorted(k for k, v in view.items() if _is_secret(session, k) or not isinstance(v, str))
        values = {k: str(reveal(v)) for k, v in sorted(view.items()) if reveal_secrets or k not in secret}
        # A value holding a secret (a password inside DATABASE_URL) is masked as `config show` masks it.
        holding = sorted(k for k, v in values.items() if k not in secret and session.redactor()(v) != v)
        if reveal_secrets and (secret or holding):
            _reveal_audited(session, secret + holding, "export")
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
    @cli.command("set")
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
        plain = _plain_key(session, key)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", plain):
            raise UsageError(f"{key!r} is not a usable key", "use letters, digits and underscores, starting with a letter")
        if value is None:
            if sys.stdin.isatty():
                value = click.prompt(f"value of {plain}", hide_input=True, confirmation_prompt=_is_secret(session, plain), err=True)
            else:
                value = sys.stdin.read().removesuffix("\n")
        if "${" in value:
            # Every .env reader expands ${NAME}, quoted or not, and the format has no escape for it.
            raise UsageError(
                f"the value of {plain} holds '${{', which would be read back as a reference to another key",
                "set it in the process environment instead, or build it from references on purpose by editing the file",
            )
        env = session.environment.name
        secret = _is_secret(session, plain)
        encrypted = False
        name = f".env.{env}"
        from envfence import keypairs

        public = keypairs.public_key(session.settings, env) if secret else None
        if public is not None:
            # Sealed to the environment's public key: writing needs no key that could read it back.
            value, encrypted = keypairs.seal(public, env, plain, value), True
        elif secret:
            from envfence.errors import ConfigurationError
            from envfence_builtins.configuration.encryption import SCHEME, load_key

            try:
                fernet = load_key(session.root.path, env, session.settings.naming.prefix(env), session.environ)
            except ConfigurationError:
                fernet = None  # no key here: the secret stays on this machine
            if fernet is not None:
                value = SCHEME + fernet.encrypt(value.encode("utf-8")).decode()
                encrypted = True
            else:
                name = f".env.{env}.local"
        session.prepare()
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
        from envfence.files import write_atomic

        # A strict profile reads a credential only under its prefix (a plain one is CREDENTIAL_UNPREFIXED there).
        written = session.config.key_for(plain) if secret and session.profile.strict else plain
        write_atomic(root, name, replace_binding(text, written, dotenv_line(written, value)), mode=mode)
        session.audit("config.set", key=written, file=name, secret=secret, encrypted=encrypted)
        how = " (encrypted)" if encrypted else (" (a secret: this file stays out of git)" if secret else "")
        if state.json:
            click.echo(dumps({"key": written, "file": name, "secret": secret, "encrypted": encrypted}))
        else:
            click.echo(f"set {written} in {name}{how}")
            if secret and not encrypted:
                click.echo(f"  to keep it in {f'.env.{env}'} encrypted instead: envfence --env {env} secret keygen", err=True)
