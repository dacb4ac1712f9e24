"""The audit trail: append-only, hash-chained, per environment, written only by actions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import envfence

CANARY = "patCanaryAuditTok." + "c0ffee" * 10 + "c0ff"  # a well-formed token: no validation finding
ENV_FILE = f"DEV_AIRTABLE_API_KEY={CANARY}\nAPP_NAME=sync\n"


def trail(root, env="development"):
    return root / "var" / env / "audit" / f"audit_{env}.jsonl"


def lines(root, env="development"):
    return trail(root, env).read_text(encoding="utf-8").splitlines()


def test_init_starts_the_trail_with_detection_configuration_and_preparation(make_project, run_cli):
    root = make_project({".env": ENV_FILE})
    assert run_cli("init", cwd=root).exit_code == 0
    records = [json.loads(line) for line in lines(root)]
    assert [r["event"] for r in records] == ["environment.detected", "config.loaded", "environment.prepared"]
    detected, loaded, _ = records
    assert detected["data"]["method"] == "default" and detected["host"] == "build-box-01"
    import hashlib

    layer = next(l for l in loaded["data"]["layers"] if l["source"] == ".env")
    assert layer["sha256"] == hashlib.sha256((root / ".env").read_bytes()).hexdigest()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[1]["prev"] == records[0]["hash"]
    assert stat.S_IMODE(trail(root).stat().st_mode) == 0o600
    verified = run_cli("audit", "verify", cwd=root)
    assert verified.exit_code == 0 and "ok: 3 record(s), chain intact" in verified.stdout


def test_a_trail_readable_by_others_is_reported(make_project, run_cli):
    root = make_project()
    run_cli("--env", "prod", "init", cwd=root)
    os.chmod(trail(root, "production"), 0o644)
    result = run_cli("--env", "prod", "check", cwd=root)
    assert result.exit_code == 1
    assert "AUDIT_PERMISSIONS" in result.stdout and "chmod 600" in result.stdout


def test_read_only_commands_and_unprepared_sessions_write_no_record(make_project, run_cli):
    root = make_project({".env": ENV_FILE})
    run_cli("init", cwd=root)
    before = lines(root)
    for args in (("detect",), ("config", "show"), ("audit", "show"), ("audit", "verify"), ("clean", "--older-than", "1d", "--dry-run")):
        run_cli(*args, cwd=root)
    # a session that reads a credential but is never prepared (a dry run) keeps nothing either
    session = envfence.open_session(root=root)
    session.credential("AIRTABLE_API_KEY", by="dry-run-job")
    session.audit("run.started", automation="sync", dry_run=True)
    assert lines(root) == before


def test_credential_access_is_recorded_without_the_value(make_project):
    root = make_project({".env": ENV_FILE})
    session = envfence.open_session(root=root)
    session.prepare()
    assert session.credential("AIRTABLE_API_KEY", by="sync-job").reveal() == CANARY
    session.audit("note", message=f"oops, a leaked {CANARY} in a note", nested={"header": f"Bearer {CANARY}"})
    text = trail(root).read_text()
    assert CANARY not in text
    access = [json.loads(l) for l in text.splitlines() if '"credential.accessed"' in l][0]
    assert access["data"] == {"name": "AIRTABLE_API_KEY", "key": "DEV_AIRTABLE_API_KEY", "by": "sync-job", "found": True}


def test_validation_failures_are_recorded_by_code(make_project, envfence_plugin):
    class Strict:
        @envfence.hookimpl
        def validate(self):
            return [envfence.Finding("TEAM_RULE", "error", "the rule is broken", key="APP_NAME")]

    envfence_plugin(Strict(), "strict")
    root = make_project({".env": ENV_FILE})
    session = envfence.open_session(root=root)
    assert session.report.errors  # validation runs when the report is read
    session.prepare()
    failed = [json.loads(l) for l in lines(root) if '"validation.failed"' in l]
    assert failed[0]["data"]["findings"] == [{"code": "TEAM_RULE", "key": "APP_NAME", "plugin": None}]


def _prepared(root, count=3):
    session = envfence.open_session(root=root)
    session.prepare()
    for n in range(count):
        session.audit("test.event", n=n)
    return session


def test_an_edited_record_is_found(make_project, run_cli):
    root = make_project()
    _prepared(root)
    content = lines(root)
    content[3] = content[3].replace('"n":0', '"n":9')
    trail(root).write_text("\n".join(content) + "\n")
    result = run_cli("audit", "verify", cwd=root)
    assert result.exit_code == 1
    assert "line 4 (record #4): its content does not match its hash (edited)" in result.stderr


def test_a_removed_record_is_found(make_project, run_cli):
    root = make_project()
    _prepared(root)
    content = lines(root)
    del content[2]
    trail(root).write_text("\n".join(content) + "\n")
    result = run_cli("--json", "audit", "verify", cwd=root)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["broken"]["line"] == 3 and data["broken"]["seq"] == 4
    assert "removed" in data["broken"]["reason"]


def test_records_cut_off_the_end_are_found(make_project, run_cli):
    root = make_project()
    _prepared(root)
    content = lines(root)
    trail(root).write_text("\n".join(content[:-2]) + "\n")
    result = run_cli("audit", "verify", cwd=root)
    assert result.exit_code == 1
    assert f"ends at record {len(content) - 2}, but its head says record {len(content)}" in result.stderr


def test_a_sealed_record_cut_in_half_is_tampering_and_not_extended(make_project, run_cli):
    root = make_project()
    session = _prepared(root)
    data = trail(root).read_bytes()
    trail(root).write_bytes(data[:-25])
    result = run_cli("audit", "verify", cwd=root)
    assert result.exit_code == 1 and "truncated" in result.stderr
    try:
        session.audit("after.damage")
    except envfence.EnvfenceError as exc:
        assert "refusing to extend a broken trail" in str(exc)
    else:
        raise AssertionError("a damaged trail was extended")


def test_audit_show_filters_by_event_and_time(make_project, run_cli):
    root = make_project({".env": ENV_FILE})
    _prepared(root, count=2)
    shown = run_cli("audit", "show", "--event", "test.*", "--json", cwd=root)
    assert [r["data"]["n"] for r in json.loads(shown.stdout)] == [0, 1]
    people = run_cli("audit", "show", "--event", "config.loaded", cwd=root)
    assert "config.loaded" in people.stdout and "test.event" not in people.stdout
    future = run_cli("--json", "audit", "show", "--since", "2999-01-01", cwd=root)
    assert json.loads(future.stdout) == []
    recent = run_cli("--json", "audit", "show", "--since", "1h", cwd=root)
    assert len(json.loads(recent.stdout)) == len(lines(root))
    assert run_cli("audit", "show", "--since", "someday", cwd=root).exit_code == 2


def test_each_environment_keeps_its_own_trail(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    run_cli("--env", "prod", "init", cwd=root)
    assert all('"environment":"production"' in l for l in lines(root, "production"))
    assert all('"environment":"development"' in l for l in lines(root))


WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    import envfence
    root, count, name = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    session = envfence.open_session(root=root, environ={"ENVFENCE_HOSTNAME": "build-box-01"})
    session.prepare()
    (root / f"ready-{name}").touch()
    while not (root / "go").exists():  # both start appending at the same moment
        time.sleep(0.005)
    for n in range(count):
        session.audit("stress.append", writer=name, n=n)
    """
)


