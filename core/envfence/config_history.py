"""``envfence config history [KEY]``: how an environment's configuration changed, and what changed it.

Two timelines, each a list of states of the environment's file layers:

- **git**: the commits that touched the tracked ones (``git log``, newest
  ``limit``), each file as the commit holds it;
- **snapshots**: the environment's snapshots (:mod:`envfence.snapshots`),
  then the files on disk now.

Each change between two states of a timeline (a key added, removed or given
another value) is an event, tied to what produced the new state through the
ledger of :mod:`envfence.config_versions`: the migration step or deployment
whose recorded files match the commit's or snapshot's (a git commit is also
tied to the deployments that shipped it). Only this environment's keys are
shown (plain ones and its own prefixed ones), and the caller's ``shown``
decides how a value looks: values are never returned as they are.
"""

from __future__ import annotations

import datetime as _dt
import io
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterable

from . import config_versions, snapshots
from .digests import sha256_hex

State = dict[str, bytes | None]  #: source -> the file's content, or None when absent


def _parse(content: bytes | None) -> dict[str, str]:
    from dotenv import dotenv_values

    if content is None:
        return {}
    values = dotenv_values(stream=io.StringIO(content.decode("utf-8-sig", "replace")), interpolate=False)
    return {k: v if v is not None else "" for k, v in values.items()}


def _digests(state: State) -> dict[str, str | None]:
    return {s: None if c is None else sha256_hex(c) for s, c in state.items()}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_states(session: Any, limit: int = 100) -> list[tuple[dict, State]]:
    """``(commit info, state)`` for each commit touching the file layers, oldest first; [] outside a git work tree."""
    root = session.root.path
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or top.returncode != 0:
        return []
    base = Path(top.stdout.decode().strip())
    paths = {source: str(path.resolve().relative_to(base.resolve())) for source, path in config_versions.file_layers(session).items()
             if path.resolve().is_relative_to(base.resolve())}
    log = _git(root, "log", f"--max-count={limit}", "--format=%H%x1f%ct%x1f%an%x1f%s", "--", *paths.values())
    if log is None or log.returncode != 0:
        return []
    found = []
    for line in reversed(log.stdout.decode("utf-8", "replace").splitlines()):
        commit, stamp, author, subject = (line.split("\x1f") + ["", "", ""])[:4]
        state: State = {}
        for source, rel in paths.items():
            shown = _git(root, "show", f"{commit}:{rel}")
            state[source] = shown.stdout if shown is not None and shown.returncode == 0 else None
        when = _dt.datetime.fromtimestamp(int(stamp or 0), _dt.timezone.utc).isoformat()
        found.append(({"source": "git", "ref": commit, "when": when, "who": author, "note": subject}, state))
    return found


def snapshot_states(session: Any) -> list[tuple[dict, State]]:
    """``(snapshot info, state)`` for each snapshot, oldest first, then the files on disk now."""
    found = []
    for snap in reversed(snapshots.listing(session)):
        try:
            state = snapshots.contents(session, snap)
        except Exception:  # a damaged copy is left out of the story, not fatal to it
            continue
        found.append(({"source": "snapshot", "ref": snap.id, "when": snap.created, "who": "", "note": snap.note}, state))
    now: State = {}
    for source, path in config_versions.file_layers(session).items():
        try:
            now[source] = path.read_bytes()
        except OSError:
            now[source] = None
    found.append(({"source": "files", "ref": "now", "when": _dt.datetime.now(_dt.timezone.utc).isoformat(), "who": "",
                   "note": "the files on disk"}, now))
    return found


def _ties(info: dict, state: State, ledger: list[dict]) -> list[str]:
    """What produced ``state``: for a snapshot or the files, the ledger entries of its very version; for a
    commit, the migration steps whose changed files it holds as they left them, and the deployments that shipped it."""
    digests = _digests(state)
    version = config_versions.version_of(digests)
    tied: list[str] = []
    for entry in ledger:
        if info["source"] == "git":
            changed = entry.get("changed") or []
            hit = (entry.get("by") == "deployment" and entry.get("commit") == info["ref"]) or (
                bool(changed) and all(digests.get(s) is not None and digests.get(s) == entry.get("files", {}).get(s) for s in changed))
        else:
            hit = entry.get("version") == version
        if hit and config_versions.label(entry) not in tied:
            tied.append(config_versions.label(entry))
    return tied


def _changes(before: State, after: State, keep: Callable[[str], bool]) -> list[dict]:
    changes = []
    for source in [*after, *(s for s in before if s not in after)]:
        old, new = _parse(before.get(source)), _parse(after.get(source))
        for key in sorted(set(old) | set(new)):
            if not keep(key) or old.get(key) == new.get(key):
                continue
            action = "added" if key not in old else "removed" if key not in new else "changed"
            changes.append({"file": source, "key": key, "action": action, "old": old.get(key), "new": new.get(key)})
    return changes


def history(session: Any, key: str | None, shown: Callable[[str, str | None], str | None], limit: int = 100) -> list[dict]:
    """Every change of the environment's configuration (of ``key`` alone when given), oldest first, values ``shown``."""
    naming, env = session.settings.naming, session.environment.name
    plain = naming.split(key)[1] if key else None

    def keep(name: str) -> bool:
        owner, bare = naming.split(name)
        return owner in (None, env) and (plain is None or bare == plain)

    ledger = config_versions.entries(session)
    commits = git_states(session, limit)
    # A timeline's first state is where it starts, not a change: the first snapshot, or the oldest of `limit` commits
    # when git has older ones (a project's first commit is the keys' first appearance, and is told).
    events = _events(commits, keep, ledger, shown, baseline=len(commits) >= limit)
    events += _events(snapshot_states(session), keep, ledger, shown, baseline=True)
    return sorted(events, key=lambda e: e["when"])


def _events(timeline: Iterable[tuple[dict, State]], keep, ledger: list[dict], shown, baseline: bool) -> list[dict]:
    events: list[dict] = []
    before: State | None = None
    for info, state in timeline:
        changes = [] if before is None and baseline else _changes(before or {}, state, keep)
        before = state
        if not changes:
            continue
        for c in changes:
            c["old"], c["new"] = shown(c["key"], c["old"]), shown(c["key"], c["new"])
        events.append({**info, "version": config_versions.version_of(_digests(state)), "tied_to": _ties(info, state, ledger),
                       "changes": changes})
    return events
