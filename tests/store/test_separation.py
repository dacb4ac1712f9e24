"""Environments kept apart inside the shared store: each environment's role sees and writes only its own rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from .conftest import APP, APP_PASSWORD, OTHER, OTHER_PASSWORD, READER, grant_app, roles

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
TABLES = ("envfence_runs", "envfence_audit", "envfence_state", "envfence_webhook_events")


def settings(url: str, separated: bool = True) -> str:
    return f'[automations.ok]\nrun = "jobs:ok"\n\n[store]\nurl = "{url}"\n' + (roles() if separated else "")


@pytest.fixture
def fleet(make_project, store_db, run_cli):
    """One project, its store initialised with development on APP and production on OTHER; a run in each."""
    # Each environment connects as its own role: production's whole URL names it.
    env = (f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
           f"PROD_STORE_URL={store_db.server.url_for(OTHER, OTHER_PASSWORD, store_db.name)}\n")
    project = make_project({"jobs.py": JOBS, ".env": env}, settings=settings(store_db.url))
    assert run_cli("store", "init", cwd=project).exit_code == 0
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    prod = run_cli("--env", "production", "run", "ok", "--force", "--reason", "test host", cwd=project)
    assert prod.exit_code == 0, prod.output
    return project


def production_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t} WHERE environment = 'production'").fetchone()[0] for t in TABLES}


def test_the_development_role_can_neither_see_nor_write_production_rows(fleet, store_db, run_cli):
    assert production_rows(store_db.superuser)["envfence_runs"] == 1
    assert production_rows(store_db.app) == dict.fromkeys(TABLES, 0)  # invisible
    with psycopg.connect(store_db.app, autocommit=True) as db:
        attempts = {
            "envfence_webhook_events": "INSERT INTO envfence_webhook_events (environment, route, event_id, provider, automation,"
            " payload, headers, received_at, status, max_attempts, next_attempt_at)"
            " VALUES ('production', '/h', 'evil', 'housecallpro', 'ok', '{}', '{}', 0, 'pending', 3, 0)",
            "envfence_audit": "INSERT INTO envfence_audit (environment, seq, event_id, at, event, record, prev, hash)"
            " VALUES ('production', 99, 'evil', 'now', 'run.started', '{}', 'x', 'y')",
            "envfence_runs": "INSERT INTO envfence_runs (run_id, automation, environment, started_at, finished_at, status,"
            " exit_code) VALUES ('run-evil', 'ok', 'production', now(), now(), 'succeeded', 0)",
            "envfence_state": "INSERT INTO envfence_state (environment, name, value) VALUES ('production', 'alerts', '{}')",
        }
        for table, sql in attempts.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                db.execute(sql)
        # Moving a development row into production is refused the same way; other rows are not even seen.
        db.execute("INSERT INTO envfence_state (environment, name, value) VALUES ('development', 'mine', '{}')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            db.execute("UPDATE envfence_state SET environment = 'production' WHERE name = 'mine'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("UPDATE envfence_runs SET environment = 'production'")  # not a column a run's finish writes
        assert db.execute("UPDATE envfence_state SET value = '{}' WHERE environment = 'production'").rowcount == 0
    # Production's trail is as it was, and verifies.
    verified = run_cli("--env", "production", "audit", "verify", "--json", cwd=fleet)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["stores"][0]["ok"]


def test_a_finished_run_is_never_changed_even_by_its_own_environment(fleet, store_db):
    with psycopg.connect(store_db.app, autocommit=True) as db:
        with pytest.raises(psycopg.errors.RaiseException, match="a finished run is never changed"):
            db.execute("UPDATE envfence_runs SET status = 'failed'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("UPDATE envfence_runs SET automation = 'x'")  # not a column a run's finish writes
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("DELETE FROM envfence_runs")


def test_store_check_proves_the_separation_as_the_runtime_role(fleet, run_cli):
    for env in ("development", "production"):
        checked = run_cli("--env", env, "store", "check", "--json", cwd=fleet)
        assert checked.exit_code == 0, checked.output
        other = "production" if env == "development" else "development"
        assert json.loads(checked.stdout)["separation"] == {t: {other: "refused"} for t in TABLES}


def test_store_check_names_every_table_where_the_separation_is_missing(make_project, store_db, run_cli):
    env = f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
    project = make_project({"jobs.py": JOBS, ".env": env}, settings=settings(store_db.url, separated=False))
    assert run_cli("store", "init", cwd=project).exit_code == 0
    grant_app(store_db)  # GRANTs alone, as an older envfence documented them
    checked = run_cli("store", "check", cwd=project)
    assert checked.exit_code == 1
    for table in TABLES:
        assert f"problem: the role can add production's rows to {table}" in checked.output
    assert "no [store.roles]" in checked.output
    assert APP_PASSWORD not in checked.output


def test_the_reader_role_reads_every_environment_and_writes_none(fleet, store_db):
    with psycopg.connect(store_db.reader, autocommit=True) as db:
        seen = dict(db.execute("SELECT environment, count(*) FROM envfence_runs GROUP BY environment").fetchall())
        assert seen == {"development": 1, "production": 1}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO envfence_state (environment, name, value) VALUES ('production', 'x', '{}')")


def test_store_init_names_a_role_that_does_not_exist_and_how_to_create_it(make_project, store_db, run_cli):
    env = f"DEV_STORE_ADMIN_URL={store_db.owner}\n"
    project = make_project({"jobs.py": JOBS, ".env": env},
                           settings=f'[store]\nurl = "{store_db.url}"\n' + roles(production="envfence_nobody"))
    result = run_cli("store", "init", cwd=project)
    assert result.exit_code == 4
    assert "envfence_nobody" in result.output and "CREATE ROLE envfence_nobody LOGIN" in result.output


@pytest.mark.parametrize("table, message", [
    ('[store.roles]\ndevelopment = "envfence_x"\nproduction = "envfence_x"\n', "gives the role envfence_x to development and production"),
    ('[store.roles]\nstaging = "envfence_x"\n', "names 'staging', which is not a declared environment"),
    ('[store.roles]\nproduction = "x; DROP TABLE y"\n', "is not a plain role name"),
])
def test_a_role_mapping_that_would_not_keep_environments_apart_is_refused(make_project, store_db, run_cli, table, message):
    project = make_project({".env": f"DEV_STORE_ADMIN_URL={store_db.owner}\n"},
                           settings=f'[store]\nurl = "{store_db.url}"\n\n{table}')
    result = run_cli("store", "init", cwd=project)
    assert result.exit_code == 4 and message in result.output, result.output


def test_the_docs_show_the_statements_store_init_runs(fleet, store_db):
    """docs/several-machines.md shows, word for word, what store init runs for its example roles; the database holds it."""
    from envfence_builtins.store.postgres_separation import Separation, statements

    docs = (Path(__file__).parents[2] / "docs" / "several-machines.md").read_text()
    block = re.search(r"```sql\n-- what envfence store init runs.*?\n(.*?)```", docs, re.S).group(1)
    example = Separation({"production": ("envfence_prod",), "development": ("envfence_dev",)}, ("envfence_reader",))
    assert [line for line in block.splitlines() if line and not line.startswith("--")] == statements(example)
    with psycopg.connect(store_db.superuser, autocommit=True) as db:
        policies = list(db.execute("SELECT tablename, policyname, roles::text[], cmd FROM pg_policies").fetchall())
    expected = {(t, f"envfence_{env}", (role,), "ALL") for t in TABLES for env, role in (("development", APP), ("production", OTHER))}
    expected |= {(t, "envfence_read_all", (READER,), "SELECT") for t in TABLES}
    assert {(t, p, tuple(r), c) for t, p, r, c in policies} == expected
