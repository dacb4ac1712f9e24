"""The head beside a trail: the last sealed record's number and hash, signed with the audit key; and its anchor line.

``envfence audit anchor`` prints the signed head as one line to keep
elsewhere; ``envfence audit verify --anchor LINE`` proves the trail still
extends it.
"""

from __future__ import annotations

import json
from pathlib import Path

from envfence import slotted
from envfence.audit_chain import FORMAT, parse_record
from envfence.errors import EnvfenceError, UsageError

ANCHOR_TAG = "envfence-audit-anchor/1"


@slotted.frozen
class Head:
    """What a head file says: the last sealed record's number and hash, and its signature."""

    seq: int
    hash: str
    mac: str | None = None
    environment: str | None = None  #: None in a head written before heads named their trail
    file: str | None = None

    def to_bytes(self) -> bytes:
        data = {"v": FORMAT, "environment": self.environment, "file": self.file, "seq": self.seq, "hash": self.hash}
        if self.mac:
            data["mac"] = self.mac
        return json.dumps(data, sort_keys=True).encode() + b"\n"

    def anchor(self) -> str:
        """The head as one line to keep elsewhere."""
        return f"{ANCHOR_TAG} {self.environment} {self.seq} {self.hash} {self.mac or '-'}"


def parse_head(raw: bytes, path: Path) -> Head:
    """The head file's content.

    :raises EnvfenceError: it is damaged.
    """
    try:
        data = parse_record(raw)
        seq, digest = data["seq"], data["hash"]
        if not isinstance(seq, int) or not isinstance(digest, str):
            raise ValueError
    except (ValueError, KeyError):
        raise EnvfenceError(f"{path} is damaged (not a head)", "run `envfence audit verify` and keep the files as evidence") from None
    return Head(seq, digest, data.get("mac"), data.get("environment"), data.get("file"))


def parse_anchor(line: str) -> Head:
    """An anchor line printed by ``envfence audit anchor``.

    :raises UsageError: it is not one.
    """
    parts = line.split()
    try:
        tag, environment, seq, digest, mac = parts
        if tag != ANCHOR_TAG or len(digest) != 64:
            raise ValueError
        return Head(int(seq), digest, None if mac == "-" else mac, environment)
    except ValueError:
        raise UsageError(
            f"not an anchor line: {line[:120]!r}", f"give the whole line `envfence audit anchor` printed ({ANCHOR_TAG} ENV SEQ HASH MAC)"
        ) from None

