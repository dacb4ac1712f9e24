"""The session's audit log: the one place audit events are built, held and sent.

Every event goes to the ``audit_event`` plugins as it happens, its data
redacted once here, when it is first read (a session that reads no event, such as
``detect``'s, never builds the redactor nor asks the plugins for their secret shapes). Until the session is prepared (its tree exists, see
:meth:`envfence.Session.prepare`) the log also holds the events in
:attr:`AuditLog.held`: a plugin that persists events writes nothing before
then, and when it writes (the first event of the prepared session,
``environment.prepared``, or a refusal worth keeping at once) it takes the
held ones with :meth:`AuditLog.release` and writes them first, in order. A
dry-run session sends nothing: its events stay held.

An event that need not reach the disk before anything else happens (a run's
``environment.prepared``: the run's own ``run.started`` follows before the
job starts) is *deferred* (:meth:`AuditLog.defer`): it is sent just before
the next event, with :attr:`AuditLog.more_to_come` set while it is, so a
writer may take both with one flush; :meth:`AuditLog.flush` sends it when no
event follows (a run that could not start).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from .errors import EnvfenceError
from .hookcalls import PluginFailed
from .models import AuditEvent


#: Events a plugin writes at once even for a session that is not prepared, when the
#: trail already exists (it is never created for them): a refused run is
#: worth a record, and its session is never prepared; so are a run marked
#: abandoned and a damaged history moved aside by ``status`` or ``list``.
#: ``config.read`` too: a read-only command prepares nothing, yet the trail it finds keeps who read what.
KEPT_UNPREPARED = ("run.blocked", "run.abandoned", "history.moved_aside", "config.read")


class AuditLog:
    """The audit events of one session."""

    def __init__(self, session: Any, dry_run: bool = False) -> None:
        self._session = session
        self.dry_run = dry_run
        #: Events recorded before the session was prepared (every event of a dry run).
        self.held: list[AuditEvent] = []
        self._released = False
        #: Events that go out with the next one (:meth:`defer`).
        self.deferred: list[AuditEvent] = []
        #: True while a deferred event is sent: the event after it follows at once.
        self.more_to_come = False

    def release(self) -> list[AuditEvent]:
        """Hand the held events to the plugin writing the event being sent; the log holds them no longer."""
        earlier, self.held = self.held, []
        self._released = True
        return earlier

    def emit(self, event: str, data: dict[str, Any]) -> AuditEvent:
        """Build ``event`` with ``data`` (redacted) and send it to the ``audit_event`` plugins, after any deferred ones.

        :raises EnvfenceError: a plugin could not record it: an action whose
            trail cannot be kept does not go ahead.
        """
        record = self._record(event, data)
        if self.dry_run:
            self.held.append(record)
            return record
        self._send_deferred(last=False)
        self._send(record)
        return record

    def defer(self, event: str, data: dict[str, Any]) -> AuditEvent:
        """Build ``event`` and keep it until the next event is sent, or :meth:`flush`; the caller makes sure one of them comes."""
        record = self._record(event, data)
        (self.held if self.dry_run else self.deferred).append(record)
        return record

    def flush(self) -> None:
        """Send the deferred events now (no event follows them).

        :raises EnvfenceError: a plugin could not record them.
        """
        self._send_deferred(last=True)

    def _record(self, event: str, data: dict[str, Any]) -> AuditEvent:
        session = self._session
        return AuditEvent(event=event, environment=session.environment.name, data=MaskedData(data, session.redactor))

    def _send_deferred(self, last: bool) -> None:
        deferred, self.deferred = self.deferred, []
        for n, record in enumerate(deferred, 1):
            self.more_to_come = not (last and n == len(deferred))
            try:
                self._send(record)
            finally:
                self.more_to_come = False

    def _send(self, record: AuditEvent) -> None:
        session = self._session
        self._released = False
        try:
            session.plugins.audit_event(session=session, event=record)
        except PluginFailed as exc:
            raise EnvfenceError(
                f"the audit trail could not record {record.event}: {exc.message}",
                "check the environment's tree and its permissions (envfence check)",
            ) from None
        if not session.prepared and not self._released:
            self.held.append(record)


class MaskedData(Mapping[str, Any]):
    """An event's data, its secrets masked the first time anyone reads it (a writer, a plugin, a test)."""

    def __init__(self, data: Mapping[str, Any], redactor: Callable[[], Any]) -> None:
        """:param redactor: gives the session's redactor, asked for only when the data is first read: a
            session whose events nobody reads (a read-only command's) never builds one."""
        self._raw: Mapping[str, Any] | None = dict(data)
        self._redactor = redactor
        self._masked: dict[str, Any] = {}

    def _data(self) -> dict[str, Any]:
        if self._raw is not None:
            self._masked, self._raw = self._redactor().data(self._raw), None
        return self._masked

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())
