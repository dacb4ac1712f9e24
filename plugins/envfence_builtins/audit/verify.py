"""Verifying an environment's trail, streaming: the chain, its binding to the environment and file, its head, its signature, an anchor.

What is and is not detected: ``docs/audit.md``.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from envfence import slotted
from envfence import audit_chain
from envfence.models import EnvPaths

from .append import ACKNOWLEDGED, LOST, RESTARTED
from .head import Head
from .reading import Snapshot, open_snapshot
from .trail_files import INTERRUPTED, head_path, moved_aside_in_tree


@slotted.define
class Verdict:
    """What ``verify`` found."""

    trail: Path
    exists: bool
    records: int = 0
    problem: dict[str, Any] | None = None  #: ``line``, ``seq`` (when known), ``reason``
    notes: list[str] = slotted.field(factory=list)  #: not tampering, but worth saying
    head: Head | None = None
    signed: bool = False  #: the head's signature was checked with the audit key
    #: The trail was started over by an append because it was gone; nobody acknowledged it yet.
    unacknowledged: str | None = None
    anchored: bool = False  #: an anchor was given and the trail extends it

    @property
    def ok(self) -> bool:
        """True when nothing breaks the trail."""
        return self.problem is None


def verify(paths: EnvPaths, *, key: bytes | None = None, anchor: Head | None = None, has_runs=lambda: False) -> Verdict:
    """Check the trail, streaming: the chain, its binding, its head, its signature, an anchor.

    :param key: the audit key; when given, the head must carry its signature.
    :param anchor: a head kept elsewhere (``audit anchor``) that the trail must still extend.
    :param has_runs: called when the trail is missing: True when the run
        history shows runs, so the trail was removed.
    :raises EnvfenceError: the trail cannot be read (a symlink, a directory, no permission).
    """
    with open_snapshot(paths) as snapshot:
        verdict = Verdict(snapshot.trail, snapshot.fd is not None, head=snapshot.head)
        if snapshot.head_error is not None:
            verdict.problem = _problem(None, None, snapshot.head_error.message)
            return verdict
        if anchor is not None and anchor.environment != paths.environment:
            verdict.problem = _problem(None, None, f"the anchor is for {anchor.environment}, not {paths.environment}")
            return verdict
        _check(snapshot, paths, verdict, key, anchor, has_runs)
    return verdict


def _problem(line: int | None, seq: Any, reason: str) -> dict[str, Any]:
    return {"line": line, "seq": seq, "reason": reason}


def _check(snapshot: Snapshot, paths: EnvPaths, verdict: Verdict, key, anchor, has_runs) -> None:
    head = snapshot.head
    chain = _Chain(paths.environment, snapshot.trail.name, head, key)
    at_head = at_anchor = None
    line = 0
    for raw in snapshot.lines():
        line += 1
        if not raw.endswith(b"\n"):
            if head is not None and head.seq > chain.seq:
                verdict.problem = _problem(line, None, "a sealed record is cut short (the trail was truncated)")
                return
            verdict.notes.append(
                f"line {line} is a record cut short by an interrupted append (never acknowledged); the next append removes it"
            )
            break
        record, reason = chain.follow(raw)
        if reason is not None:
            verdict.problem = _problem(line, record.get("seq") if record else None, reason)
            return
        _note(record, verdict)
        if head is not None and chain.seq == head.seq:
            at_head = chain.prev
        if anchor is not None and chain.seq == anchor.seq:
            at_anchor = chain.prev
    verdict.records = chain.count
    _check_ends(snapshot, paths, verdict, key, anchor, has_runs, chain.seq, at_head, at_anchor)


@slotted.define
class _Chain:
    """Where a streamed check of the chain stands: the last record's hash and number."""

    env: str
    name: str
    head: Head | None
    key: bytes | None
    prev: str | None = None
    seq: int = 0
    count: int = 0
    #: The number of the first record that carries a signature: from it on, every record must.
    signed_from: int | None = None

    def follow(self, raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
        """The next line as a record, and why it breaks the chain (None when it extends it)."""
        try:
            record = audit_chain.parse_record(raw)
            claimed = record["hash"]
        except audit_chain.DuplicateKey as exc:
            return None, f"it names the key {str(exc)!r} twice (edited)"
        except (ValueError, KeyError, TypeError):
            return None, "not a valid record (edited)"
        reason = self._breaks(record, claimed)
        if reason is None:
            self.prev, self.seq, self.count = claimed, record["seq"], self.count + 1
        return record, reason

    def _breaks(self, record: dict[str, Any], claimed: Any) -> str | None:
        env, head = self.env, self.head
        if audit_chain.record_hash(record) != claimed:
            return "its content does not match its hash (edited)"
        if self.prev is None:
            start = audit_chain.GENESIS if "v" not in record else audit_chain.genesis(env, self.name)
            if record.get("prev") != start or record.get("seq") != 1:
                return "it does not start this trail: the file was copied from another environment or file"
        elif record.get("prev") != self.prev or record.get("seq") != self.seq + 1:
            return "it does not follow the record before it (a record was removed, inserted or reordered)"
        if record.get("environment") != env:
            return f"it belongs to {record.get('environment')!r}, not {env}: trails were swapped"
        if self.key is not None and head is not None and record["seq"] > head.seq and audit_chain.unsigned(self.key, env, self.name, record):
            return f"it comes after the head (#{head.seq}) without the audit key's signature: it was added without the key"
        return self._unsigned_after_signed(record)

    def _unsigned_after_signed(self, record: dict[str, Any]) -> str | None:
        """Once a trail is signed, a record without a signature was added without the key (seen even without the key)."""
        head, carries = self.head, isinstance(record.get("mac"), str)
        if carries and self.signed_from is None:
            self.signed_from = record["seq"]
        if carries:
            return None
        if head is not None and head.mac and record["seq"] > head.seq:
            return f"it comes after the signed head (#{head.seq}) without a signature: it was added without the audit key"
        if self.signed_from is not None:
            return f"it has no signature though the trail is signed from record #{self.signed_from}: it was added without the audit key"
        return None


def _note(record: dict[str, Any], verdict: Verdict) -> None:
    """What a trail's start-over and acknowledgement records tell ``verify``."""
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    if record.get("event") == RESTARTED and record.get("seq") == 1:
        if data.get("automatic"):
            verdict.unacknowledged = str(record.get("at"))
        else:
            verdict.notes.append(f"the trail was started over at {record.get('at')}: {data.get('reason')}")
    elif record.get("event") == ACKNOWLEDGED and verdict.unacknowledged:
        verdict.notes.append(f"the trail was lost before {verdict.unacknowledged}; acknowledged: {data.get('reason')}")
        verdict.unacknowledged = None


def _check_ends(snapshot, paths, verdict, key, anchor, has_runs, seq, at_head, at_anchor) -> None:
    env, name, head = paths.environment, snapshot.trail.name, snapshot.head
    if snapshot.fd is None:
        if head is not None:
            verdict.problem = _problem(None, None, f"the trail is missing but its head says record {head.seq}: it was removed")
        elif moved_aside_in_tree(paths, snapshot.trail):
            verdict.problem = _problem(None, None, INTERRUPTED)
        elif has_runs():
            verdict.problem = _problem(None, None, "the trail is missing although the run history shows runs: it was removed")
        return
    if head is None:
        if verdict.records:
            verdict.problem = _problem(None, None, f"its head {head_path(snapshot.trail).name} is missing: it was removed")
        return
    if head.environment not in (None, env) or head.file not in (None, name):
        verdict.problem = _problem(None, None, f"its head belongs to {head.environment}'s {head.file}: heads were swapped")
        return
    if head.seq > seq:
        verdict.problem = _problem(
            None, head.seq, f"the trail ends at record {seq}, but its head says record {head.seq}: records were removed from the end"
        )
        return
    if head.seq and at_head != head.hash:
        verdict.problem = _problem(None, head.seq, f"record {head.seq} does not match the head: the trail was rewritten")
        return
    if key is not None:
        if not head.mac or not hmac.compare_digest(head.mac, audit_chain.sign(key, env, name, head.seq, head.hash)):
            what = "is not signed" if not head.mac else "has a signature the audit key does not make"
            verdict.problem = _problem(None, head.seq, f"its head {what}: the trail or its head was rewritten without the audit key")
            return
        verdict.signed = True
    if seq > head.seq:
        verdict.notes.append(
            f"{seq - head.seq} record(s) after the head (#{head.seq}): an append was interrupted before sealing them; the next append seals them"
        )
    if anchor is not None:
        if anchor.seq > seq:
            verdict.problem = _problem(None, anchor.seq, f"the trail ends at record {seq}, before the anchor's record {anchor.seq}: records were removed")
        elif anchor.seq and at_anchor != anchor.hash:
            verdict.problem = _problem(None, anchor.seq, f"record {anchor.seq} differs from the anchor: the trail was rewritten")
        elif anchor.mac and key is not None and not hmac.compare_digest(anchor.mac, audit_chain.sign(key, env, name, anchor.seq, anchor.hash)):
            verdict.problem = _problem(None, anchor.seq, "the anchor's signature is not the audit key's: it was not made by `audit anchor`")
        else:
            verdict.anchored = True
    if verdict.problem is None and verdict.unacknowledged:
        verdict.problem = _problem(
            1, 1, f"{LOST}; a new trail started at {verdict.unacknowledged}: the earlier records are gone "
            "(acknowledge with `envfence audit restart --reason TEXT`)",
        )
