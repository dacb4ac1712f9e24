"""Faults injected where envfence writes files: a full disk, a symlink at every path, racing moves, a damaged history, a closed pipe.

Each case asserts that nothing was lost and that the error was clear: it names
the path or key, says what to do, has the right exit code and no traceback.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

import envfence
from envfence import files
from envfence.errors import EnvfenceError, SafetyError

CANARY = "canary-faults-Vb7Kq2Lx9"
JOBS = "def ok(ctx):\n    for i in range(50):\n        ctx.say(f'line {i}')\n"
SETTINGS = '[automations]\nok = "jobs:ok"\ncounting = "seq 1 500"\n'


def clear(output: str) -> None:
    """No traceback, no internal error, no secret."""
    assert "Traceback" not in output and "internal error" not in output and CANARY not in output


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env": f"DEV_API_TOKEN={CANARY}\n"}, settings=SETTINGS)
    assert run_cli("init", cwd=root).exit_code == 0
    return root


def envfence_cli(*args, cwd, stdout=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, "-m", "envfence", *args], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "ENVFENCE_ROOT")},
    )


# --- settings that name paths, settings of the wrong type --------------------------------


@pytest.mark.parametrize(
    "table, key, check_code",
    [
        ('[history]\nfile = "../../../x"', "history.file", 1),
        ("[history]\nfile = 5", "history.file", 1),
        ('[logging]\nfile = "../../../x"', "logging.file", 1),
        ('[directories]\ndirs = ["logs", "../../x"]', "directories.dirs", 4),
        ('[environments.development.profile]\nlog_level = "LOUD"', "log_level", 4),
        ("[environments.development.profile]\ndir_mode = 0o777", "dir_mode", 4),
        ('[snapshots]\nkeep = "all"', "snapshots", 4),
    ],
)
def test_a_bad_path_or_value_in_the_settings_is_named_by_check_and_refused_by_a_run(make_project, run_cli, tmp_path, table, key, check_code):
    root = make_project({"jobs.py": "def ok(ctx):\n    open('ran', 'w').close()\n"}, settings=SETTINGS + table + "\n")
    check = run_cli("check", cwd=root)
    assert check.exit_code == check_code, check.output
    assert key in check.output and "envfence.toml" in check.output
    result = run_cli("run", "ok", cwd=root)
    assert result.exit_code == 4, result.output
    assert key in result.output and "envfence.toml" in result.output
    clear(check.output + result.output)
    assert not (root / "ran").exists() and not (tmp_path / "x").exists()


# --- a full disk -------------------------------------------------------------------


def test_a_full_disk_leaves_the_previous_file_whole_and_says_what_to_do(small_disk, fill_disk, tmp_path, monkeypatch):
    base = (small_disk or tmp_path) / "tree"
    files.write_atomic(base, "backups/state.json", '{"version": 1}')
    if small_disk is not None:
        fill_disk(small_disk)
    else:  # a failing writer where no tmpfs can be mounted
        def full(fd, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "write", full)
    with pytest.raises(files.FileWriteError) as caught:
        files.write_atomic(base, "backups/state.json", '{"version": 2, "padding": "' + "x" * 200_000 + '"}')
    monkeypatch.undo()
    assert "backups/state.json" in caught.value.message and "No space left" in caught.value.message
    assert "free space" in caught.value.hint and "unchanged" in caught.value.hint
    assert (base / "backups" / "state.json").read_text() == '{"version": 1}'
    assert os.listdir(base / "backups") == ["state.json"]  # no temporary left behind


def test_a_snapshot_on_a_full_disk_fails_clearly_and_leaves_no_half_snapshot(small_disk, fill_disk, make_project, run_cli):
    if small_disk is None:
        pytest.skip("mounting a tmpfs is not allowed here (the failing-writer case above covers the write)")
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\nBIG={'y' * 60_000}\n"},
                        settings=f'[directories.paths]\ndevelopment = "{small_disk / "dev"}"\n')
    first = run_cli("--json", "config", "snapshot", cwd=root)
    assert first.exit_code == 0, first.output
    fill_disk(small_disk, leave=32 * 1024)  # room for the trail's records, not for a 60 KB copy
    result = run_cli("config", "snapshot", cwd=root)
    assert result.exit_code == 1, result.output
    assert "No space left" in result.output and "free space" in result.output
    clear(result.output)
    (small_disk / "filler").unlink()
    assert [p.name for p in (small_disk / "dev" / "backups" / "config").iterdir()] == [json.loads(first.stdout)["id"]]
    listed = json.loads(run_cli("--json", "config", "rollback", "--list", cwd=root).stdout)
    assert [s["id"] for s in listed] == [json.loads(first.stdout)["id"]]  # the half-written one is never offered


# --- a symlink at every path envfence writes -----------------------------------------


def outside_dir(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(exist_ok=True)
    return target


@pytest.mark.parametrize("where", ["locks", "logs", "backups", "csv"])
def test_a_run_refuses_a_linked_directory_of_its_tree(project, run_cli, tmp_path, where):
    tree = project / "var" / "development"
    os.rename(tree / where, tmp_path / "moved")
    (tree / where).symlink_to(outside_dir(tmp_path))
    result = run_cli("run", "ok", cwd=project)
    assert result.exit_code == 3, result.output
    assert f"var/development/{where}" in result.output and "link" in result.output
    clear(result.output)
    assert list(outside_dir(tmp_path).iterdir()) == []


def test_a_snapshot_refuses_a_linked_store_and_copies_no_secret_through_it(project, run_cli, tmp_path):
    run_cli("config", "snapshot", cwd=project)
    store = project / "var" / "development" / "backups" / "config"
    os.rename(store, tmp_path / "moved")
    store.symlink_to(outside_dir(tmp_path))
    result = run_cli("config", "snapshot", cwd=project)
    clear(result.output)
    assert result.exit_code == 3 and "backups/config: it is a symlink" in result.output
    assert "saved" not in result.output
    assert list(outside_dir(tmp_path).iterdir()) == []


def test_a_linked_snapshot_is_never_listed_nor_rolled_back_to(project, run_cli, tmp_path):
    first = json.loads(run_cli("--json", "config", "snapshot", cwd=project).stdout)["id"]
    planted = outside_dir(tmp_path)
    snapshot = project / "var" / "development" / "backups" / "config" / first
    for item in snapshot.iterdir():
        (planted / item.name).write_bytes(item.read_bytes())
    (planted / ".env").write_text("DEV_API_TOKEN=planted\n")
    manifest = json.loads((planted / "manifest.json").read_text())
    os.rename(snapshot, tmp_path / "moved")
    snapshot.symlink_to(planted)
    assert json.loads(run_cli("--json", "config", "rollback", "--list", cwd=project).stdout) == []
    result = run_cli("config", "rollback", first, cwd=project)
    assert result.exit_code == 2 and "is no snapshot" in result.output
    clear(result.output)
    assert (project / ".env").read_text() == f"DEV_API_TOKEN={CANARY}\n" and manifest["id"] == first


def test_a_linked_history_file_is_refused_and_its_target_untouched(project, run_cli, tmp_path):
    run_cli("run", "ok", cwd=project)
    other = tmp_path / "production-history.sqlite3"
    history = project / "var" / "development" / "history.sqlite3"
    os.rename(history, other)
    before = other.read_bytes()
    history.symlink_to(other)
    check = run_cli("check", cwd=project)
    assert "history.sqlite3 (or a directory on the way) is a symlink" in check.output
    result = run_cli("run", "ok", cwd=project)
    assert result.exit_code == 3 and "history.sqlite3: it is a symlink" in result.output
    status = run_cli("status", cwd=project)
    assert status.exit_code == 3 and "remove the link" in status.output
    clear(result.output + status.output)
    assert other.read_bytes() == before


def test_a_linked_log_file_is_refused_and_its_target_untouched(project, run_cli, tmp_path):
    victim = tmp_path / "production.log"
    victim.write_text("production's log\n")
    log = project / "var" / "development" / "logs" / "automation_development.log"
    log.unlink(missing_ok=True)
    log.symlink_to(victim)
    result = run_cli("run", "ok", cwd=project)
    assert result.exit_code == 3 and "automation_development.log: it is a symlink" in result.output
    clear(result.output)
    assert victim.read_text() == "production's log\n"


def test_a_linked_status_queue_is_refused_and_its_target_untouched(make_project, run_cli, tmp_path):
    import socket

    # A malformed or too-short key would block the run before the queue is reached.
    root = make_project({"jobs.py": JOBS, ".env": "AIRTABLE_STATUS_TABLE=Runs\nDEV_AIRTABLE_API_KEY=patFaultsToken001.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nAIRTABLE_BASE_ID=appAAAAAAAAAAAAAA\n"}, settings=SETTINGS)
    run_cli("init", cwd=root)
    other = tmp_path / "production-queue.jsonl"
    other.write_text('{"Automation": "production record"}\n')
    (root / "var" / "development" / "airtable-status-queue.jsonl").symlink_to(other)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run_cli("run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={down}", cwd=root)
    assert result.exit_code == 3, result.output
    assert "airtable-status-queue.jsonl: it is a symlink" in result.output
    clear(result.output)
    assert other.read_text() == '{"Automation": "production record"}\n'


def test_a_move_refuses_a_linked_stage_and_keeps_the_file(project, tmp_path):
    session = envfence.open_session(root=project)
    session.prepare()
    csv = session.paths.stage("incoming") / "jobs.csv"
    csv.write_text("id\n1\n")
    processed = session.paths.stage("processed")
    processed.rmdir()
    processed.symlink_to(outside_dir(tmp_path))
    with pytest.raises(SafetyError) as caught:
        session.paths.move(csv, "processed")
    assert "csv/processed" in caught.value.message and "remove the link" in caught.value.hint
    assert csv.read_text() == "id\n1\n" and list(outside_dir(tmp_path).iterdir()) == []


# --- racing moves ----------------------------------------------------------------------


def test_concurrent_moves_of_same_named_files_never_overwrite(project):
    session = envfence.open_session(root=project)
    session.prepare()
    paths = session.paths
    sources = [paths.stage("incoming"), paths.stage("processing"), paths.stage("failed")]
    refused = 0
    for attempt in range(300):
        name = f"batch-{attempt}.csv"
        for i, stage in enumerate(sources):
            (stage / name).write_text(f"from {i}\n")
        barrier = threading.Barrier(len(sources))
        outcomes: list = []

        def move(stage):
            barrier.wait()
            try:
                outcomes.append(paths.move(stage / name, "processed"))
            except EnvfenceError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=move, args=(stage,)) for stage in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        moved = [o for o in outcomes if not isinstance(o, Exception)]
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert len(moved) == 1 and len(errors) == 2
        assert all("already there" in e.message for e in errors)
        left = sorted((stage / name).read_text() for stage in sources if (stage / name).exists())
        landed = (paths.stage("processed") / name).read_text()
        assert sorted([*left, landed]) == ["from 0\n", "from 1\n", "from 2\n"]  # every copy still somewhere
        refused += len(errors)
    assert refused == 600


# --- a damaged history ---------------------------------------------------------------------


def test_a_damaged_history_never_crashes_a_command_and_the_next_run_is_recorded(project, run_cli):
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    history = project / "var" / "development" / "history.sqlite3"
    history.write_bytes(history.read_bytes()[:512] + os.urandom(2048))
    status = envfence_cli("status", "--compare", cwd=project)
    out, err = status.communicate(timeout=60)
    assert status.returncode == 0, err
    clear(out + err)
    assert "was not a SQLite database" in err and "moved aside to" in err
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    db = sqlite3.connect(history)
    assert [r[0] for r in db.execute("SELECT status FROM runs")] == ["succeeded"]
    db.close()
    kept = [p for p in history.parent.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].stat().st_size > 512


# --- a closed pipe ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["detect"], ["config", "show"], ["run", "ok"], ["run", "counting"]])
def test_a_reader_that_leaves_ends_the_command_quietly(project, command):
    read, write = os.pipe()
    os.close(read)  # like `| head -1` that has already gone
    proc = envfence_cli(*command, cwd=project, stdout=write)
    os.close(write)
    _, err = proc.communicate(timeout=60)
    clear(err)
    assert "BrokenPipe" not in err and "Exception ignored" not in err
    if command[0] != "run":
        assert err == ""  # quiet: nothing but what the reader took
    if command[0] == "run":
        assert proc.returncode == 0, err
        db = sqlite3.connect(project / "var" / "development" / "history.sqlite3")
        (status,) = db.execute("SELECT status || ' ' || coalesce(error_class, '-') FROM runs").fetchone()
        db.close()
        assert status == "succeeded -"  # not a failed "network" run


