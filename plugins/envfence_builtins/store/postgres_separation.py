"""Environments kept apart inside the shared store: one role per environment, row-level security on every table.

The settings map each environment to the role(s) it connects as, and name
the roles that may only read every environment (for ``status --compare``)::

    [store]
    url = "postgresql://envfence_prod@db.internal/envfence"
    readers = ["envfence_reader"]

    [store.roles]
    production = "envfence_prod"
    development = "envfence_dev"

``envfence store init`` (as the owning role) turns row-level security on for
every table that holds an environment's rows, and gives each role exactly
what :func:`statements` lists: the GRANTs its environment needs and a policy
that lets it see and write only rows of that environment. A row of another
environment is invisible to it, and writing one is refused by the database
(``new row violates row-level security policy``). Readers get SELECT and a
policy that shows every row. The table owner is not bound by the policies:
envfence never runs as it.

``envfence store check`` proves the separation as the role envfence runs
as: it tries to add a row of every other environment to each table (rolled
back whatever happens) and expects each to be refused (:func:`probe`).
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Mapping

from envfence import slotted
from envfence.errors import ConfigurationError

from envfence_builtins.store.postgres_schema import AUDIT, QUEUE, RUNS, STATE, VERSIONS

#: The tables that hold rows of one environment each (an ``environment`` column), kept apart by policies.
SEPARATED = (RUNS, AUDIT, STATE, QUEUE)
#: The columns a runtime role may change in a run's row: a running run is finished in place, nothing else.
RUN_FINISH_COLUMNS = ("finished_at", "status", "exit_code", "error_class", "error_id", "duration", "cpu_seconds", "peak_memory_kb",
                      "measures")
#: The prefix of every policy envfence creates (policies of other names are left alone).
POLICY_PREFIX = "envfence_"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@slotted.frozen
class Separation:
    """Which roles write which environment, and which roles only read."""

    roles: Mapping[str, tuple[str, ...]]  #: environment -> its runtime roles
    readers: tuple[str, ...] = ()

    @property
    def declared(self) -> bool:
        """True when at least one environment has its role."""
        return bool(self.roles)


def from_settings(table: Mapping[str, Any], environments, source: str) -> Separation:
    """The separation ``[store] roles`` and ``readers`` declare, checked.

    :raises ConfigurationError: an unknown environment, a role name that is
        not a plain PostgreSQL name, or one role given to two environments
        (it could then write both); the message names the key.
    """
    raw = table.get("roles", {}) or {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{source}: [store] roles must be a table", '[store.roles]\nproduction = "envfence_prod"')
    roles: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for environment, given in raw.items():
        if environment not in environments:
            raise ConfigurationError(f"{source}: [store.roles] names {environment!r}, which is not a declared environment",
                                     f"use one of: {', '.join(sorted(environments))}")
        names = (given,) if isinstance(given, str) else tuple(given) if isinstance(given, list) else None
        if not names:
            raise ConfigurationError(f"{source}: [store.roles] {environment} must be a role name or a list of them",
                                     f'{environment} = "envfence_{environment[:4]}"')
        for name in names:
            _check_name(name, f"[store.roles] {environment}", source)
            if name in seen:
                raise ConfigurationError(
                    f"{source}: [store.roles] gives the role {name} to {seen[name]} and {environment}; it could write both",
                    "give each environment its own role")
            seen[name] = environment
        roles[environment] = names
    readers = table.get("readers", []) or []
    if isinstance(readers, str):
        readers = [readers]
    if not isinstance(readers, list):
        raise ConfigurationError(f"{source}: [store] readers must be a list of role names", 'readers = ["envfence_reader"]')
    for name in readers:
        _check_name(name, "[store] readers", source)
        if name in seen:
            raise ConfigurationError(f"{source}: [store] readers names {name}, which writes {seen[name]}",
                                     "a reader is a role of its own that only reads")
    return Separation(roles, tuple(readers))


def _check_name(name: Any, key: str, source: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(f"{source}: {key}: {name!r} is not a plain role name",
                                 "use lower-case letters, digits and _ (e.g. envfence_prod)")


def _ident(name: str) -> str:
    """A policy's name: plain when it can be, else quoted (an environment named ``pre-prod``)."""
    return name if _NAME.match(name) else '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def statements(separation: Separation) -> list[str]:
    """The SQL ``store init`` runs for ``separation``, in order: what docs/several-machines.md shows.

    Every statement may run again: the roles' privileges are revoked and
    envfence's policies dropped (:func:`apply`) before these recreate them.
    """
    tables = ", ".join(SEPARATED)
    out = [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;" for t in SEPARATED]
    for environment, roles in separation.roles.items():
        who, env = ", ".join(roles), _literal(environment)
        out += [
            f"REVOKE ALL ON {VERSIONS}, {tables} FROM {who};",
            f"GRANT SELECT ON {VERSIONS} TO {who};",
            f"GRANT SELECT, INSERT ON {RUNS}, {AUDIT} TO {who};",
            f"GRANT UPDATE ({', '.join(RUN_FINISH_COLUMNS)}) ON {RUNS} TO {who};",
            f"GRANT SELECT, INSERT, UPDATE ON {STATE}, {QUEUE} TO {who};",
        ]
        out += [f"CREATE POLICY {_ident(POLICY_PREFIX + environment)} ON {t} TO {who} "
                f"USING (environment = {env}) WITH CHECK (environment = {env});" for t in SEPARATED]
    if separation.readers:
        who = ", ".join(separation.readers)
        out += [f"REVOKE ALL ON {VERSIONS}, {tables} FROM {who};", f"GRANT SELECT ON {VERSIONS}, {tables} TO {who};"]
        out += [f"CREATE POLICY {POLICY_PREFIX}read_all ON {t} FOR SELECT TO {who} USING (true);" for t in SEPARATED]
    return out


def apply(db, separation: Separation) -> list[str]:
    """Create the separation in the database (inside the caller's transaction); returns the statements run.

    :raises ConfigurationError: a role the settings name does not exist (a
        superuser creates it; envfence's owning role cannot).
    """
    named = [r for roles in separation.roles.values() for r in roles] + list(separation.readers)
    existing = {r for (r,) in db.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (named,))}
    missing = [r for r in named if r not in existing]
    if missing:
        raise ConfigurationError(
            f"the role(s) {', '.join(missing)} named in [store] do not exist in the database",
            f"as a superuser: {'; '.join(f'CREATE ROLE {r} LOGIN PASSWORD ...' for r in missing)}; then run `envfence store init` again",
        )
    owner = db.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (RUNS,)).fetchone()[0]
    if owner in named:
        raise ConfigurationError(f"the role {owner} owns the store's tables, and row-level security does not bind an owner",
                                 "let another role own the tables (store init runs as it) and name only runtime roles in [store]")
    for table, policy in db.execute(
        "SELECT tablename, policyname FROM pg_policies WHERE tablename = ANY(%s) AND policyname LIKE %s",
        (list(SEPARATED), POLICY_PREFIX + "%"),
    ).fetchall():
        db.execute(f"DROP POLICY {_ident(policy)} ON {table}")
    done = statements(separation)
    for statement in done:
        db.execute(statement)
    return done