def test_two_processes_appending_at_once_lose_nothing(make_project, run_cli):
    root = make_project()
    envfence.open_session(root=root).prepare()
    start = len(lines(root))
    per_writer = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(per_writer), name], env={**os.environ})
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 60
    while not all((root / f"ready-{n}").exists() for n in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    (root / "go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    records = [json.loads(l) for l in lines(root)]
    stress = [r for r in records if r["event"] == "stress.append"]
    assert sorted((r["data"]["writer"], r["data"]["n"]) for r in stress) == sorted(
        (w, n) for w in "ab" for n in range(per_writer)
    )
    # each process's own prepare added its detection, configuration and preparation records
    assert len(records) == start + 2 * (per_writer + 3)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert run_cli("audit", "verify", cwd=root).exit_code == 0


# --- runs, through `envfence run` --------------------------------------------------

RUN_SETTINGS = '[automations.touch]\nrun = "jobs:touch"\n'
RUN_JOBS = "def touch(ctx):\n    if not ctx.dry_run:\n        ctx.paths.base.joinpath('marker').write_text('x')\n"


def events(root, env):
    return [json.loads(l)["event"] for l in lines(root, env)]


def test_a_forced_run_is_on_the_trail_with_who_where_and_why(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    host = {"ENVFENCE_HOSTNAME": "db-dev-03"}
    result = run_cli("--env", "prod", "run", "touch", "--force", "--reason", "hotfix 42", cwd=root, env=host)
    assert result.exit_code == 0, result.output
    records = [json.loads(l) for l in lines(root, "production")]
    kinds = [r["event"] for r in records]
    assert kinds[:2] == ["environment.detected", "config.loaded"]
    assert kinds.index("run.forced") < kinds.index("environment.prepared") < kinds.index("run.started") < kinds.index("run.finished")
    forced = records[kinds.index("run.forced")]["data"]
    assert forced["reason"] == "hotfix 42" and forced["host"] == "db-dev-03" and forced["user"]
    assert run_cli("--env", "prod", "audit", "verify", cwd=root).exit_code == 0


def test_a_dry_run_leaves_no_trail(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    run_cli("init", cwd=root)
    before = lines(root, "development")
    assert run_cli("run", "touch", "--dry-run", cwd=root).exit_code == 0
    assert lines(root, "development") == before


def test_a_blocked_run_is_recorded_where_a_trail_exists_and_creates_nothing_elsewhere(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    on_dev_host = {"ENVFENCE_HOSTNAME": "db-dev-03"}
    assert run_cli("--env", "prod", "run", "touch", cwd=root, env=on_dev_host).exit_code == 3
    assert not (root / "var" / "production").exists()  # no tree made just to record a refusal
    run_cli("--env", "prod", "init", cwd=root)
    assert run_cli("--env", "prod", "run", "touch", cwd=root, env=on_dev_host).exit_code == 3
    assert events(root, "production")[-3:] == ["environment.detected", "config.loaded", "run.blocked"]
