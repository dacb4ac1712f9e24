"""The audit record format and its hash chain: the one definition every audit store shares.

A record is a JSON object. Its ``hash`` is the sha256 of its canonical JSON
(sorted keys, no spaces, UTF-8) without its ``hash`` and ``mac`` fields, and
its ``prev`` is the hash of the record before it, so a record edited,
removed, inserted or reordered breaks the chain. The first record's ``prev``
is :func:`genesis` of the environment and the place the chain is kept (a
file's name, a table's name), so a chain copied from another environment or
another place does not verify. With an environment's audit key a record
carries ``mac`` (:func:`record_mac`) and a sealed head carries :func:`sign`.

The file trail (the ``audit`` plugin) and the shared store (the ``store``
plugin) both build records with :func:`entry` and :func:`link`, and check
them with :func:`record_hash`: one format, whoever keeps it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Iterator, Mapping

from .digests import sha256_hex

#: ``prev`` of the first record of a trail written before records were bound to their place.
GENESIS = "0" * 64
#: The record format: version 2 records carry ``"v": 2`` and start from :func:`genesis`.
FORMAT = 2

#: Built once: ``json.dumps`` with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def genesis(environment: str, name: str) -> str:
    """``prev`` of a chain's first record: binds the chain to its environment and its place (file or table name)."""
    return sha256_hex(f"envfence audit trail\0{environment}\0{name}".encode())


def canonical(record: Mapping[str, Any]) -> bytes:
    """A record's canonical JSON: sorted keys, no spaces, UTF-8 (what is hashed, and what is stored)."""
    return _ENCODER.encode(record).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """The sha256 of a record's canonical JSON, its own ``hash`` (and ``mac``) fields left out."""
    return sha256_hex(canonical({k: v for k, v in record.items() if k not in ("hash", "mac")}))


class DuplicateKey(ValueError):
    """A JSON object names one key twice: the parser would keep only the last one."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


_STRICT = json.JSONDecoder(object_pairs_hook=_unique)


def parse_record(raw: bytes) -> dict[str, Any]:
    """One stored record; a duplicate key is an error, not the last one winning.

    :raises ValueError: not a JSON object (:class:`DuplicateKey` for a key given twice).
    """
    record = _STRICT.decode(raw.decode("utf-8"))
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


def sign(key: bytes, environment: str, name: str, seq: int, digest: str) -> str:
    """The HMAC-SHA256 of a head: the environment, the chain's place, a record's number and hash."""
    return _hmac_sha256(key, f"envfence audit head\0{environment}\0{name}\0{seq}\0{digest}".encode())


def record_mac(key: bytes, environment: str, name: str, record: Mapping[str, Any]) -> str:
    """The HMAC-SHA256 a record carries (``mac``) when its environment has an audit key.

    Records an interrupted append left after the head are adopted by the next
    append; with a key, only those that carry it are, so nobody without the
    key can append records the next run would seal. (A message of its own,
    so that no record's ``mac`` can serve as a signed head.)
    """
    return _hmac_sha256(key, f"envfence audit record\0{environment}\0{name}\0{record.get('seq')}\0{record.get('hash')}".encode())


def _hmac_sha256(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 in hex; hmac (and OpenSSL with it) is loaded only where an environment has an audit key."""
    import hashlib
    import hmac

    return hmac.new(key, message, hashlib.sha256).hexdigest()


def unsigned(key: bytes, environment: str, name: str, record: Mapping[str, Any]) -> bool:
    """True when ``record`` lacks the audit key's ``mac`` (or carries another key's)."""
    import hmac

    mac = record.get("mac")
    return not isinstance(mac, str) or not hmac.compare_digest(mac, record_mac(key, environment, name, record))


def unsigned_line(key: bytes, environment: str, name: str, raw: bytes) -> bool:
    """:func:`unsigned` for a stored line; a line that is not a record is unsigned."""
    try:
        return unsigned(key, environment, name, parse_record(raw))
    except ValueError:
        return True


def context(session: Any) -> dict[str, Any]:
    """The fields every record of this process carries: user, host, pid."""
    from envfence.runs.record import current_user

    return {"user": current_user(), "host": session.host.hostname, "pid": os.getpid()}


def entry(common: Mapping[str, Any], event: Any) -> dict[str, Any]:
    """The record body of an :class:`~envfence.models.AuditEvent` (before it is chained)."""
    return {
        "at": event.at.isoformat(),
        "event": event.event,
        "environment": event.environment,
        **common,
        "data": dict(event.data),  # redacted by Session.audit
    }


def link(
    entries: Iterable[Mapping[str, Any]], *, seq: int, prev: str, version: int | None = FORMAT,
    key: bytes | None = None, environment: str = "", name: str = "",
) -> Iterator[dict[str, Any]]:
    """Chain ``entries`` after record ``seq`` whose hash is ``prev``: each gets ``seq``, ``prev``, ``hash``.

    :param version: written as ``v`` (None: no ``v`` field, as the shared store's records have).
    :param key: the audit key; each record then carries its ``mac`` over ``environment`` and ``name``.
    """
    for body in entries:
        seq += 1
        record = {**body, **({"v": version} if version is not None else {}), "seq": seq, "prev": prev}
        record["hash"] = prev = record_hash(record)
        if key:
            record["mac"] = record_mac(key, environment, name, record)
        yield record


__all__ = [
    "DuplicateKey", "FORMAT", "GENESIS", "canonical", "context", "entry", "genesis", "link",
    "parse_record", "record_hash", "record_mac", "sign", "unsigned", "unsigned_line",
]
