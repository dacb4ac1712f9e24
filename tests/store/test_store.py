"""The shared PostgreSQL store: schema commands, history, the audit chain, the store away, imports."""

from __future__ import annotations

import json

import psycopg
import pytest

from .conftest import APP, APP_PASSWORD, OTHER, OTHER_PASSWORD, OWNER_PASSWORD, READER, READER_PASSWORD, roles

JOBS = '''
def ok(ctx):
    ctx.say("fine")

def bad(ctx):
    raise RuntimeError("broken")
'''


def settings(url: str, extra: str = "", separated: bool = True) -> str:
    """The project's settings: the store (each environment with its role), two automations."""
    return (f'[automations.ok]\nrun = "jobs:ok"\n\n[automations.bad]\nrun = "jobs:bad"\n\n'
            f'[store]\nurl = "{url}"\n{extra}\n' + (roles() if separated else ""))


@pytest.fixture
def project(make_project, store_db):
    """A project whose development environment uses the store, with the owner's URL for the schema commands."""
    env = f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
    return make_project({"jobs.py": JOBS, ".env": env}, settings=settings(store_db.url))


@pytest.fixture
def ready(project, store_db, run_cli):
    """The project with its store initialised: store init gave each environment's role its rows."""
    assert run_cli("store", "init", cwd=project).exit_code == 0
    return project


def assert_nowhere(project, secret: str) -> None:
    """No file envfence wrote in the project's tree holds ``secret``."""
    for path in (project / "var").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path


def query(url: str, sql: str, *args):
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute(sql, args).fetchall()


