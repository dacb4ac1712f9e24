"""The ``audit`` plugin: an append-only, hash-chained JSON-lines trail per environment.

Each environment keeps ``<tree>/audit/audit_<environment>.jsonl``, in the
record format of :mod:`envfence.audit_chain`: every record holds the hash of
the record before it and its own hash, and the first record's ``prev`` is
derived from the environment and the file's name, so a record edited,
removed, inserted, or moved from another environment's trail breaks the
chain. A head file beside the trail (``audit_<environment>.head``) holds the
number and hash of the last record an append finished; with an audit key
(from the key ring, :mod:`envfence.keyring`, outside the tree) the head is
signed, so a trail rewritten and re-hashed by someone without the key is found.

The plugin's parts, one job each: :mod:`.trail_files` (where the files are,
opened without following a link), :mod:`.head` (the head and its anchor
line), :mod:`.append` (crash-consistent appends), :mod:`.reading`
(snapshots, streamed records), :mod:`.verify` (the checks), :mod:`.sealing`
(sealing, moving a broken trail aside) and :mod:`.audit_cli` (the commands).
This module holds the hooks. What is and is not detected: ``docs/audit.md``.

Records are kept only for a prepared session (see
:meth:`envfence.Session.prepare`): a dry run and a read-only command leave none.
"""

from __future__ import annotations

import stat

from envfence import hookimpl
from envfence.audit import KEPT_UNPREPARED
from envfence.models import Finding
from envfence.stash import StashKey

from .trail_session import audit_key, has_runs
from .trail_files import head_path, trail_path


#: Events of the session waiting for the event that follows them at once, to be written with it.
FOLLOWING = StashKey[list]()


@hookimpl
def audit_event(session, event) -> None:
    """Append the event to the environment's trail, once the session is prepared.

    Before that the session's audit log holds the events; the first event
    written (``environment.prepared``, or a refused run, ``run.blocked``,
    written at once when the trail exists) takes the held ones first, in order.
    A deferred event that another follows at once (``more_to_come``: a run's
    ``environment.prepared`` before its ``run.started``) waits for it, and
    both are written with one append, one flush.
    """
    if not session.prepared and event.event not in KEPT_UNPREPARED:
        return  # the session's audit log holds it until the session is prepared (its tree is not even computed)
    paths = session.paths
    if paths is None:
        return
    trail = trail_path(paths)
    if not session.prepared and not trail.is_file():
        return  # the session's audit log holds it until the session is prepared
    following = session.stash.setdefault(FOLLOWING, [])
    following.append(event)
    if session.audit_log.more_to_come:
        return
    from envfence import audit_chain

    from .append import append  # only a command that acts appends: read-only ones never load it
    events = [*session.audit_log.release(), *following]
    following.clear()
    common = audit_chain.context(session)
    append(
        paths, [audit_chain.entry(common, e) for e in events],
        key=audit_key(session), context=common, has_runs=lambda: has_runs(session),
    )


@hookimpl
def prepare_environment(session, paths) -> list[Finding]:
    """``envfence init`` in a strict profile creates the environment's audit key (as ``audit keygen`` does) when it has none.

    So a production trail is signed from its first record. A trail already
    signed whose key is missing gets no new key: appends refuse until the
    key is given back. Where a shared store keeps the trail, every host must
    sign with the same key: none is made here, and init says how to give it.
    """
    from envfence import keyring
    from envfence.stash import INIT_REQUESTS

    from .reading import open_snapshot

    if INIT_REQUESTS not in session.stash or not session.profile.strict or paths is None or audit_key(session) is not None:
        return []
    with open_snapshot(paths) as snapshot:
        if snapshot.head is not None and snapshot.head.mac:
            return []
    if session.settings.section("store").get("url"):
        variable = keyring.key_variable("audit", session.settings.naming.prefix(session.environment.name))
        return [Finding("AUDIT_KEY_SHARED", "warning",
                        f"{session.environment.name}'s trail is kept in a shared store, and this host has no audit key: "
                        "its records go unsigned",
                        f"give every host the same key in {variable} (from your secret store), or make one with "
                        f"`envfence --env {session.environment.name} audit keygen` and copy the file to each host",
                        key="audit", plugin="audit")]
    import secrets  # only when a key is made: it loads OpenSSL, which every other run does without

    created = keyring.create(session.root.path, session.environment.name, "audit", secrets.token_hex(32).encode() + b"\n")
    return [Finding("AUDIT_KEY_CREATED", "info",
                    f"created the audit key {created} (mode 600, outside the tree): {session.environment.name}'s trail is signed",
                    "keep it out of version control and out of the reach of whoever may write the trail",
                    key="audit", plugin="audit")]


