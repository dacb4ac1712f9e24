"""The audit trail: append-only, hash-chained, per environment, written only by actions."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import envfence
from envfence import audit_chain
from envfence_builtins.audit import append as trail_append
from envfence_builtins.audit import head as trail_head
from envfence_builtins.audit import verify as trail_verify

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
    for args in (("detect",), ("audit", "show"), ("audit", "verify"), ("clean", "--older-than", "1d", "--dry-run")):
        run_cli(*args, cwd=root)
    # a session that reads a credential but is never prepared (a dry run) keeps nothing either
    session = envfence.open_session(root=root)
    session.credential("AIRTABLE_API_KEY", by="dry-run-job")
    session.audit("run.started", automation="sync", dry_run=True)
    assert lines(root) == before
    # Showing the configuration is a read on the record (config.read), and only that.
    run_cli("config", "show", cwd=root)
    added = [json.loads(line)["event"] for line in lines(root)[len(before):]]
    assert added[-1] == "config.read" and set(added) <= {"environment.detected", "config.loaded", "config.read"}


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


# --- crashes, tampering and bad files -------------------------------------------------


def head(root, env="development"):
    return trail(root, env).with_suffix(".head")


def read_records(root, env="development"):
    return [json.loads(line) for line in trail(root, env).read_text().splitlines()]


def verify(run_cli, root, *args, env="development"):
    return run_cli("--env", env, "audit", "verify", *args, cwd=root)


def _rechain(root, keep, env="development"):
    """What someone who can write the trail but has no key does: drop records, re-hash, rewrite the head."""
    kept, prev = [], audit_chain.genesis(env, trail(root, env).name)
    for record in read_records(root, env):
        if not keep(record):
            continue
        record = {k: v for k, v in record.items() if k != "hash"}
        record.update(seq=len(kept) + 1, prev=prev)
        record["hash"] = prev = audit_chain.record_hash(record)
        kept.append(record)
    trail(root, env).write_text("".join(json.dumps(r) + "\n" for r in kept))
    old = json.loads(head(root, env).read_text())
    head(root, env).write_text(json.dumps({**old, "seq": len(kept), "hash": prev}))
    return kept


# --- crashes: a kill at any point of an append is never reported as tampering ----------


def _child(work, kill_at: int, torn: bool) -> int:
    """Fork a process that appends one record, killed before its ``kill_at``-th system call of the append.

    With ``torn``, a write at that step writes half its bytes first (a crash
    in the middle of a write). Returns the child's wait status.
    """
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:
        count = [0]
        real = {name: getattr(os, name) for name in ("open", "mkdir", "write", "fsync", "ftruncate", "replace", "pread", "close")}

        def wrap(name):
            def call(*args, **kwargs):
                count[0] += 1
                if count[0] == kill_at:
                    if name == "write" and torn:
                        data = bytes(args[1])
                        real["write"](args[0], data[: len(data) // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
                return real[name](*args, **kwargs)

            return call

        for name in real:
            setattr(os, name, wrap(name))
        work()
        os._exit(0)
    except BaseException:
        os._exit(3)


def test_a_kill_at_each_step_of_an_append_leaves_the_old_state_or_the_new(make_project, run_cli):
    root = make_project()
    session = _prepared(root, count=1)
    acknowledged = [r["seq"] for r in read_records(root)]
    killed = 0
    for torn in (False, True):
        for step in range(1, 60):
            status = _child(lambda: session.audit("fault.append", step=step, torn=torn), step, torn)
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0, f"the append failed at step {step} instead of completing"
                break
            assert os.WTERMSIG(status) == signal.SIGKILL
            killed += 1
            result = verify(run_cli, root)
            assert result.exit_code == 0, f"killed at step {step} (torn={torn}): {result.stderr}"
            # the next append goes on from there, repairing what the kill left
            session.audit("after.kill", step=step, torn=torn)
            acknowledged.append(read_records(root)[-1]["seq"])
        else:
            raise AssertionError("the append never completed")
    assert killed > 10  # every system call of an append was a kill point
    final = read_records(root)
    seqs = {r["seq"]: r for r in final}
    assert all(seq in seqs for seq in acknowledged), "an acknowledged record was lost"
    assert any(r["event"] == trail_append.REPAIRED for r in final)  # a torn write was cut off, on the record
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "chain intact" in result.stdout


def test_sixty_kills_at_random_moments_of_appending_never_raise_a_false_alarm(make_project, run_cli):
    root = make_project()
    _prepared(root, count=1)
    rng = random.Random(1729)
    acknowledged: set[tuple[int, int]] = set()
    for round_ in range(60):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                session = envfence.open_session(root=root)
                session.prepared = True  # the tree exists; record at once
                for n in range(10_000):
                    session.audit("stress.append", round=round_, n=n)
                    os.write(write_end, f"{n}\n".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_end) as acks:
            acknowledged |= {(round_, int(n)) for n in acks.read().split()}
        verdict = trail_verify.verify(envfence.open_session(root=root).paths)
        assert verdict.ok, f"round {round_}: {verdict.problem}"
    kept = {(r["data"]["round"], r["data"]["n"]) for r in read_records(root) if r["event"] == "stress.append"}
    assert acknowledged and acknowledged <= kept
    assert verify(run_cli, root).exit_code == 0


def test_a_trail_ahead_of_its_head_verifies_and_the_next_append_seals_it(make_project, run_cli):
    root = make_project()
    session = _prepared(root)
    sealed = head(root).read_bytes()
    session.audit("appended.but.not.sealed")
    head(root).write_bytes(sealed)  # the kill between the append and the head's replacement
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "1 record(s) after the head" in result.stdout
    session.audit("next")
    assert json.loads(head(root).read_text())["seq"] == read_records(root)[-1]["seq"]
    assert "after the head" not in verify(run_cli, root).stdout


def _flushes(monkeypatch) -> list[str]:
    """Record each ``fsync`` from now on by what it flushed: the trail, the head's new content, or a directory."""
    flushed: list[str] = []
    real = os.fsync

    def fsync(fd):
        info = os.fstat(fd)
        name = os.readlink(f"/proc/self/fd/{fd}")
        flushed.append("directory" if stat.S_ISDIR(info.st_mode) else "trail" if name.endswith(".jsonl") else "head")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return flushed


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")
def test_an_append_flushes_its_records_before_its_head_and_the_directory_only_when_it_creates_the_trail(
    make_project, run_cli, monkeypatch
):
    root = make_project()
    session = envfence.open_session(root=root)
    flushed = _flushes(monkeypatch)
    session.prepare()  # the first append creates the trail: its name reaches the disk with its directory
    assert flushed[-3:] == ["trail", "head", "directory"] and "directory" in flushed[:-3]
    flushed.clear()
    session.audit("test.event", n=1)
    # Records first, then the head's content before its rename; the rename itself may be undone by a power cut,
    # which gives back the previous head: the trail then runs ahead of it, as after a kill (test above).
    assert flushed == ["trail", "head"]
    monkeypatch.undo()
    assert verify(run_cli, root).exit_code == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")
