"""The audit trail in the shared store: one hash chain per environment, each record signed with the environment's audit key.

Records are built and chained by :mod:`envfence.audit_chain`, the format the
file trail uses: each carries the sha256 of its canonical JSON and the hash
of the record before it, and, where the environment has an audit key
(``envfence audit keygen``, or its variable), the HMAC-SHA256 of the key
(``mac``, in its own column), which only a holder of the key can make.
``envfence audit verify`` checks both: a record edited, removed or inserted
breaks the chain; a record chained by anyone without the environment's key
(a role that could write the table, a superuser) carries no valid MAC and is
named. Records written before the environment had a key stay valid, as long
as no unsigned record follows a signed one.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from typing import Any

from envfence import audit_chain
from envfence.errors import EnvfenceError

from envfence_builtins.store.postgres_schema import AUDIT


def append_audit(db, environment: str, entries: list[tuple[str, dict[str, Any]]], key: bytes | None = None) -> int:
    """Chain ``entries`` (event id, record without seq/prev/hash) onto the environment's trail, signed with ``key``.

    Optimistic: the next number is read and the records inserted in one
    transaction; a host that took the same number first makes the insert
    fail on the table's key, and the batch is chained again after it. An
    event id already recorded is skipped, so a forwarded spool never doubles
    a record. Returns how many were added.
    """
    import psycopg

    for _ in range(50):
        try:
            return _chain(db, environment, entries, key)
        except psycopg.errors.UniqueViolation:  # another writer chained that number first
            continue
    raise EnvfenceError(f"could not chain {len(entries)} audit record(s) for {environment}: too many writers at once",
                        "try again; if it persists, look for a process writing the trail in a loop")


def _chain(db, environment: str, entries: list[tuple[str, dict[str, Any]]], key: bytes | None) -> int:
    added = 0
    # One record is one INSERT, atomic on its own; a batch is chained in one transaction.
    with db.transaction() if len(entries) > 1 else contextlib.nullcontext():
        last = db.execute(f"SELECT seq, hash FROM {AUDIT} WHERE environment = %s ORDER BY seq DESC LIMIT 1", (environment,)).fetchone()
        seq, prev = last if last else (0, chain_genesis(environment))
        for event_id, entry in entries:
            record = next(audit_chain.link([entry], seq=seq, prev=prev, version=None, key=key,
                                           environment=environment, name=AUDIT))
            digest, mac = record.pop("hash"), record.pop("mac", None)
            inserted = db.execute(
                f"INSERT INTO {AUDIT} (environment, seq, event_id, at, event, host, record, prev, hash, mac) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (environment, seq + 1, event_id, str(record.get("at")), str(record.get("event")), record.get("host"),
                 audit_chain.canonical(record).decode("utf-8"), prev, digest, mac),
            ).fetchone()
            if inserted:
                seq, prev, added = seq + 1, digest, added + 1
    return added


def chain_genesis(environment: str) -> str:
    """``prev`` of the first record the store chains: binds the chain to its environment and table."""
    return audit_chain.genesis(environment, AUDIT)


def _first_prevs(environment: str) -> set[str]:
    """What the first record's ``prev`` may be: the store's own start, or that of an imported file trail."""
    return {chain_genesis(environment), audit_chain.GENESIS, audit_chain.genesis(environment, f"audit_{environment}.jsonl")}


def verify_audit(db, environment: str, key: bytes | None = None) -> tuple[int, dict[str, Any] | None]:
    """Check the environment's chain in the store: ``(records checked, the first problem or None)``.

    With ``key``, every record from the first signed one on must carry the
    MAC that key makes (a record imported from the file trail, the MAC it
    carried there).
    """
    prev, expected, count, signed = None, 1, 0, False
    rows = db.execute(
        f"SELECT seq, at, event, record, prev, hash, mac FROM {AUDIT} WHERE environment = %s ORDER BY seq", (environment,)
    )
    for seq, at, event, text, row_prev, digest, mac in rows:
        try:
            record = json.loads(text)
        except ValueError:
            return count, {"seq": seq, "reason": "its record is not valid JSON (edited)"}
        if seq != expected:
            return count, {"seq": seq, "reason": f"record #{expected} is missing (removed)"}
        if audit_chain.record_hash(record) != digest or record.get("seq") != seq:
            return count, {"seq": seq, "reason": "its content does not match its hash (edited)"}
        if prev is None and row_prev in _first_prevs(environment):
            prev = row_prev  # the chain's start: the store's own, or an imported trail's
        if record.get("prev") != prev or row_prev != prev:
            return count, {"seq": seq, "reason": "it does not follow the record before it (removed, inserted or reordered)"}
        if (record.get("at"), record.get("event"), record.get("environment")) != (at, event, environment):
            return count, {"seq": seq, "reason": "its columns disagree with its hashed record (edited)"}
        if key is not None:
            valid = _signed(key, environment, {**record, "hash": digest}, mac)
            if signed and not valid:
                return count, {"seq": seq, "reason": "it does not carry the MAC of the environment's audit key "
                                                     "(chained by someone without the key)"}
            signed = signed or valid
        prev, expected, count = digest, expected + 1, count + 1
    return count, None


def _signed(key: bytes, environment: str, record: dict[str, Any], mac: str | None) -> bool:
    """True when the record carries the MAC ``key`` makes: the store's, or the file trail's it was imported with."""
    if isinstance(mac, str) and hmac.compare_digest(mac, audit_chain.record_mac(key, environment, AUDIT, record)):
        return True
    return not audit_chain.unsigned(key, environment, f"audit_{environment}.jsonl", record)