@hookimpl
def validate(session) -> list[Finding]:
    """The trail's files must stay owner-only (0600)."""
    paths = session.paths
    if paths is None:
        return []
    trail = trail_path(paths)
    findings = []
    for path in (trail, head_path(trail)):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            findings.append(
                Finding(
                    "AUDIT_PERMISSIONS", session.profile.escalate("warning"),
                    f"{path.name} has mode {stat.S_IMODE(path.stat().st_mode):04o}; the audit trail is owner-only (0600)",
                    f"chmod 600 {path}", key=path.name, plugin="audit",
                )
            )
    return findings


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence audit show|verify|anchor|keygen|restart``."""
    from envfence_builtins.audit.audit_cli import audit

    cli.add_command(audit)


@hookimpl(optionalhook=True)
def health_checks(session) -> list[dict] | None:
    """``envfence health``: the trail's hash chain is intact (the ``health`` plugin's hook)."""
    from envfence.errors import EnvfenceError

    from .verify import verify

    if session.paths is None:
        return None
    trail = trail_path(session.paths)
    try:
        verdict = verify(session.paths, key=audit_key(session))
    except EnvfenceError as exc:  # a symlink, a directory, an unreadable file
        return [{"name": "audit", "state": "CRITICAL", "message": f"audit trail unreadable: {exc.message}"}]
    count, problem = verdict.records, verdict.problem
    if problem is None and not verdict.exists:
        return [{"name": "audit", "state": "OK", "message": f"no audit trail yet ({trail.name})"}]
    if problem is None:
        return [{"name": "audit", "state": "OK", "message": f"audit chain intact ({count} record(s))", "value": count}]
    return [{"name": "audit", "state": "CRITICAL", "message": f"audit chain broken at line {problem.get('line')}: {problem['reason']}",
             "value": count}]


@hookimpl(optionalhook=True)
def local_audit_records(session) -> dict | None:
    """The file trail's records, verified first (chain, head, signature), for ``envfence store import`` (the ``store`` plugin's hook).

    :raises ConfigurationError: the trail is broken; it is not copied.
    """
    from envfence.errors import ConfigurationError

    from .reading import records
    from .verify import verify

    paths = session.paths
    if paths is None:
        return None
    trail = trail_path(paths)
    if not trail.is_file():
        return {"trail": None, "records": []}
    verdict = verify(paths, key=audit_key(session), has_runs=lambda: has_runs(session))
    if not verdict.ok:
        problem = verdict.problem or {}
        raise ConfigurationError(
            f"{trail}: the audit trail is broken at record #{problem.get('seq')} ({problem.get('reason')}); it is not imported",
            "run `envfence audit verify`, keep the file as evidence, and import once the cause is understood",
        )
    return {"trail": trail, "records": list(records(paths))}


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``verify_audit_store``: a plugin that keeps a second chain checks it in ``audit verify``."""
    from .audit_hooks import AuditHookspecs

    register(AuditHookspecs)


@hookimpl(optionalhook=True)
def backup_files(session) -> list | None:
    """The trail and its head, read together under the trail's shared lock (the ``backup`` plugin's hook)."""
    from .reading import read_whole

    paths = session.paths
    if paths is None:
        return None
    read = read_whole(paths)
    if read is None:
        return []
    trail = trail_path(paths)
    data, head = read
    return [(trail, lambda: data)] + ([(head_path(trail), lambda: head)] if head is not None else [])


@hookimpl(optionalhook=True)
def verify_restored_trail(session, paths, key) -> dict:
    """The restored trail's chain, head and signature, checked as ``audit verify`` does (the ``backup`` plugin's hook)."""
    from .verify import verify

    verdict = verify(paths, key=key)
    return {"records": verdict.records, "problem": verdict.problem}
