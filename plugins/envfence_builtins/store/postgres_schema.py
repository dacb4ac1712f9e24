"""The shared store's tables, their versioned migrations, and the check of a database against them.

Each migration has a number; ``envfence_schema`` records the ones applied.
Applying them takes a transaction-level advisory lock, so two hosts running
``envfence store init`` at once apply each migration once. The audit table is
append-only twice over: the role envfence runs as is granted only SELECT and
INSERT on it (see docs/several-machines.md), and a trigger refuses UPDATE,
DELETE and TRUNCATE even for its owner.
"""

from __future__ import annotations

from typing import Any

from envfence import slotted

RUNS = "envfence_runs"
AUDIT = "envfence_audit"
VERSIONS = "envfence_schema"
STATE = "envfence_state"
QUEUE = "envfence_webhook_events"

#: The advisory lock key that serialises migrations (any constant no other tool uses).
MIGRATION_LOCK = 0x656E7666_00000001


@slotted.frozen
class Migration:
    """One step of the schema."""

    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "run history, the audit trail",
        f"""
        CREATE TABLE {RUNS} (
            run_id text PRIMARY KEY,
            automation text NOT NULL,
            environment text NOT NULL,
            host text,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            status text NOT NULL,
            exit_code integer NOT NULL,
            error_class text,
            error_id text,
            duration double precision,
            cpu_seconds double precision,
            peak_memory_kb bigint,
            forced boolean NOT NULL DEFAULT false,
            reason text
        );
        CREATE INDEX {RUNS}_by_environment ON {RUNS} (environment, started_at DESC);
        CREATE INDEX {RUNS}_by_automation ON {RUNS} (environment, automation, started_at DESC);

        -- One hash chain per environment. `record` is the canonical JSON the
        -- hash covers; the other columns repeat parts of it for queries, and
        -- `audit verify` checks that they agree.
        CREATE TABLE {AUDIT} (
            environment text NOT NULL,
            seq bigint NOT NULL,
            event_id text NOT NULL UNIQUE,
            at text NOT NULL,
            event text NOT NULL,
            host text,
            record text NOT NULL,
            prev text NOT NULL,
            hash text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (environment, seq)
        );
        CREATE FUNCTION {AUDIT}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{AUDIT} is append-only: records are never changed or removed';
        END $$;
        CREATE TRIGGER {AUDIT}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {AUDIT}
            FOR EACH STATEMENT EXECUTE FUNCTION {AUDIT}_append_only();
        """,
    ),
    Migration(
        2,
        "state shared by every host (alert incidents)",
        f"""
        CREATE TABLE {STATE} (
            environment text NOT NULL,
            name text NOT NULL,
            value text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (environment, name)
        );
        """,
    ),
    Migration(
        3,
        "the webhook queue",
        f"""
        CREATE TABLE {QUEUE} (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            environment text NOT NULL,
            route text NOT NULL,
            event_id text NOT NULL,
            provider text NOT NULL,
            event_type text,
            automation text NOT NULL,
            payload bytea NOT NULL,
            headers text NOT NULL,
            received_at double precision NOT NULL,
            status text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL,
            next_attempt_at double precision NOT NULL,
            claimed_by text,
            run_id text,
            last_error text,
            finished_at double precision,
            UNIQUE (environment, route, event_id)
        );
        CREATE INDEX {QUEUE}_due ON {QUEUE} (environment, status, next_attempt_at);
        """,
    ),
    Migration(
        4,
        "running runs finished in place, claims stamped with their time, audit records signed",
        f"""
        -- A run is recorded when it starts (status 'running') and finished in place once;
        -- a finished run is never changed again, even by its owner.
        CREATE FUNCTION {RUNS}_finished_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status <> 'running' OR NEW.run_id <> OLD.run_id OR NEW.environment <> OLD.environment THEN
                RAISE EXCEPTION 'a finished run is never changed (run %)', OLD.run_id;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER {RUNS}_finished_once BEFORE UPDATE ON {RUNS}
            FOR EACH ROW EXECUTE FUNCTION {RUNS}_finished_once();
        CREATE INDEX {RUNS}_running ON {RUNS} (environment) WHERE status = 'running';
        -- When a worker claimed an event: a claim older than the server's start lost its worker's lock in the restart.
        ALTER TABLE {QUEUE} ADD COLUMN claimed_at timestamptz;
        -- An event id is accepted once per environment, whatever the route (replay to another route refused).
        CREATE UNIQUE INDEX {QUEUE}_once ON {QUEUE} (environment, event_id);
        -- The HMAC of each record with its environment's audit key (NULL where the environment has none).
        ALTER TABLE {AUDIT} ADD COLUMN mac text;
        """,
    ),
    Migration(
        5,
        "a run shown abandoned while its database was away is finished by its own end",
        f"""
        -- 'abandoned' is another host's reading of a run whose lock it saw free (the lock is lost when the
        -- database restarts mid-run): the run's own end, arriving later, still finishes it.
        CREATE OR REPLACE FUNCTION {RUNS}_finished_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status NOT IN ('running', 'abandoned') OR NEW.run_id <> OLD.run_id
                    OR NEW.environment <> OLD.environment THEN
                RAISE EXCEPTION 'a finished run is never changed (run %)', OLD.run_id;
            END IF;
            RETURN NEW;
        END $$;
        """,
    ),
    Migration(
        6,
        "what jobs report kept with their runs",
        f"""
        -- The business metrics, step times, retries and disk sample of a run, as the JSON the local history keeps.
        ALTER TABLE {RUNS} ADD COLUMN measures text;
        -- A role that may finish a run (granted by hand, not through [store.roles]) may finish it with its measures.
        DO $$
        DECLARE grantee text;
        BEGIN
            FOR grantee IN SELECT DISTINCT p.grantee FROM information_schema.column_privileges p
                    WHERE p.table_name = '{RUNS}' AND p.column_name = 'finished_at' AND p.privilege_type = 'UPDATE'
                      AND p.grantee NOT IN ('PUBLIC', current_user) LOOP
                EXECUTE format('GRANT UPDATE (measures) ON {RUNS} TO %I', grantee);
            END LOOP;
        END $$;
        """,
    ),
)

