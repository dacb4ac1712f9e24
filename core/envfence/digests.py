"""SHA-256 hex digests without loading OpenSSL for small inputs: one helper for every one-shot digest a command takes.

Importing :mod:`hashlib` loads OpenSSL (``_hashlib``), a few milliseconds of a
command that hashes only a few ``.env`` files and audit records. The
interpreter's own SHA-256 (``_sha256`` in 3.11, ``_sha2`` from 3.12) gives
the same digest; hashlib's is faster on large inputs, so they go to it.
"""

from __future__ import annotations

try:  # the interpreter's own SHA-256 (3.11: _sha256, 3.12+: _sha2)
    from _sha256 import sha256 as _small_sha256
except ImportError:
    try:
        from _sha2 import sha256 as _small_sha256
    except ImportError:  # an interpreter built without it: hashlib for everything
        _small_sha256 = None

#: Up to this many bytes the built-in SHA-256 is quicker than loading OpenSSL for hashlib (~3 ms of a command).
SMALL = 1 << 16


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hex digits (the same digest whichever implementation computes it)."""
    if _small_sha256 is not None and len(data) <= SMALL:
        return _small_sha256(data).hexdigest()
    import hashlib

    return hashlib.sha256(data).hexdigest()
