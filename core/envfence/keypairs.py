"""Per-environment key pairs: anyone with the project encrypts, only a host with the private key decrypts.

As dotenvx does, an environment may have a key pair instead of (or beside)
its symmetric key. The public key lives in the project's settings, committed
with it::

    [encryption.public_keys]
    production = "x25519:3p0V...="

so anyone can add or rotate a production value (``envfence --env production
set KEY``, ``envfence --env production secret encrypt KEY``) without being
able to read one. The ``encryption`` plugin owns that table: it reads the
public key and hands it to :func:`seal`; this module reads no settings. The private key is a key of the key ring (kind ``private``:
``ENVFENCE_PRIVATE_KEY_<PREFIX>``, else ``.envfence/keys/<environment>.private.key``,
owner-only), kept on the environment's own hosts.

The construction is HPKE (RFC 9180) in base mode as ``cryptography`` ships it:
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM. A value is written
``enc:x25519:<base64url of the encapsulated key and the ciphertext>``; its
``info`` binds it to the environment and the key's plain name, so a value
copied to another environment or another key does not open.

``cryptography`` is imported only when a key is made or a value sealed or opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigurationError

SCHEME = "enc:x25519:"
PUBLIC_PREFIX = "x25519:"


def _suite() -> Any:
    try:
        from cryptography.hazmat.primitives import hpke
    except ImportError:
        raise ConfigurationError(
            "key pairs need the cryptography package, version 47 or later (HPKE)", "pip install -U 'envfence[encryption]'"
        ) from None
    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)


def _info(environment: str, name: str) -> bytes:
    return f"envfence:{environment}:{name}".encode()


def generate() -> tuple[bytes, str]:
    """A new pair: the private key's material for the key ring, and the public key's text for the settings."""
    import base64

    _suite()
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    private = X25519PrivateKey.generate()
    raw = private.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption())
    public = private.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return base64.b64encode(raw) + b"\n", PUBLIC_PREFIX + base64.b64encode(public).decode()


def check_public(text: Any, where: str) -> str:
    """``text`` when it is an ``x25519:`` public key of 32 bytes.

    :raises ConfigurationError: naming ``where`` (the settings file and key it came from).
    """
    _public_bytes(text, where)
    return text


def _public_bytes(text: Any, where: str) -> bytes:
    import base64

    raw = b""
    if isinstance(text, str) and text.startswith(PUBLIC_PREFIX):
        try:
            raw = base64.b64decode(text[len(PUBLIC_PREFIX):], validate=True)
        except ValueError:
            raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"{where}: not an x25519 public key", "write the line `envfence secret keygen --pair` printed")
    return raw


def seal(public: str, environment: str, name: str, value: str) -> str:
    """``value`` encrypted to ``environment``'s public key, bound to the key's plain ``name``: ``enc:x25519:...``."""
    import base64


    suite = _suite()
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = X25519PublicKey.from_public_bytes(_public_bytes(public, f"the {environment} public key"))
    sealed = suite.encrypt(value.encode("utf-8"), key, info=_info(environment, name))
    return SCHEME + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(material: bytes, where: str, environment: str, name: str, token: str) -> str:
    """Open an ``enc:x25519:`` value with the environment's private key.

    :raises ConfigurationError: the key is not a key, or the value does not
        open with it (another environment's, another key's, altered).
    """
    import base64

    suite = _suite()
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    try:
        key = X25519PrivateKey.from_private_bytes(base64.b64decode(material.strip(), validate=True))
    except ValueError:
        raise ConfigurationError(f"{where}: not an x25519 private key", f"put the {environment} private key there as keygen wrote it") from None
    body = token[len(SCHEME):] if token.startswith(SCHEME) else token
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return suite.decrypt(sealed, key, info=_info(environment, name)).decode("utf-8")
    except (ValueError, InvalidTag, UnicodeDecodeError):
        raise ConfigurationError(
            f"{name} does not open with the {environment} private key ({where})",
            f"was it sealed for another environment or key, or altered? set it again: `envfence --env {environment} set {name}`",
        ) from None


def private_key(root: Path, environment: str, prefix: str, environ: Mapping[str, str]) -> Any:
    """The environment's private key from the key ring (:class:`envfence.keyring.Key`), or None on a host without it."""
    from . import keyring

    return keyring.find(root, environment, prefix, environ, "private", error=ConfigurationError)


__all__ = ["PUBLIC_PREFIX", "SCHEME", "check_public", "generate", "private_key", "seal", "unseal"]
