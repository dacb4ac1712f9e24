"""Configuration layers merged into one environment's :class:`~envfence.models.Config`.

Layers come from the ``load_config`` plugins (files, the process environment),
the declared defaults and the runtime overrides. :func:`decrypt_layers` opens
the encrypted values this environment may read; :func:`merge_layers` applies
the layers by precedence, keeps each key's provenance, reads each key's
environment through the project's one :class:`~envfence.naming.CredentialNaming`
and wraps secrets in :class:`~envfence.models.Secret`.
"""

from __future__ import annotations

import re
from typing import Iterable

from . import slotted
from .errors import ConfigurationError
from .models import Config, ConfigEntry, ConfigLayer, Secret, SettingSpec
from .settings import ProjectSettings

#: Key endings that make a value secret without being declared.
SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


#: Values that start with this are encrypted at rest (see the ``decrypt_value`` hook).
ENCRYPTED_PREFIX = "enc:"


def decrypt_layers(pm, layers, environment, settings, root, environ):
    """Decrypt the encrypted values this environment may read; return the layers and those keys.

    Another environment's prefixed values are left encrypted: this
    environment's key cannot, and must not, open them.
    """
    naming = settings.naming
    decrypted: set[str] = set()
    result = []
    for layer in layers:
        encrypted = [
            k for k, v in layer.values.items()
            if isinstance(v, str) and v.startswith(ENCRYPTED_PREFIX)
        ]
        if not encrypted:
            result.append(layer)
            continue
        values = dict(layer.values)
        for key in encrypted:
            decrypted.add(key)  # secret whether it is opened here or not
            if not naming.readable_in(key, environment.name):
                continue
            plain = pm.decrypt_value(
                key=key, value=values[key], source=layer.source,
                environment=environment, settings=settings, root=root, environ=environ,
            ).first
            if plain is None:
                # Name the scheme only when the value has one: ``enc:`` may prefix a plain secret.
                scheme = re.match(r"enc:([a-z0-9]+):", values[key])
                raise ConfigurationError(
                    f"{layer.source}: {key} is encrypted ({scheme.group(1) if scheme else 'no scheme named'}) and no plugin can decrypt it",
                    "install envfence's encryption support (pip install 'envfence[encryption]') or the plugin for that scheme",
                )
            values[key] = plain
        result.append(slotted.evolve(layer, values=values))
    return result, decrypted


def is_secret_key(plain: str, declared: frozenset[str] | set[str]) -> bool:
    """True when a key (without its environment prefix) names a secret."""
    return plain in declared or plain.upper().endswith(SECRET_SUFFIXES)


def merge_layers(
    layers: Iterable[ConfigLayer],
    environment: str,
    settings: ProjectSettings,
    specs: Iterable[SettingSpec] = (),
    extra_secrets: Iterable[str] = (),
) -> Config:
    """Merge layers by precedence into a :class:`Config` with provenance.

    Layers are applied lowest precedence first; a key keeps the layer that set
    it last and the (layer, value) pairs it replaced. An overlay layer only
    sets keys that are already known. Secret values are wrapped in
    :class:`Secret`.
    """
    specs = list(specs)
    ordered = sorted(layers, key=lambda layer: layer.precedence)
    declared_secrets = set(settings.secrets) | {s.name for s in specs if s.secret} | set(extra_secrets)
    naming = settings.naming
    known = {s.name for s in specs}

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    history: dict[str, list[tuple[str, str]]] = {}
    for layer in ordered:
        source = layer.source
        for key, value in layer.values.items():
            if value is None:
                continue
            if key in values:
                history.setdefault(key, []).append((sources[key], values[key]))
            elif layer.overlay and key not in known and naming.environment_of(key) is None:
                continue
            values[key] = value
            sources[key] = source

    entries: dict[str, ConfigEntry] = {}
    for key, value in values.items():
        env, plain = naming.split(key)
        secret = is_secret_key(plain, declared_secrets) or key in declared_secrets
        wrap = Secret if secret else str
        overridden = tuple((src, wrap(old)) for src, old in history.get(key, ()))
        entries[key] = ConfigEntry(key, wrap(value), sources[key], overridden, env)
    return Config(environment=environment, naming=naming, entries=entries, layers=tuple(ordered))


def changed_layers(config: Config) -> list[str]:
    """The file layers of ``config`` that changed on disk since it was loaded.

    A file that appeared, disappeared or whose bytes differ counts; the
    comparison is by content digest, so touching a file is no change.
    """
    from .digests import sha256_hex

    changed = []
    for layer in config.layers:
        if layer.path is None:
            continue
        try:
            digest = sha256_hex(layer.path.read_bytes())
        except FileNotFoundError:
            digest = None
        except OSError:
            digest = "unreadable"
        if (digest is None) != (not layer.exists) or (digest is not None and digest != layer.digest):
            changed.append(layer.source)
    return changed