def test_store_init_is_idempotent_and_check_reports_migrations_and_privileges(project, store_db, run_cli):
    before = run_cli("store", "check", "--json", cwd=project)
    assert before.exit_code == 1, before.output
    data = json.loads(before.stdout)
    assert data["reachable"] is True and data["migrated"] is False
    assert any("store init" in p for p in data["problems"])

    first = json.loads(run_cli("store", "init", "--json", cwd=project).stdout)
    assert first["applied"] == [1, 2, 3, 4, 5, 6] and first["to"] == 6
    assert first["roles"] == {"development": [APP], "production": [OTHER]} and first["readers"] == [READER]
    again = run_cli("store", "init", "--json", cwd=project)
    assert again.exit_code == 0 and json.loads(again.stdout)["applied"] == []
    assert json.loads(run_cli("store", "migrate", "--json", cwd=project).stdout)["applied"] == []

    ok = run_cli("store", "check", "--json", cwd=project)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["ok"] and data["migrated"] and data["warnings"] == []
    assert data["privileges"]["envfence_audit"] == {"SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False, "TRUNCATE": False}
    # The proof: a row of production offered to each table by development's role is refused.
    assert data["separation"] == {t: {"production": "refused"} for t in
                                  ("envfence_runs", "envfence_audit", "envfence_state", "envfence_webhook_events")}
    assert APP_PASSWORD not in ok.output and OWNER_PASSWORD not in ok.output


def test_check_warns_when_envfence_runs_as_a_role_that_may_change_the_trail(project, store_db, run_cli):
    assert run_cli("store", "init", cwd=project).exit_code == 0
    (project / ".env").write_text(f"DEV_STORE_URL={store_db.owner}\n")
    result = run_cli("store", "check", cwd=project)
    # The owner is bound by no policy: it could write production's rows, and check names every table.
    assert result.exit_code == 1
    assert "warning: the role may UPDATE/DELETE/TRUNCATE envfence_audit" in result.output
    for table in ("envfence_runs", "envfence_audit", "envfence_state", "envfence_webhook_events"):
        assert f"the role can add production's rows to {table}" in result.output
    assert OWNER_PASSWORD not in result.output


def test_migrate_before_init_says_to_run_init(project, run_cli):
    result = run_cli("store", "migrate", cwd=project)
    assert result.exit_code == 4
    assert "was never initialised" in result.output and "store init" in result.output


def test_runs_are_recorded_in_the_store_and_status_reads_them(ready, store_db, run_cli):
    assert run_cli("run", "ok", cwd=ready).exit_code == 0
    assert run_cli("run", "bad", cwd=ready).exit_code == 1
    rows = query(store_db.superuser, "SELECT automation, environment, host, status, exit_code, error_class FROM envfence_runs ORDER BY started_at")
    assert rows == [("ok", "development", "build-box-01", "succeeded", 0, None), ("bad", "development", "build-box-01", "failed", 1, "bug")]
    # The local SQLite history is dropped: status still shows both runs, so they come from the store.
    (ready / "var" / "development" / "history.sqlite3").unlink()
    status = json.loads(run_cli("status", "--json", cwd=ready).stdout)
    assert [r["automation"] for r in status["runs"]] == ["bad", "ok"]
    assert status["error_rates"]["bad"]["failed"] == 1
    everything = run_cli("-v", "status", cwd=ready).output + json.dumps(status)
    assert APP_PASSWORD not in everything


def test_audit_verify_checks_the_store_and_finds_a_row_changed_by_a_superuser(ready, store_db, run_cli):
    assert run_cli("run", "ok", cwd=ready).exit_code == 0
    verified = run_cli("audit", "verify", "--json", cwd=ready)
    assert verified.exit_code == 0, verified.output
    stores = json.loads(verified.stdout)["stores"]
    assert stores[0]["ok"] and stores[0]["records"] >= 3

    # The runtime role cannot change the trail, and the table refuses changes even to its owner.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        query(store_db.app, "UPDATE envfence_audit SET event = 'x'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        query(store_db.owner, "DELETE FROM envfence_audit")

    # A superuser can switch the trigger off; the chain still tells.
    with psycopg.connect(store_db.superuser, autocommit=True) as db:
        db.execute("SET session_replication_role = replica")
        db.execute("UPDATE envfence_audit SET record = replace(record, '\"development\"', '\"elsewhere\"') WHERE seq = 2")
    broken = run_cli("audit", "verify", cwd=ready)
    assert broken.exit_code == 1
    assert "record #2: its content does not match its hash (edited)" in broken.output


def test_an_unreachable_store_refuses_the_run_with_exit_4_naming_the_store(make_project, run_cli):
    from envfence_builtins.store.postgres_cluster import free_port

    url = f"postgresql://envfence@127.0.0.1:{free_port()}/envfence"
    project = make_project({"jobs.py": JOBS, ".env": "DEV_STORE_PASSWORD=canary-Zx81\n"}, settings=settings(url, "connect_timeout = 1"))
    result = run_cli("run", "ok", cwd=project)
    assert result.exit_code == 4
    assert f"the shared store postgresql://envfence@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/envfence cannot be reached" in result.output
    assert "fallback" in result.output and "fine" not in result.output
    assert "canary-Zx81" not in result.output
    status = run_cli("status", cwd=project)
    assert status.exit_code == 4 and "cannot be reached to read the run history" in status.output
    assert_nowhere(project, "canary-Zx81")


def test_a_store_without_a_url_is_a_configuration_error_naming_the_credential(make_project, run_cli):
    project = make_project({"jobs.py": JOBS}, settings='[store]\nfallback = "local"\n\n[automations.ok]\nrun = "jobs:ok"\n')
    result = run_cli("store", "check", cwd=project)
    assert result.exit_code == 4
    assert "[store] gives no url for development" in result.output and "DEV_STORE_URL" in result.output
    wrong = make_project({}, settings='[store]\nurl = "x"\nfallback = "maybe"\n', name="wrong")
    result = run_cli("store", "check", cwd=wrong)
    assert result.exit_code == 4 and "store.fallback: must be 'refuse' or 'local', not 'maybe'" in result.output


def test_with_fallback_local_runs_go_on_while_the_database_is_down_and_nothing_is_lost_or_doubled(
    make_project, store_db, run_cli
):
    env = f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
    project = make_project({"jobs.py": JOBS, ".env": env}, settings=settings(store_db.url, 'fallback = "local"\nconnect_timeout = 2'))
    assert run_cli("store", "init", cwd=project).exit_code == 0
    assert run_cli("run", "ok", cwd=project).exit_code == 0

    store_db.server.stop()
    try:
        away = run_cli("run", "bad", cwd=project)
        assert away.exit_code == 1  # the job's own failure, not the store's
        assert "running with the local lock" in away.output
        spool = project / "var" / "development" / "store-spool.jsonl"
        assert spool.stat().st_size > 0 and APP_PASSWORD not in spool.read_text()
        # With the store away, status answers from the local history.
        assert [r["automation"] for r in json.loads(run_cli("status", "--json", cwd=project).stdout)["runs"]] == ["bad", "ok"]
    finally:
        store_db.server.start()

    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert not spool.exists()
    runs = query(store_db.superuser, "SELECT automation, count(*) FROM envfence_runs GROUP BY automation ORDER BY automation")
    assert runs == [("bad", 1), ("ok", 2)]
    # Every event the file trail holds reached the store once, in its chain.
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    on_file = sorted((r["at"], r["event"]) for r in map(json.loads, trail.read_text().splitlines()))
    in_store = sorted(query(store_db.superuser, "SELECT at, event FROM envfence_audit"))
    assert in_store == on_file
    verified = run_cli("audit", "verify", "--json", cwd=project)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["stores"][0]["records"] == len(on_file)
    assert_nowhere(project, APP_PASSWORD)


def test_a_spool_that_is_a_symlink_is_never_written_through(make_project, store_db, run_cli, tmp_path):
    from envfence_builtins.store.postgres_cluster import free_port

    url = f"postgresql://envfence@127.0.0.1:{free_port()}/envfence"
    project = make_project({"jobs.py": JOBS}, settings=settings(url, 'fallback = "local"\nconnect_timeout = 1'))
    assert run_cli("init", cwd=project).exit_code == 0
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("untouched\n")
    spool = project / "var" / "development" / "store-spool.jsonl"
    assert spool.is_file()  # init's audit events wait there for the store
    spool.unlink()
    spool.symlink_to(elsewhere)
    result = run_cli("run", "ok", cwd=project)
    # A record that cannot be kept stops the action, as the file trail's would.
    assert result.exit_code == 3, result.output
    assert "store-spool.jsonl" in result.output and "fine" not in result.output
    assert elsewhere.read_text() == "untouched\n"


def test_a_spool_forwarded_twice_adds_nothing_the_second_time(ready, store_db, run_cli):
    """A crash after sending the spool but before emptying it: the next forward skips what is there."""
    from envfence import open_session
    from envfence_builtins.store import postgres_client as ps

    session = open_session(root=ready)
    session.prepare()
    store = ps.store_for(session)
    entry = {"at": "2026-01-01T00:00:00+00:00", "event": "test.event", "environment": "development", "user": "u", "host": "h", "pid": 1, "data": {}}
    row = {"run_id": "run-spooled1", "automation": "ok", "environment": "development", "host": "h",
           "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00", "status": "succeeded",
           "exit_code": 0, "forced": False}
    for _ in range(2):
        ps.spool(store, {"kind": "run", "row": row}, {"kind": "audit", "event_id": "ev-1", "entry": entry})
        with store.using("forward") as db:
            assert ps.forward(store, db) == 2
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_runs WHERE run_id = 'run-spooled1'") == [(1,)]
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_audit WHERE event = 'test.event'") == [(1,)]
    assert run_cli("audit", "verify", cwd=ready).exit_code == 0


def test_store_import_copies_the_sqlite_history_and_the_file_trail_keeping_the_chain(make_project, store_db, run_cli):
    project = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    hashes = [json.loads(line)["hash"] for line in trail.read_text().splitlines()]

    (project / "envfence.toml").write_text(settings(store_db.url))
    (project / ".env").write_text(f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n")
    assert run_cli("store", "init", cwd=project).exit_code == 0
    imported = run_cli("store", "import", "--json", cwd=project)
    assert imported.exit_code == 0, imported.output
    data = json.loads(imported.stdout)
    assert data["runs"] == {"read": 2, "added": 2}
    assert data["audit"]["added"] == len(hashes) == data["audit"]["read"]
    assert [h for (h,) in query(store_db.superuser, "SELECT hash FROM envfence_audit ORDER BY seq")] == hashes

    again = json.loads(run_cli("store", "import", "--json", cwd=project).stdout)
    assert again["runs"]["added"] == 0 and again["audit"]["added"] == 0
    # New records continue the imported chain.
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    verified = run_cli("audit", "verify", "--json", cwd=project)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["stores"][0]["records"] > len(hashes)
    assert len(json.loads(run_cli("status", "--json", cwd=project).stdout)["runs"]) == 3


def test_store_import_with_the_history_plugin_disabled_says_it_read_no_runs(make_project, store_db, run_cli):
    project = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    (project / "envfence.toml").write_text(settings(store_db.url))
    (project / ".env").write_text(f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n")
    assert run_cli("store", "init", cwd=project).exit_code == 0
    result = run_cli("-p", "no:history", "store", "import", cwd=project)
    assert result.exit_code == 0, result.output
    assert "nothing read of the run history (the history plugin): it is disabled" in result.stdout
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_runs") == [(0,)]
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_audit")[0][0] > 0  # the trail still came


def test_import_refuses_a_broken_file_trail(make_project, store_db, run_cli):
    project = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    lines = trail.read_text().splitlines()
    record = json.loads(lines[1])
    record["event"] = "tampered"
    lines[1] = json.dumps(record)
    trail.write_text("\n".join(lines) + "\n")
    (project / "envfence.toml").write_text(settings(store_db.url))
    (project / ".env").write_text(f"DEV_STORE_ADMIN_URL={store_db.owner}\n")
    assert run_cli("store", "init", cwd=project).exit_code == 0
    result = run_cli("store", "import", cwd=project)
    assert result.exit_code == 4 and "the audit trail is broken at record #2" in result.output
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_audit") == [(0,)]


def test_a_record_chained_without_the_audit_key_fails_verify(ready, store_db, run_cli):
    from envfence_builtins.store.postgres_audit import append_audit

    assert run_cli("audit", "keygen", cwd=ready).exit_code == 0
    assert run_cli("run", "ok", cwd=ready).exit_code == 0
    verified = run_cli("audit", "verify", "--json", cwd=ready)
    assert verified.exit_code == 0, verified.output
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_audit WHERE mac IS NULL") == [(0,)]
    # Someone who can write the table (its owner, bound by no policy) chains a record exactly as envfence
    # does, hash and all, but without the environment's audit key.
    forged = {"at": "2026-01-01T00:00:00+00:00", "event": "run.finished", "environment": "development", "user": "u",
              "host": "build-box-01", "pid": 1, "data": {"automation": "ok", "status": "succeeded"}}
    with psycopg.connect(store_db.owner, autocommit=True) as db:
        assert append_audit(db, "development", [("forged-1", forged)]) == 1
    broken = run_cli("audit", "verify", cwd=ready)
    assert broken.exit_code == 1
    assert "does not carry the MAC of the environment's audit key" in broken.output


MEASURING = '''
def measured(ctx):
    ctx.metric("records_synced", 42, unit="records")
    with ctx.step("fetch"):
        pass
'''


@pytest.mark.parametrize("separated", [True, False], ids=["roles-in-settings", "roles-granted-by-hand"])
def test_what_a_job_reports_is_kept_in_the_store_and_status_shows_it(make_project, store_db, run_cli, separated):
    env = f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
    root = make_project({"jobs.py": JOBS + MEASURING, ".env": env},
                        settings=settings(store_db.url, separated=separated) + '\n[automations.measured]\nrun = "jobs:measured"\n')
    assert run_cli("store", "init", cwd=root).exit_code == 0
    # An older store: no measures column, each role may finish a run without it, as before migration 6.
    with psycopg.connect(store_db.owner, autocommit=True) as db:
        db.execute(f"REVOKE UPDATE (measures) ON envfence_runs FROM {APP}, {OTHER}")
        db.execute("ALTER TABLE envfence_runs DROP COLUMN measures")
        db.execute("DELETE FROM envfence_schema WHERE version = 6")
        if not separated:  # what docs/several-machines.md had a DBA grant by hand
            db.execute(f"GRANT SELECT ON envfence_schema TO {APP}")
            db.execute(f"GRANT SELECT, INSERT ON envfence_runs, envfence_audit TO {APP}")
            db.execute(f"GRANT UPDATE (finished_at, status, exit_code, error_class, error_id, duration, cpu_seconds, "
                       f"peak_memory_kb) ON envfence_runs TO {APP}")
            db.execute(f"GRANT SELECT, INSERT, UPDATE ON envfence_state, envfence_webhook_events TO {APP}")
    migrated = json.loads(run_cli("store", "migrate", "--json", cwd=root).stdout)
    assert migrated["applied"] == [6]
    ran = run_cli("run", "measured", cwd=root)  # the role envfence runs as finishes its running row in place
    assert ran.exit_code == 0, ran.output
    [(status, kept)] = query(store_db.superuser, "SELECT status, measures FROM envfence_runs WHERE automation = 'measured'")
    assert status == "succeeded" and json.loads(kept)["business"]["records_synced"] == {"value": 42.0, "unit": "records"}
    # Not from the local history: status reads the store.
    (root / "var" / "development" / "history.sqlite3").unlink()
    [run] = json.loads(run_cli("status", "--json", cwd=root).stdout)["runs"]
    assert run["business"] == {"records_synced": {"value": 42.0, "unit": "records"}} and "fetch" in run["steps"]


def test_a_measures_value_damaged_in_the_store_reads_as_nothing(ready, store_db, run_cli):
    assert run_cli("run", "ok", cwd=ready).exit_code == 0
    with psycopg.connect(store_db.superuser, autocommit=True) as db:
        db.execute("ALTER TABLE envfence_runs DISABLE TRIGGER envfence_runs_finished_once")  # the finished row is changed by hand
        db.execute("UPDATE envfence_runs SET measures = '{not json'")
    (ready / "var" / "development" / "history.sqlite3").unlink()
    shown = run_cli("status", "--json", cwd=ready)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["runs"][0]["business"] == {}, shown.output


def test_a_store_behind_its_schema_says_to_migrate_once_keeps_the_run_and_status_still_answers(ready, store_db, run_cli):
    # A store initialised by an older envfence: migration 6 (the measures column) not applied yet.
    with psycopg.connect(store_db.owner, autocommit=True) as db:
        db.execute("ALTER TABLE envfence_runs DROP COLUMN measures")
        db.execute("DELETE FROM envfence_schema WHERE version = 6")
    ran = run_cli("run", "ok", cwd=ready)
    assert ran.exit_code == 0, ran.output
    assert ran.output.count("the store's schema is behind: run `envfence store migrate`") == 1, ran.output
    assert "UndefinedColumn" not in ran.output and "Traceback" not in ran.output and "LINE 1" not in ran.output
    assert APP_PASSWORD not in ran.output  # the store is named by its masked URL
    assert query(store_db.superuser, "SELECT count(*) FROM envfence_runs") == [(0,)]
    # status answers from the local history, with the same advice once.
    shown = run_cli("status", "--json", cwd=ready)
    assert shown.exit_code == 0, shown.output
    assert [r["status"] for r in json.loads(shown.stdout)["runs"]] == ["succeeded"]
    assert shown.stderr.count("envfence store migrate") == 1 and "UndefinedColumn" not in shown.stderr
    # Once migrated, the run kept meanwhile reaches the store, finished: nothing was lost, no row stays running.
    assert run_cli("store", "migrate", cwd=ready).exit_code == 0
    after = run_cli("status", "--json", cwd=ready)
    assert "envfence store migrate" not in after.output
    assert query(store_db.superuser, "SELECT automation, status FROM envfence_runs") == [("ok", "succeeded")]


def test_metrics_sum_the_stores_runs_not_the_local_history(ready, store_db, run_cli):
    pytest.importorskip("prometheus_client")
    for name in ("ok", "ok", "bad"):
        run_cli("run", name, cwd=ready)
    (ready / "var" / "development" / "history.sqlite3").unlink()  # only the store knows of them now
    shown = run_cli("metrics", cwd=ready)
    assert shown.exit_code == 0, shown.output
    assert 'envfence_runs_total{automation="ok",environment="development",status="succeeded"} 2.0' in shown.stdout
    assert 'envfence_run_failures_total{automation="bad",environment="development"} 1.0' in shown.stdout
