"""Status tracking in Airtable: each run recorded in its environment's own base.

When an environment configures ``AIRTABLE_STATUS_TABLE``, every run that
starts is also written to that table, in the base ``AIRTABLE_STATUS_BASE_ID``
(default ``AIRTABLE_BASE_ID``), with the environment's ``AIRTABLE_API_KEY``
credential, through pyairtable. The table needs these fields (the first is
the primary field): Run, Automation, Environment, Host, Status, Exit code,
Started, Finished, Duration (s), Error class, Error id, Forced, Reason.

If Airtable cannot be reached, or refuses the record, the record is kept in
``<environment tree>/airtable-status-queue.jsonl`` and sent, oldest first,
after the next run. Nothing is lost, and the run's own exit code never
changes because of Airtable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envfence import hookimpl
from envfence.models import EnvPaths, SettingSpec, reveal

QUEUE_FILE = "airtable-status-queue.jsonl"
#: The status table's fields, as ``FakeAirtable.add_table`` and Airtable's
#: "create table" take them: create the table with these to turn tracking on.
STATUS_FIELDS = (
    "Run", "Automation", "Environment", "Host", "Status",
    {"name": "Exit code", "type": "number"}, "Started", "Finished",
    {"name": "Duration (s)", "type": "number"}, "Error class", "Error id",
    {"name": "Forced", "type": "checkbox"}, "Reason",
)
#: Airtable accepts at most this many records in one create request.
BATCH = 10


@hookimpl
def declare_settings() -> list[SettingSpec]:
    """The settings status tracking reads."""
    return [
        SettingSpec("AIRTABLE_STATUS_TABLE", "Airtable table (name or tbl id) that records each run; unset: no tracking", plugin="airtable_status"),
        SettingSpec("AIRTABLE_STATUS_BASE_ID", "base of the status table (default AIRTABLE_BASE_ID)", plugin="airtable_status"),
    ]


def _setting(config, name: str) -> str | None:
    """``name`` read as this environment reads it: its own prefix first, never another's.

    The status record goes to this environment's base through this
    environment's endpoint, with this environment's token.
    """
    value = config.credential(name)
    return None if value is None else str(reveal(value)).strip() or None


def status_fields(session, outcome) -> dict[str, Any]:
    """The Airtable fields of one run; never a secret (the reason is redacted)."""
    return {
        "Run": outcome.run_id,
        "Automation": outcome.automation,
        "Environment": outcome.environment,
        "Host": outcome.metrics.get("host", session.host.hostname),
        "Status": outcome.status,
        "Exit code": outcome.exit_code,
        "Started": outcome.started_at.isoformat(),
        "Finished": outcome.finished_at.isoformat(),
        "Duration (s)": round(outcome.duration, 3),
        "Error class": outcome.error_class or "",
        "Error id": outcome.error_id or "",
        "Forced": outcome.forced,
        "Reason": outcome.reason or "",
    }


def queue_file(session) -> Path | None:
    """Where unsent status records wait, or None without an environment tree."""
    paths = session.paths
    return None if paths is None else paths.base / QUEUE_FILE


def read_queue(tree: EnvPaths, path: Path) -> list[dict[str, Any]]:
    """The records waiting to be sent, oldest first (a damaged line is skipped, not lost: it stays in the file's backup)."""
    import json

    from envfence import files  # only a run that queues a status record reads or writes it

    if files.check_file(tree, path) == "symlink":
        files.ensure_file(tree, path)  # raises the clear refusal naming the link: never read another queue through it
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                _keep_damaged(tree, path, line)
    return records


def _keep_damaged(tree: EnvPaths, path: Path, line: str) -> None:
    from envfence import files  # only a run that queues a status record reads or writes it

    with files.open_append(tree, path.with_suffix(".damaged")) as handle:
        handle.write(line + "\n")


def write_queue(tree: EnvPaths, path: Path, records: list[dict[str, Any]]) -> None:
    """Replace the queue atomically (a crash leaves the old queue or the new one, never half), never through a link."""
    import json

    from envfence import files  # only a run that queues a status record reads or writes it

    if not records:
        files.remove(tree, path)
        return
    files.write_atomic(tree, path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


@hookimpl
def on_run_finish(session, outcome) -> None:
    """Send this run's record, and any queued before it; queue what could not be sent."""
    table_name = _setting(session.config, "AIRTABLE_STATUS_TABLE")
    path = queue_file(session)
    if not table_name or path is None or session.dry_run:
        return
    pending = read_queue(session.paths, path) + [status_fields(session, outcome)]
    logger = session.logger(automation=outcome.automation, run_id=outcome.run_id)
    sent, error = send(session, str(table_name), pending)
    if error is not None:
        logger.warning(session.redactor()(f"Airtable status tracking failed ({type(error).__name__}: {error})"))
    write_queue(session.paths, path, pending[sent:])
    if sent < len(pending):
        logger.warning(f"{len(pending) - sent} status record(s) queued in {path} for the next run")


def send(session, table_name: str, records: list[dict[str, Any]]) -> tuple[int, Exception | None]:
    """Upsert ``records`` in the status table by their Run field, oldest first, in batches.

    Stops at the first batch that fails. Returns how many were sent and the
    error that stopped it (None when all were sent); never raises, so the
    run's result cannot change because of Airtable.
    """
    try:
        from pyairtable import Api
    except ImportError as exc:
        return 0, exc

    from envfence.retry import retry_call

    config = session.config
    token = session.credential("AIRTABLE_API_KEY", by="airtable_status")
    base = _setting(config, "AIRTABLE_STATUS_BASE_ID") or _setting(config, "AIRTABLE_BASE_ID")
    if token is None or not base:
        return 0, LookupError("AIRTABLE_API_KEY and AIRTABLE_STATUS_BASE_ID (or AIRTABLE_BASE_ID) are needed for status tracking")
    endpoint = _setting(config, "AIRTABLE_ENDPOINT_URL")
    # Without AIRTABLE_ENDPOINT_URL, pyairtable's own default (Airtable's API) applies.
    where = {"endpoint_url": str(endpoint)} if endpoint else {}
    api = Api(str(reveal(token)), timeout=(3, 10), retry_strategy=None, **where)
    table = api.table(str(base), table_name)
    sent = 0
    try:
        for start in range(0, len(records), BATCH):
            batch = records[start : start + BATCH]
            # Upserted on the run id: a retry, or a record queued after a timeout that
            # had in fact been written, updates the same row instead of adding one.
            retry_call(table.batch_upsert, [{"fields": record} for record in batch], key_fields=["Run"],
                       typecast=True, idempotent=True, attempts=3, base_delay=0.3, max_delay=2.0)
            sent += len(batch)
    except Exception as exc:  # whatever Airtable or the network did, the rest waits in the queue
        return sent, exc
    finally:
        api.session.close()
    return sent, None