def test_a_run_flushes_its_trail_once_before_the_job_and_once_after(make_project, run_cli, monkeypatch):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    assert run_cli("init", cwd=root).exit_code == 0
    flushed = _flushes(monkeypatch)
    assert run_cli("run", "touch", cwd=root).exit_code == 0
    monkeypatch.undo()
    # The preparation and the start go out together, before the job; the end after it.
    assert flushed == ["trail", "head", "trail", "head"], flushed
    kinds = events(root, "development")
    assert kinds[-3:] == ["environment.prepared", "run.started", "run.finished"]
    assert verify(run_cli, root).exit_code == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")
def test_exec_puts_its_read_on_the_trail_with_its_start_before_the_command_sees_a_value(make_project, run_cli, monkeypatch):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    assert run_cli("init", cwd=root).exit_code == 0
    flushed = _flushes(monkeypatch)
    assert run_cli("exec", "--", "true", cwd=root).exit_code == 0
    monkeypatch.undo()
    assert flushed == ["trail", "head", "trail", "head"], flushed  # the read, the preparation and the start at once
    records = read_records(root)
    kinds = [r["event"] for r in records]
    assert kinds[-4:] == ["config.read", "environment.prepared", "run.started", "run.finished"]
    assert records[-4]["data"]["command"] == "exec" and CANARY not in trail(root).read_text()
    # Refused (production on a development host), the read is kept with the refusal; no tree is made for it.
    run_cli("--env", "prod", "init", cwd=root)
    blocked = run_cli("--env", "prod", "exec", "--", "true", cwd=root, env={"ENVFENCE_HOSTNAME": "db-dev-03"})
    assert blocked.exit_code == 3
    assert events(root, "production")[-2:] == ["config.read", "run.blocked"]
    assert verify(run_cli, root).exit_code == 0