def _probe_rows(environment: str) -> dict[str, tuple[str, tuple]]:
    """One row of ``environment`` for each separated table: what :func:`probe` tries to add."""
    mark = "envfence-check-" + secrets.token_hex(6)
    return {
        RUNS: (f"INSERT INTO {RUNS} (run_id, automation, environment, started_at, finished_at, status, exit_code)"
               " VALUES (%s, 'envfence-check', %s, now(), now(), 'running', -1)", (mark, environment)),
        AUDIT: (f"INSERT INTO {AUDIT} (environment, seq, event_id, at, event, record, prev, hash)"
                " VALUES (%s, -1, %s, '', 'store.check', '{}', '', '')", (environment, mark)),
        STATE: (f"INSERT INTO {STATE} (environment, name, value) VALUES (%s, %s, '{{}}')", (environment, mark)),
        QUEUE: (f"INSERT INTO {QUEUE} (environment, route, event_id, provider, automation, payload, headers, received_at,"
                " status, max_attempts, next_attempt_at) VALUES (%s, '/envfence-check', %s, 'envfence-check', 'envfence-check',"
                " '', '{}', 0, 'dropped', 0, 0)", (environment, mark)),
    }


def probe(db, environment: str, others: list[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Try, as the connected role, to write rows of each of ``others`` and to read rows not of ``environment``.

    Every write is rolled back, refused or not. Returns, per table, what
    happened (``refused`` is the answer wanted, ``allowed`` a missing
    separation, else the database's error), and the problems found.
    """
    import psycopg

    results: dict[str, dict[str, str]] = {t: {} for t in SEPARATED}
    problems = []
    for table in SEPARATED:
        for other in others:
            query, args = _probe_rows(other)[table]
            try:
                with db.transaction(force_rollback=True):
                    db.execute(query, args)
                results[table][other] = "allowed"
                problems.append(f"the role can add {other}'s rows to {table}: environments are not kept apart there "
                                "(declare [store.roles] and run `envfence store init` as the owning role)")
            except psycopg.errors.InsufficientPrivilege:
                results[table][other] = "refused"
            except psycopg.Error as exc:
                results[table][other] = f"error: {type(exc).__name__}"
        try:
            seen = db.execute(f"SELECT count(*) FROM {table} WHERE environment <> %s", (environment,)).fetchone()[0]
        except psycopg.errors.InsufficientPrivilege:
            seen = 0
        if seen:
            problems.append(f"the role reads {seen} row(s) of other environments in {table}: environments are not kept apart "
                            "(declare [store.roles] and run `envfence store init` as the owning role)")
    return results, problems
