"""A real PostgreSQL for the store's tests: one cluster per test session, one database per test.

The cluster comes from the machine's own ``initdb`` and ``pg_ctl`` (run as
the ``postgres`` user when the tests run as root), in a temporary directory
on a free port, and is removed at the end. Without the binaries these tests
are skipped with a message saying how to get them.
"""

from __future__ import annotations

import itertools
import secrets

import pytest

#: The role that owns the tables (runs `envfence store init`) and the role envfence runs as.
OWNER, OWNER_PASSWORD = "envfence_owner", secrets.token_hex(8)
APP, APP_PASSWORD = "envfence_app", "app-pw-" + secrets.token_hex(6)
#: Another environment's runtime role (environments never share a secret), and a role that only reads.
OTHER, OTHER_PASSWORD = "envfence_other", "other-pw-" + secrets.token_hex(6)
READER, READER_PASSWORD = "envfence_reader", "reader-pw-" + secrets.token_hex(6)

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (:class:`~envfence_builtins.store.postgres_cluster.TemporaryPostgres`)."""
    from envfence_builtins.store.postgres_cluster import HOW_TO_GET, PostgresUnavailable, TemporaryPostgres

    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip(f"psycopg is not installed: pip install 'envfence[postgres]' ({HOW_TO_GET})")
    try:
        server = TemporaryPostgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        server.execute(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}'")
        for role, password in ((APP, APP_PASSWORD), (OTHER, OTHER_PASSWORD), (READER, READER_PASSWORD)):
            server.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        yield server
    finally:
        server.remove()


@pytest.fixture
def store_db(postgres):
    """A fresh database owned by the owner role; returns a namespace of URLs (``owner``, ``app``, ``superuser``, ``url``)."""
    import types

    name = f"envfence_t{next(_numbers)}"
    postgres.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    yield types.SimpleNamespace(
        name=name,
        owner=postgres.url_for(OWNER, OWNER_PASSWORD, name),
        app=postgres.url_for(APP, APP_PASSWORD, name),
        other=postgres.url_for(OTHER, None, name),
        reader=postgres.url_for(READER, READER_PASSWORD, name),
        superuser=postgres.url_for("postgres", postgres.password, name),
        url=postgres.url_for(APP, None, name),  # what [store] url holds: no password
        server=postgres,
    )
    if postgres.port and (postgres.data / "postmaster.pid").exists():
        postgres.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def roles(development: str = APP, production: str = OTHER, readers: tuple[str, ...] = (READER,)) -> str:
    """``[store] readers`` and ``[store.roles]`` as TOML (after a ``[store]`` table's other keys): each environment its role."""
    listed = ", ".join(f'"{r}"' for r in readers)
    return f'readers = [{listed}]\n\n[store.roles]\ndevelopment = "{development}"\nproduction = "{production}"\n'


def free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (each socket held until all are chosen, so none is handed out twice)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def grant_app(store_db) -> None:
    """Give the runtime roles what docs/several-machines.md lists (SELECT and INSERT, nothing more), the reader SELECT."""
    import psycopg

    with psycopg.connect(store_db.owner, autocommit=True) as db:
        db.execute(f"GRANT SELECT ON envfence_schema, envfence_runs, envfence_audit TO {APP}, {OTHER}, {READER}")
        db.execute(f"GRANT INSERT ON envfence_runs, envfence_audit TO {APP}, {OTHER}")
        db.execute(f"GRANT SELECT, INSERT, UPDATE ON envfence_state, envfence_webhook_events TO {APP}, {OTHER}")
        db.execute(f"GRANT SELECT ON envfence_state TO {READER}")