LATEST = MIGRATIONS[-1].version

#: What the runtime role needs on each table, and what it must not have.
NEEDED = {VERSIONS: ("SELECT",), RUNS: ("SELECT", "INSERT", "UPDATE"), AUDIT: ("SELECT", "INSERT"), STATE: ("SELECT", "INSERT", "UPDATE"),
          QUEUE: ("SELECT", "INSERT", "UPDATE")}
FORBIDDEN = {AUDIT: ("UPDATE", "DELETE", "TRUNCATE"), RUNS: ("DELETE", "TRUNCATE")}


def current_version(db) -> int | None:
    """The highest migration applied, 0 for an empty schema table, None when the store was never initialised."""
    exists = db.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSIONS,)).fetchone()[0]
    if not exists:
        return None
    return db.execute(f"SELECT coalesce(max(version), 0) FROM {VERSIONS}").fetchone()[0]


def migrate(db, create: bool) -> list[Migration]:
    """Apply every migration the database lacks, in order, in one transaction.

    :param create: create the version table when missing (``store init``);
        ``store migrate`` passes False after checking the store was initialised.
    :returns: the migrations applied now (empty when already up to date).
    """
    applied = []
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if create:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSIONS} (version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
        version = current_version(db) or 0
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            db.execute(migration.sql)
            db.execute(f"INSERT INTO {VERSIONS} (version, description) VALUES (%s, %s)", (migration.version, migration.description))
            applied.append(migration)
    return applied


_HAS = {"SELECT": "has_any_column_privilege", "INSERT": "has_any_column_privilege", "UPDATE": "has_any_column_privilege",
        "DELETE": "has_table_privilege", "TRUNCATE": "has_table_privilege"}


def privileges(db) -> dict[str, dict[str, bool]]:
    """For each table, which privileges the connected role holds."""
    result: dict[str, dict[str, bool]] = {}
    for table in NEEDED:
        exists = db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        wanted = (*NEEDED[table], *FORBIDDEN.get(table, ()))
        # A privilege on some columns counts (a run's row may be finished in place, nothing more).
        result[table] = {
            p: bool(exists and db.execute(f"SELECT {_HAS[p]}(%s, %s)", (table, p)).fetchone()[0])
            for p in wanted
        }
    return result


def check(db) -> dict[str, Any]:
    """The store's state for ``store check``: version, migrations pending, privileges and problems."""
    problems: list[str] = []
    warnings: list[str] = []
    import psycopg

    try:
        version, readable = current_version(db), True
    except psycopg.errors.InsufficientPrivilege:  # reported with the other privileges below
        version, readable = None, False
    if readable and version is None:
        problems.append("the store was never initialised: run `envfence store init` (as the owning role)")
    elif version is not None and version < LATEST:
        problems.append(f"the schema is at version {version}, envfence needs {LATEST}: run `envfence store migrate`")
    elif version is not None and version > LATEST:
        problems.append(f"the schema is at version {version}, newer than this envfence ({LATEST}): upgrade envfence")
    granted = privileges(db) if version or not readable else {}
    for table, held in granted.items():
        for privilege in NEEDED[table]:
            if not held[privilege]:
                problems.append(f"the role cannot {privilege} {table}: GRANT {privilege} ON {table} TO <role>")
        changeable = [p for p in FORBIDDEN.get(table, ()) if held[p]]
        if changeable:
            warnings.append(
                f"the role may {'/'.join(changeable)} {table} (it owns it, or was granted it); "
                "run envfence as a role with only SELECT and INSERT on it"
            )
    return {
        "version": version,
        "latest": LATEST,
        "migrated": version == LATEST,
        "privileges": granted,
        "problems": problems,
        "warnings": warnings,
    }
