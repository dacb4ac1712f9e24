"""Secrets that must not reach git: tracked ``.env`` files, plaintext where a key exists.

- ``GIT_TRACKED_SECRET``: a ``.env`` file that git tracks holds a secret in
  plaintext. Whoever can read the repository can read the secret, in every
  clone and in history. Warning; error in strict profiles.
- ``PLAINTEXT_PROD_SECRET``: a production secret is written in plaintext in
  a file meant to be shared (``.env``, ``.env.production``) while the project
  has a production key to encrypt it with. Warning; error in strict profiles.

``envfence precommit [FILE...]`` (the pre-commit hook in the repository's
``.pre-commit-hooks.yaml``) refuses a commit that adds a plaintext secret to
a ``.env`` file, or any ``.env*.local`` file. ``envfence init`` offers the
``.gitignore`` lines that keep environment data and local secrets out.
The value of a secret is never shown: only the file, the line and the key.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable, Mapping

from envfence import hookimpl
from envfence.models import Finding

NAME = "git_hygiene"

#: What ``init`` offers for ``.gitignore``: every environment's tree, and files meant to stay on one machine.
GITIGNORE_LINES = ("var/", ".env*.local")

_GIT_TIMEOUT = 10


def _git(root: Path, *args: str, input_text: str | None = None) -> str | None:
    """Run git in ``root``; None when git is missing, the directory is no work tree, or git fails."""
    if not _may_be_in_repository(root):
        return None  # git would answer "not a git repository": a run does not pay for starting it
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT, input=input_text,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _may_be_in_repository(root: Path) -> bool:
    """False when git could find no repository for ``root``: no ``.git`` (a directory, or the file of a
    worktree or submodule) in it or above it, and no ``GIT_DIR`` pointing elsewhere."""
    if os.environ.get("GIT_DIR"):
        return True
    return any(os.path.lexists(os.path.join(directory, ".git")) for directory in (root, *root.parents))


def is_env_file(name: str) -> bool:
    """True for the files envfence reads configuration from (``.env``, ``.env.production.local``)."""
    base = name.rsplit("/", 1)[-1]
    return base == ".env" or base.startswith(".env.")


def _declared(session) -> set[str]:
    return set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}


def plaintext_secrets(text: str, settings, declared: Iterable[str]) -> list[tuple[int, str, str | None]]:
    """``(line, key, environment)`` for each secret written in plaintext in a ``.env`` text.

    ``environment`` is the one the key's prefix names, or None for a key
    without one. An ``enc:`` value or an empty one is not plaintext.
    """
    from dotenv.parser import parse_stream
    import io

    from envfence.pipeline import is_secret_key

    declared = set(declared)
    found = []
    for binding in parse_stream(io.StringIO(text)):
        key, value = binding.key, binding.value
        if not key or not value or value.startswith("enc:"):
            continue
        owner, plain = settings.naming.split(key)
        if is_secret_key(plain, declared) or key in declared:
            found.append((binding.original.line, key, owner))
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None  # dotenv_files reports an unreadable file with its reason


def _has_key(root: Path, environment: str, prefix: str, environ: Mapping[str, str]) -> bool:
    from envfence import keyring

    return bool(environ.get(keyring.key_variable("encryption", prefix))) or keyring.key_file(root, environment, "encryption").is_file()


@hookimpl
def validate(session) -> list[Finding]:
    """Tracked files holding plaintext secrets; plaintext production secrets where a key exists."""
    root = session.root.path
    settings = session.settings
    declared = _declared(session)
    escalate = session.profile.escalate
    findings: list[Finding] = []

    listed = _git(root, "ls-files", "-z", "--", ":(glob).env", ":(glob).env.*")
    for name in sorted(n for n in (listed or "").split("\0") if n):
        text = _read(root / name)
        for line, key, _ in plaintext_secrets(text or "", settings, declared):
            findings.append(Finding(
                "GIT_TRACKED_SECRET", escalate("warning"),
                f"{name}:{line}: {key} holds a secret in plaintext, and git tracks {name}: every clone can read it",
                f"move {key} to an untracked .env*.local file (or encrypt it with `envfence secret encrypt {key}`), "
                f"`git rm --cached {name}` if the file should not be tracked, and rotate the secret: it is in the history",
                key=key, file=name, line=line, plugin=NAME,
            ))

    if session.profile.debug:  # development: a local file that git would take with the next `git add .`
        findings += _local_files_not_ignored(root)
    tracked_keys = {(f.file, f.key) for f in findings}
    for env in settings.environments.values():
        if env.based_on != "production" or not _has_key(root, env.name, settings.naming.prefix(env.name), session.environ):
            continue
        for name in (".env", f".env.{env.name}"):
            text = _read(root / name)
            for line, key, owner in plaintext_secrets(text or "", settings, declared):
                mine = owner == env.name or (owner is None and name != ".env")
                if not mine or (name, key) in tracked_keys:
                    continue
                findings.append(Finding(
                    "PLAINTEXT_PROD_SECRET", escalate("warning"),
                    f"{name}:{line}: {key} is a {env.name} secret in plaintext, and the project has a {env.name} key",
                    f"encrypt it: `envfence --env {env.name} secret encrypt {key}` and paste the line in place of the plaintext one",
                    key=key, file=name, line=line, plugin=NAME,
                ))
    return findings


def _local_files_not_ignored(root: Path) -> list[Finding]:
    """``LOCAL_FILE_NOT_IGNORED`` for each ``.env*.local`` file in a work tree whose ignore rules do not cover it."""
    local = sorted(p.name for p in root.glob(".env*.local") if p.is_file() and not p.is_symlink())
    if not local or _git(root, "rev-parse", "--is-inside-work-tree") is None:
        return []
    ignored = set((_git(root, "check-ignore", "--no-index", "--stdin", input_text="\n".join(local) + "\n") or "").split())
    return [
        Finding(
            "LOCAL_FILE_NOT_IGNORED", "warning",
            f"{name} is meant to stay on this machine, and git does not ignore it: `git add .` would commit it",
            "add '.env*.local' to .gitignore (envfence init --gitignore writes it)",
            file=name, plugin=NAME,
        )
        for name in local if name not in ignored
    ]


def missing_gitignore_lines(root: Path) -> list[str]:
    """The :data:`GITIGNORE_LINES` that ``root/.gitignore`` lacks (all of them without the file)."""
    try:  # git reads .gitignore as bytes: any encoding is a valid one
        text = (root / ".gitignore").read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        text = ""
    present = {line.strip() for line in text.splitlines()}
    return [line for line in GITIGNORE_LINES if line not in present and line.rstrip("/") not in present]


@hookimpl
def prepare_environment(session, paths) -> list[Finding]:
    """Offer the ``.gitignore`` lines a git project lacks; write them when ``envfence init --gitignore`` asks."""
    from envfence.stash import INIT_REQUESTS

    root = session.root.path
    if _git(root, "rev-parse", "--is-inside-work-tree") is None:
        return []
    missing = missing_gitignore_lines(root)
    if not missing:
        return []
    target = root / ".gitignore"
    if "gitignore" in session.stash.get(INIT_REQUESTS, frozenset()) and not target.is_symlink():
        _append_lines(root, missing)
        return [Finding("GITIGNORE_WRITTEN", "info", f"added {', '.join(missing)} to {root / '.gitignore'}",
                        key=".gitignore", file=".gitignore", plugin=NAME)]
    return [Finding(
        "GITIGNORE_LINES", "warning",
        f"{root / '.gitignore'} does not ignore {', '.join(missing)}: environment data and machine-local secrets could reach git",
        "add them with `envfence init --gitignore`" if not target.is_symlink() else
        f"{target} is a link: add " + " and ".join(f"`{line}`" for line in missing) + " where it leads",
        key=".gitignore", file=".gitignore", plugin=NAME,
    )]


def _append_lines(root: Path, lines: list[str]) -> None:
    """Add ``lines`` at the end of ``root/.gitignore``, keeping what it holds byte for byte."""
    from envfence import files

    target = root / ".gitignore"
    try:
        old, mode = target.read_bytes(), target.stat().st_mode & 0o777
    except FileNotFoundError:
        old, mode = b"", 0o644
    if old and not old.endswith(b"\n"):
        old += b"\n"
    files.write_atomic(root, ".gitignore", old + "".join(f"{line}\n" for line in lines).encode(), mode=mode)


@hookimpl
def register_commands(cli) -> None:
    """``envfence precommit``: the pre-commit hook that refuses plaintext secrets."""
    import click

    from envfence.cli import State, pass_state
    from envfence.cli.output import dumps

    from envfence.cli.examples import examples

    @examples(
        "envfence precommit                    # every staged file",
        "envfence precommit .env .env.production",
    )
    @cli.command()
    @click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
    @pass_state
    def precommit(state: State, files: tuple[str, ...]) -> None:
        """Refuse to commit plaintext secrets (a pre-commit hook).

        Checks the staged content of each FILE (default: every staged file)
        that is a .env file: a secret must be encrypted (enc:...) or kept in an
        untracked .env*.local file, which is never committed. Exits 1 and names
        file, line and key, never the value. Wire it with pre-commit
        (`id: envfence-no-plaintext-secrets`) or as .git/hooks/pre-commit.
        """
        session = state.session()
        root = session.root.path
        if not files:
            staged = _git(root, "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR") or ""
            files = tuple(n for n in staged.split("\0") if n)
        problems = []
        declared = _declared(session)
        for name in files:
            if not is_env_file(name):
                continue
            rel = os.path.relpath(Path(name).resolve(), root) if Path(name).is_absolute() else name
            if rel.endswith(".local"):
                problems.append({"file": rel, "line": None, "key": None,
                                 "message": f"{rel} is meant to stay on this machine; never commit it (add `.env*.local` to .gitignore)"})
                continue
            # The staged text is what gets committed; a file not staged (a direct call) is read from disk.
            text = _git(root, "show", f":{rel}")
            if text is None:
                text = _read(root / rel) or ""
            for line, key, owner in plaintext_secrets(text, session.settings, declared):
                env = owner or session.environment.name
                problems.append({"file": rel, "line": line, "key": key, "message":
                                 f"{rel}:{line}: {key} holds a plaintext secret; encrypt it "
                                 f"(`envfence --env {env} secret encrypt {key}`) or move it to .env.{env}.local"})
        if state.json:
            click.echo(dumps({"ok": not problems, "problems": problems}))
        else:
            for p in problems:
                click.echo(p["message"], err=True)
        if problems:
            raise SystemExit(1)