def test_a_cut_short_last_record_is_told_apart_from_tampering_and_repaired(make_project, run_cli):
    root = make_project()
    session = _prepared(root)
    sealed = head(root).read_bytes()
    session.audit("torn")
    head(root).write_bytes(sealed)
    data = trail(root).read_bytes()
    trail(root).write_bytes(data[:-30])  # a disk that filled up in the middle of the write
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "cut short by an interrupted append" in result.stdout
    session.audit("after")
    events = [r["event"] for r in read_records(root)]
    assert events[-2:] == [trail_append.REPAIRED, "after"] and "torn" not in events
    assert verify(run_cli, root).exit_code == 0


def test_a_full_disk_is_a_clear_error_and_leaves_the_trail_as_it_was(make_project, run_cli, monkeypatch):
    root = make_project()
    run_cli("init", cwd=root)
    before = trail(root).read_bytes()
    real_write = os.write

    def full(fd, data):
        if len(data) > 200:  # the records, not a head
            real_write(fd, bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    result = run_cli("--env", "development", "init", cwd=root)
    monkeypatch.undo()
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and "is as it was" in result.stderr and "internal error" not in result.stderr
    assert str(trail(root)) in result.stderr
    assert trail(root).read_bytes() == before  # the partial write was undone
    assert run_cli("init", cwd=root).exit_code == 0  # the next run is not refused
    assert verify(run_cli, root).exit_code == 0


# --- tampering ------------------------------------------------------------------------


def test_removing_runs_and_rehashing_is_found_with_the_audit_key(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    assert run_cli("audit", "keygen", cwd=root).exit_code == 0
    assert run_cli("run", "touch", cwd=root).exit_code == 0
    anchor = run_cli("audit", "anchor", cwd=root).stdout.strip()
    assert anchor.startswith(trail_head.ANCHOR_TAG) and anchor.split()[-1] != "-"
    _rechain(root, keep=lambda r: not r["event"].startswith("run."))
    result = verify(run_cli, root)
    assert result.exit_code == 1
    assert "rewritten without the audit key" in result.stderr
    # with the key gone (or stolen and the head re-signed), the anchor kept elsewhere still tells
    (root / ".envfence" / "keys" / "development.audit.key").unlink()
    result = verify(run_cli, root, "--anchor", anchor)
    assert result.exit_code == 1 and "the anchor" in result.stderr
    # and without either, the forged trail passes: the documented limit
    assert verify(run_cli, root).exit_code == 0


def test_an_anchor_stays_valid_as_the_trail_grows(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    anchor = run_cli("audit", "anchor", cwd=root).stdout.strip()
    assert anchor.split()[1:3] == ["development", str(len(read_records(root)))]
    run_cli("init", cwd=root)
    _prepared(root)
    result = verify(run_cli, root, "--anchor", anchor)
    assert result.exit_code == 0 and "extends the anchor" in result.stdout
    assert verify(run_cli, root, "--anchor", "not an anchor").exit_code == 2
    other = run_cli("--env", "prod", "init", cwd=root)
    assert other.exit_code == 0
    assert "not production" in verify(run_cli, root, "--anchor", anchor, env="prod").stderr


def test_a_deleted_head_is_found(make_project, run_cli):
    root = make_project()
    _prepared(root)
    head(root).unlink()
    result = verify(run_cli, root)
    assert result.exit_code == 1 and "audit_development.head is missing" in result.stderr
    # and the trail is not extended over the evidence
    assert run_cli("init", cwd=root).exit_code == 1


def test_swapped_trails_are_found(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    run_cli("--env", "prod", "init", cwd=root)
    for suffix in (".jsonl", ".head"):
        dev = trail(root).with_suffix(suffix)
        prod = trail(root, "production").with_suffix(suffix)
        dev_bytes, prod_bytes = dev.read_bytes(), prod.read_bytes()
        dev.write_bytes(prod_bytes)
        prod.write_bytes(dev_bytes)
    for env in ("development", "prod"):
        result = verify(run_cli, root, env=env)
        assert result.exit_code == 1 and "does not start this trail" in result.stderr


def test_deleting_the_trail_and_its_head_is_found_where_runs_are_recorded(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    assert run_cli("run", "touch", cwd=root).exit_code == 0
    trail(root).unlink()
    head(root).unlink()
    result = verify(run_cli, root)
    assert result.exit_code == 1 and "run history shows runs" in result.stderr
    started = run_cli("audit", "restart", "--reason", "trail lost with the old disk", cwd=root)
    assert started.exit_code == 0, started.output
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "started over" in result.stdout and "old disk" in result.stdout
    assert run_cli("run", "touch", cwd=root).exit_code == 0


def test_runs_go_on_after_the_trail_is_deleted_and_verify_reports_it_until_acknowledged(make_project, run_cli):
    root = make_project({"jobs.py": RUN_JOBS}, settings=RUN_SETTINGS)
    assert run_cli("run", "touch", cwd=root).exit_code == 0
    trail(root).unlink()
    head(root).unlink()
    assert run_cli("run", "touch", cwd=root).exit_code == 0  # a deleted trail stops no job...
    assert read_records(root)[0]["event"] == trail_append.RESTARTED
    for _ in range(2):  # ...but verify keeps saying what happened, however many runs follow
        result = verify(run_cli, root)
        assert result.exit_code == 1 and "the earlier records are gone" in result.stderr
        assert run_cli("run", "touch", cwd=root).exit_code == 0
    acknowledged = run_cli("audit", "restart", "--reason", "INC-42: cleaned by mistake", cwd=root)
    assert acknowledged.exit_code == 0 and "acknowledgement" in acknowledged.stdout
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "acknowledged: INC-42" in result.stdout
    assert not any(".broken-" in p.name for p in trail(root).parent.iterdir())  # the runs since were kept in place


def test_a_project_without_runs_and_without_a_trail_verifies(make_project, run_cli):
    root = make_project()
    result = verify(run_cli, root)
    assert result.exit_code == 0 and "no audit trail yet" in result.stdout


def test_a_record_with_a_duplicate_key_is_found(make_project, run_cli):
    root = make_project()
    _prepared(root)
    content = trail(root).read_text().splitlines()
    content[3] = content[3].replace('"event":', '"event":"innocent","event":', 1)
    trail(root).write_text("\n".join(content) + "\n")
    result = verify(run_cli, root)
    assert result.exit_code == 1 and "line 4" in result.stderr and "'event' twice" in result.stderr


def test_a_trail_written_before_records_were_bound_still_verifies_and_grows(make_project, run_cli):
    root = make_project()
    trail(root).parent.mkdir(parents=True)
    prev, lines = audit_chain.GENESIS, []
    for seq in (1, 2):
        record = {"at": "2026-01-01T00:00:00+00:00", "event": "old.event", "environment": "development", "data": {}, "seq": seq, "prev": prev}
        record["hash"] = prev = audit_chain.record_hash(record)
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
    trail(root).write_text("\n".join(lines) + "\n")
    head(root).write_text(json.dumps({"seq": 2, "hash": prev}))
    assert verify(run_cli, root).exit_code == 0
    assert run_cli("init", cwd=root).exit_code == 0
    assert read_records(root)[2]["prev"] == prev and read_records(root)[2]["v"] == audit_chain.FORMAT
    assert verify(run_cli, root).exit_code == 0


# --- files that are not what they should be ---------------------------------------------


def test_a_symlinked_trail_is_never_written_through(make_project, run_cli, tmp_path):
    root = make_project()
    run_cli("init", cwd=root)
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(trail(root).read_bytes())
    trail(root).unlink()
    trail(root).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    result = run_cli("init", cwd=root)
    assert result.exit_code == 1 and "internal error" not in result.output
    assert "is a symbolic link" in result.stderr and str(trail(root)) in result.stderr
    assert elsewhere.read_bytes() == before
    for args in (("audit", "verify"), ("audit", "show")):
        shown = run_cli(*args, cwd=root)
        assert shown.exit_code == 1 and "is a symbolic link" in shown.stderr


def _link_audit_directory(root, tmp_path):
    """Move the trail's directory out of the tree and leave a link to it in its place; the new place."""
    audit_dir = trail(root).parent
    moved = tmp_path / "audit-elsewhere"
    audit_dir.rename(moved)
    audit_dir.symlink_to(moved)
    return moved


def test_a_symlinked_audit_directory_is_refused(make_project, run_cli, tmp_path):
    root = make_project()
    run_cli("init", cwd=root)
    moved = _link_audit_directory(root, tmp_path)
    result = run_cli("audit", "verify", cwd=root)
    assert result.exit_code == 1 and "symbolic link" in result.stderr


def test_nothing_is_appended_through_a_linked_audit_directory(make_project, run_cli, tmp_path):
    root = make_project()
    run_cli("init", cwd=root)
    moved = _link_audit_directory(root, tmp_path)
    before = {p.name: p.read_bytes() for p in moved.iterdir()}
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3 and "leads outside the development tree" in result.stderr and "internal error" not in result.output
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == before  # not one record written there
    assert run_cli("audit", "show", cwd=root).exit_code == 1


def test_a_link_swapped_in_for_the_audit_directory_after_the_tree_was_checked_gets_no_record(make_project, tmp_path):
    from envfence import Session
    from envfence.errors import EnvfenceError

    root = make_project()
    session = Session.open(root=root)
    session.prepare()  # the tree is checked and the trail started here
    moved = _link_audit_directory(root, tmp_path)
    before = {p.name: p.read_bytes() for p in moved.iterdir()}
    try:
        session.audit("test.after_the_swap", note="must not land elsewhere")
    except EnvfenceError as exc:
        assert "symbolic link" in exc.message
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == before


@pytest.mark.parametrize("command", [("audit", "verify"), ("audit", "show"), ("audit", "show", "--last", "2"), ("init",)])
def test_a_directory_where_the_trail_belongs_is_a_clear_error(make_project, run_cli, command):
    root = make_project()
    run_cli("init", cwd=root)
    trail(root).unlink()
    trail(root).mkdir()
    result = run_cli(*command, cwd=root)
    assert result.exit_code == 1 and "internal error" not in result.output
    assert f"{trail(root)} is not a regular file" in result.stderr and "mv " in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes files whatever their mode")
def test_an_unreadable_or_unwritable_trail_is_a_clear_error(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    os.chmod(trail(root), 0o400)
    result = run_cli("init", cwd=root)
    assert result.exit_code == 1 and "permission denied" in result.stderr
    os.chmod(trail(root), 0)
    for args in (("audit", "verify"), ("audit", "show")):
        shown = run_cli(*args, cwd=root)
        assert shown.exit_code == 1 and "cannot be read: permission denied" in shown.stderr


def test_a_permission_error_while_writing_is_a_clear_error(make_project, run_cli, monkeypatch):
    root = make_project()
    run_cli("init", cwd=root)
    real_open = os.open

    def refused(path, flags, *args, **kwargs):
        if str(path).endswith(".jsonl") and flags & os.O_APPEND:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    result = run_cli("init", cwd=root)
    monkeypatch.undo()
    assert result.exit_code == 1 and "internal error" not in result.output
    assert f"{trail(root)} cannot be written: permission denied" in result.stderr and "chmod 600" in result.stderr


# --- reading ----------------------------------------------------------------------------


def test_show_last_reads_the_newest_records_and_json_streams_a_valid_document(make_project, run_cli):
    root = make_project()
    _prepared(root, count=30)
    last = run_cli("--json", "audit", "show", "--last", "3", cwd=root)
    assert [r["data"]["n"] for r in json.loads(last.stdout)] == [27, 28, 29]
    filtered = run_cli("audit", "show", "--last", "2", "--event", "environment.*", cwd=root)
    assert [line.split()[2] for line in filtered.stdout.splitlines()] == ["environment.detected", "environment.prepared"]
    everything = json.loads(run_cli("audit", "show", "--json", cwd=root).stdout)
    assert [r["seq"] for r in everything] == list(range(1, 34))
    assert json.loads(run_cli("audit", "show", "--json", "--event", "nothing", cwd=root).stdout) == []
    assert run_cli("audit", "show", "--last", "0", cwd=root).exit_code == 2


def test_a_real_full_disk_is_a_clear_error_and_nothing_is_lost(small_disk, fill_disk, run_cli):
    if small_disk is None:
        pytest.skip("mounting a small tmpfs needs root (the failing-writer test covers the rest)")
    root = small_disk / "proj"
    root.mkdir()
    (root / "envfence.toml").write_text("")
    assert run_cli("init", cwd=root).exit_code == 0
    before = trail(root).read_bytes()
    fill_disk(small_disk)
    result = run_cli("init", cwd=root)
    assert result.exit_code == 1 and "internal error" not in result.output
    assert "No space left on device" in result.stderr
    assert trail(root).read_bytes() == before
    assert verify(run_cli, root).exit_code == 0
    (small_disk / "filler").unlink()
    assert run_cli("init", cwd=root).exit_code == 0
    assert verify(run_cli, root).exit_code == 0


def test_the_audit_key_is_never_overwritten_and_must_be_owner_only(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    created = run_cli("audit", "keygen", cwd=root)
    key = root / ".envfence" / "keys" / "development.audit.key"
    assert created.exit_code == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_text().strip()
    assert secret not in created.output
    assert "signed head" in verify(run_cli, root).stdout  # keygen signed the existing head at once
    again = run_cli("audit", "keygen", cwd=root)
    assert again.exit_code == 2 and "never overwritten" in again.stderr and key.read_text().strip() == secret
    os.chmod(key, 0o644)
    refused = run_cli("init", cwd=root)
    assert refused.exit_code == 1 and f"chmod 600 {key}" in refused.stderr and secret not in refused.output


def test_the_key_in_the_environment_signs_and_another_key_is_refused(make_project, run_cli):
    root = make_project()
    keyed = {"ENVFENCE_AUDIT_KEY_DEV": "k" * 64}
    assert run_cli("init", cwd=root, env=keyed).exit_code == 0
    assert json.loads(head(root).read_text())["mac"]
    assert run_cli("audit", "verify", cwd=root, env=keyed).exit_code == 0
    wrong = run_cli("audit", "verify", cwd=root, env={"ENVFENCE_AUDIT_KEY_DEV": "x" * 64})
    assert wrong.exit_code == 1 and "signature the audit key does not make" in wrong.stderr


def test_a_restart_reason_never_records_a_secret(make_project, run_cli):
    root = make_project({".env": ENV_FILE})
    run_cli("init", cwd=root)
    head(root).unlink()
    assert run_cli("audit", "restart", "--reason", f"lost; token was {CANARY}", cwd=root).exit_code == 0
    assert CANARY not in trail(root).read_text()
    assert any(p.name.startswith("audit_development.jsonl.broken-") for p in trail(root).parent.iterdir())
    assert run_cli("audit", "restart", "--reason", "again", cwd=root).exit_code == 2  # a whole trail is never started over


def test_a_trail_plugin_that_fails_stops_the_action_with_a_clear_error(make_project, run_cli, envfence_plugin):
    class Broken:
        @envfence.hookimpl
        def audit_event(self, session, event):
            if session.prepared:
                raise OSError(f"store unreachable while holding {CANARY}")

    envfence_plugin(Broken(), "broken-trail")
    root = make_project({".env": ENV_FILE})
    result = run_cli("init", cwd=root)
    assert result.exit_code == 1 and "internal error" not in result.output
    assert "the audit trail could not record environment.prepared" in result.stderr and "store unreachable" in result.stderr
    assert CANARY not in result.output
