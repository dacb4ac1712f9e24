"""``envfence secret migrate``: move an environment to a key pair (part of the ``encryption`` plugin).

Every value of the environment in its ``.env`` files (its own prefixed keys in
the shared ``.env`` and ``.env.local``, every key of ``.env.<environment>`` and
``.env.<environment>.local``) that is encrypted with the environment's
symmetric key is opened once and sealed to the key pair's public key; a
secret written in plaintext is sealed too. Other lines, comments included,
stay as they are; each file is replaced whole or not at all. The key pair is
made when the environment has none. The symmetric key is left where it is:
the command says to take it off hosts that are not the environment's.
"""

from __future__ import annotations

import io
import re
from typing import Any

_BINDING = re.compile(r"^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)(\s*=)(.*)$")


def migrate_environment(session: Any) -> dict[str, Any]:
    """Seal the environment's values to its key pair (made when missing); return what was done."""
    from envfence import keypairs, keyring

    from .encryption_keys import public_key, write_public_key

    env, settings, root = session.environment.name, session.settings, session.root.path
    public = public_key(settings, env)
    made = public is None
    if made:
        private, public = keypairs.generate()
        keyring.create(root, env, "private", private)
        write_public_key(settings, env, public)
    sealed: list[dict[str, str]] = []
    for name in (".env", ".env.local", f".env.{env}", f".env.{env}.local"):
        sealed += _migrate_file(session, name, public)
    session.audit("secret.migrated", public_key=public, made_pair=made, sealed=[f"{s['file']}:{s['key']}" for s in sealed])
    lines = [f"sealed {s['key']} in {s['file']} (was {s['was']})" for s in sealed]
    if made:
        lines.insert(0, f"made {env}'s key pair: the public key is in {settings.source}, the private key in "
                        f"{keyring.key_file(root, env, 'private')} (keep it on {env} hosts only)")
    lines.append(f"{len(sealed)} value(s) sealed to {env}'s public key; remove {env}'s old key from hosts that are not {env}'s")
    return {"environment": env, "public_key": public, "made_pair": made, "sealed": sealed, "summary": "\n".join(lines)}


def _migrate_file(session: Any, name: str, public: str) -> list[dict[str, str]]:
    from dotenv import dotenv_values

    from envfence import files, keypairs

    path = session.root.path / name
    if path.is_symlink() or not path.is_file():
        return []  # a link is never written through; the loader reports it
    text = path.read_text(encoding="utf-8-sig")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    env, naming = session.environment.name, session.settings.naming
    shared = name in (".env", ".env.local")
    done, out = [], []
    for line in text.splitlines(keepends=True):
        found = _BINDING.match(line.rstrip("\n"))
        key = found.group(2) if found else None
        value = values.get(key) if key else None
        owner = naming.environment_of(key) if key else None
        ours = key is not None and value is not None and (owner == env or (owner is None and not shared))
        was = _kind(session, key, value) if ours else None
        if was is None:
            out.append(line)
            continue
        plain = _open(session, key, value, name) if was == "fernet" else value
        out.append(f"{found.group(1)}{key}={keypairs.seal(public, env, naming.split(key)[1], plain)}\n")
        done.append({"file": name, "key": key, "was": was})
    if done:
        files.write_atomic(session.root.path, name, "".join(out), mode=path.stat().st_mode & 0o777)
    return done


def _kind(session: Any, key: str, value: str) -> str | None:
    """``fernet`` for a value of the symmetric key, ``plaintext`` for a secret in the clear, None to leave it."""
    from envfence import keypairs
    from envfence.layers import is_secret_key

    from .encryption_keys import SCHEME

    if value.startswith(SCHEME):
        return "fernet"
    if value.startswith(keypairs.SCHEME) or value.startswith("enc:") or not value:
        return None
    declared = set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}
    return "plaintext" if is_secret_key(session.settings.naming.split(key)[1], declared) or key in declared else None


def _open(session: Any, key: str, value: str, name: str) -> str:
    from .encryption_keys import SCHEME, load_key

    env = session.environment.name
    fernet = load_key(session.root.path, env, session.settings.naming.prefix(env), session.environ)
    from cryptography.fernet import InvalidToken

    from envfence.errors import ConfigurationError

    try:
        return fernet.decrypt(value[len(SCHEME):].encode()).decode("utf-8")
    except (InvalidToken, UnicodeDecodeError):
        raise ConfigurationError(f"{name}: {key} does not open with the {env} key, so it cannot be moved",
                                 "fix or remove that line, then run `secret migrate` again") from None
