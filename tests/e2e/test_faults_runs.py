"""Faults injected into a run: envfence killed or interrupted while its command runs, processes left behind.

Nothing is lost: the run's history row exists from its start and is finished or
marked abandoned, the trail says so, and no process of the command outlives
the run (nor does a second copy start beside one).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from envfence.models import RunRequest
from envfence.runner import Runner, find_automation

# The command writes its child's pid, then waits for it: the child is what must not outlive envfence.
LONG = '["sh", "-c", "sleep 60 & echo $! > child.pid; echo started; wait"]'
# The same, deaf to SIGTERM (ignored signals are inherited): only SIGKILL ends it.
DEAF = '''["sh", "-c", "trap '' TERM; sleep 60 & echo $! > child.pid; echo started; wait"]'''
SETTINGS = (
    f'[automations.long]\nrun = {LONG}\n[automations.deaf]\nrun = {DEAF}\n'
    '[automations.quick]\nrun = ["echo", "quick"]\n'
    '[automations.leaves]\nrun = ["sh", "-c", "sleep 60 > /dev/null 2>&1 & echo $! > child.pid"]\n'
    '[automations.event]\nrun = ["sh", "-c", "echo $ENVFENCE_EVENT_ID $ENVFENCE_EVENT_TYPE $ENVFENCE_EVENT_ATTEMPT;'
    ' cat \\"$ENVFENCE_EVENT_FILE\\"; echo; echo $ENVFENCE_EVENT_FILE"]\n'
)


@pytest.fixture
def project(make_project):
    return make_project({".env": "DEV_API_TOKEN=canary-runs-Qm4Zx81\n"}, settings=SETTINGS)


def start(project, *args):
    """``envfence ARGS`` in its own process, once its command's child has started; returns it and the child's pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "envfence", *args], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "ENVFENCE_ROOT")},
    )
    marker = project / "child.pid"
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    pid = int(marker.read_text())
    marker.unlink()
    return proc, pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its reaper is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def lock_freed_within(path, seconds: float) -> bool:
    import fcntl

    deadline = time.monotonic() + seconds
    with open(path, "rb") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True


def rows(project) -> list[tuple]:
    db = sqlite3.connect(project / "var" / "development" / "history.sqlite3")
    try:
        return db.execute("SELECT automation, status, exit_code FROM runs ORDER BY started_at").fetchall()
    finally:
        db.close()


def test_the_watchdog_stands_before_the_command_starts(project, run_cli, monkeypatch):
    # A kill -9 that comes as soon as the command runs must find the watchdog there: were it started
    # after the command, a loaded machine could let the command's processes outlive envfence.
    started = []

    class Recording(subprocess.Popen):
        def __init__(self, args, *more, **options):
            started.append([str(a) for a in args])
            super().__init__(args, *more, **options)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    assert run_cli("run", "quick", cwd=project).exit_code == 0
    dog = next(i for i, argv in enumerate(started) if "envfence-watchdog" in argv)
    command = next(i for i, argv in enumerate(started) if argv[-1] == "quick")
    assert dog < command, started


def test_a_killed_run_is_abandoned_its_commands_group_ended_and_nothing_lost(project, run_cli):
    assert run_cli("run", "quick", cwd=project).exit_code == 0
    proc, child = start(project, "run", "long")
    assert rows(project)[-1] == ("long", "running", -1)  # recorded when it started
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert gone_within(child, 5), "the command's child outlived envfence"
    assert lock_freed_within(project / "var" / "development" / "locks" / "long.lock", 5)  # once the whole group ended
    status = run_cli("status", cwd=project)
    assert status.exit_code == 0, status.output
    assert "abandoned" in status.output and "long                 1/1 failed (100%)" in status.output
    assert rows(project) == [("quick", "succeeded", 0), ("long", "abandoned", -1)]  # no row lost
    shown = run_cli("audit", "show", cwd=project).output
    assert "run.abandoned" in shown  # status (an unprepared session) put it on the trail
    assert run_cli("audit", "verify", cwd=project).exit_code == 0


def test_a_process_left_by_a_killed_run_keeps_the_lock_so_no_second_copy_starts(project, run_cli):
    proc, child = start(project, "run", "deaf")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    try:
        assert alive(child)  # deaf to the watchdog's SIGTERM for the grace period
        again = run_cli("run", "deaf", cwd=project)
        assert again.exit_code == 3 and "already running" in again.output
        assert "abandoned" not in run_cli("status", cwd=project).output  # its group still holds the lock
    finally:
        os.kill(child, signal.SIGKILL)
    assert gone_within(child, 5)
    assert lock_freed_within(project / "var" / "development" / "locks" / "deaf.lock", 5)
    # The next run (of any automation) marks it abandoned before it takes its lock.
    assert run_cli("run", "quick", cwd=project).exit_code == 0
    assert rows(project) == [("deaf", "abandoned", -1), ("quick", "succeeded", 0)]


def test_a_damaged_history_moved_aside_by_status_is_on_the_trail(project, run_cli):
    assert run_cli("run", "quick", cwd=project).exit_code == 0
    (project / "var" / "development" / "history.sqlite3").write_bytes(b"not a database at all" * 100)
    assert run_cli("status", cwd=project).exit_code == 0
    assert "history.moved_aside" in run_cli("audit", "show", cwd=project).output
    assert run_cli("audit", "verify", cwd=project).exit_code == 0


def test_sigterm_ends_the_commands_group_and_records_the_run_failed(project):
    proc, child = start(project, "run", "long")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err  # the job failed; its own code is kept in the history
    assert "interrupted by SIGTERM" in err and "job exit 143" in err and "Traceback" not in err
    assert not alive(child)  # ended before envfence let go of the lock
    assert rows(project) == [("long", "failed", 128 + signal.SIGTERM)]


def test_a_sigterm_while_the_command_is_being_started_still_ends_its_group(project, run_cli, monkeypatch):
    # On a loaded machine the command can be running before subprocess.Popen returns to envfence: a SIGTERM
    # then must not escape from inside Popen, leaving a started group that no one ends (and its lock held).
    class SignalledWhileStarting(subprocess.Popen):
        def __init__(self, args, *more, **options):
            super().__init__(args, *more, **options)
            if "envfence-watchdog" not in args:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives before Popen has returned to envfence

    monkeypatch.setattr(subprocess, "Popen", SignalledWhileStarting)
    result = run_cli("run", "long", cwd=project)
    assert result.exit_code == 1 and "interrupted by SIGTERM" in result.output, result.output
    marker = project / "child.pid"
    if marker.exists() and marker.read_text().strip():
        assert gone_within(int(marker.read_text()), 5), "the command's child outlived the run"
    assert rows(project) == [("long", "failed", 128 + signal.SIGTERM)]


def test_processes_a_command_leaves_behind_are_ended_before_the_run_ends(project, run_cli):
    result = run_cli("run", "leaves", cwd=project)
    assert result.exit_code == 0, result.output
    child = int((project / "child.pid").read_text())
    assert gone_within(child, 1), "a process of the run's group outlived the run (and its lock)"


def test_a_command_automation_receives_the_webhook_event(project):
    from envfence_builtins.webhook_service.webhook_queue import WebhookEvent

    import envfence

    session = envfence.open_session(project)
    event = WebhookEvent(
        seq=1, id="evt-7731", route="/housecallpro", provider="housecallpro", type="job.created", automation="event",
        body=b'{"job": {"id": "job-1"}}', headers={}, received_at=0.0, status="claimed", attempt=2, max_attempts=5,
        next_attempt_at=0.0,
    )
    lines: list[str] = []
    result = Runner(session, echo=lines.append).run(RunRequest(find_automation(session, "event"), event=event))
    assert result.exit_code == 0, lines
    assert lines[:2] == ["evt-7731 job.created 2", '{"job": {"id": "job-1"}}']
    written = lines[2]
    assert written.startswith(str(project / "var" / "development" / "events")) and not os.path.exists(written)
    # A run without an event gets no event variables.
    lines.clear()
    Runner(session, echo=lines.append).run(RunRequest(find_automation(session, "event")))
    assert lines[0] == "" and lines[-1] == ""


# Kills the run at the K-th of its writes (each fsync, rename and history write) or at the command's start or end.
_KILL_AT = r"""
import os, signal, sys
from envfence_builtins.runs import history
from envfence.runs import execute
count, at = [0], int(os.environ.pop("KILL_AT"))

def point(call):
    def killed_first(*args, **kwargs):
        count[0] += 1
        if count[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return call(*args, **kwargs)
    return killed_first

os.fsync, os.replace = point(os.fsync), point(os.replace)
history.record_start, history.record_finish = point(history.record_start), point(history.record_finish)
execute._run_command = point(execute._run_command)
from envfence.cli import cli
cli.main(args=sys.argv[1:], prog_name="envfence")
"""


def test_a_forced_run_killed_between_any_two_of_its_writes_leaves_a_trail_that_verifies_and_a_history_that_says_so(
    make_project, run_cli
):
    root = make_project(settings='[automations.mark]\nrun = ["sh", "-c", "echo ran >> ran.txt"]\n')
    host = {"ENVFENCE_HOSTNAME": "db-dev-03"}  # production's run is blocked here: it goes ahead forced, on the record
    environ = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "ENVFENCE_ROOT")} | host
    argv = ["--env", "prod", "run", "mark", "--force", "--reason", "replay 7"]
    killed = 0
    for at in range(1, 40):
        done = subprocess.run([sys.executable, "-c", _KILL_AT, *argv], cwd=root, env={**environ, "KILL_AT": str(at)},
                              capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            break
        assert done.returncode == -signal.SIGKILL, done.stderr
        killed += 1
        assert run_cli("--env", "prod", "audit", "verify", cwd=root).exit_code == 0, f"killed at write {at}"
        trail = run_cli("--env", "prod", "audit", "show", "--json", cwd=root).output
        status = run_cli("--env", "prod", "status", cwd=root, env=host)  # marks a run whose process died abandoned
        assert status.exit_code == 0, status.output
        history = [r for r in _rows(root, "production") if r[0] == "mark"]
        assert all(s != "running" for _, s, _ in history), f"killed at write {at}: a run left running: {history}"
        ran = (root / "ran.txt").read_text().count("ran") if (root / "ran.txt").exists() else 0
        # Every job that ran is on the trail, forced and started, and in the history: finished or abandoned.
        assert trail.count('"run.forced"') >= ran and trail.count('"run.started"') >= ran, f"killed at write {at}"
        assert len(history) >= ran, f"killed at write {at}: a job ran without a history row"
    else:
        raise AssertionError("the run never completed")
    assert killed >= 8  # the trail's flushes and renames, the history's two writes, the command's start and end
    assert run_cli("--env", "prod", "audit", "verify", cwd=root).exit_code == 0


def _rows(project, env: str) -> list[tuple]:
    """The environment's history rows; none before its first write (read without creating the file)."""
    path = project / "var" / env / "history.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("SELECT automation, status, exit_code FROM runs ORDER BY started_at").fetchall()
    except sqlite3.OperationalError:  # created, not yet written
        return []
    finally:
        db.close()


def test_a_forced_run_that_finds_its_lock_held_keeps_the_override_and_the_preparation_on_the_trail(make_project, run_cli):
    from envfence import open_session
    from envfence.runs.execute import run_lock

    root = make_project(settings='[automations.mark]\nrun = ["true"]\n')
    host = {"ENVFENCE_HOSTNAME": "db-dev-03"}
    run_cli("--env", "prod", "init", cwd=root)
    with run_lock(open_session(root=root, env="production").paths, "mark"):  # another run of it is going on
        result = run_cli("--env", "prod", "run", "mark", "--force", "--reason", "replay 8", cwd=root, env=host)
    assert result.exit_code == 3 and "already running" in result.output
    events = [r["event"] for r in _trail(root, "production")]
    # init's preparation, then the run's: the override and the preparation it made, though the job never started.
    assert events.count("environment.prepared") == 2 and events[-2:] == ["run.forced", "environment.prepared"], events
    assert "run.started" not in events
    assert run_cli("--env", "prod", "audit", "verify", cwd=root).exit_code == 0


def _trail(project, env: str) -> list[dict]:
    import json

    path = project / "var" / env / "audit" / f"audit_{env}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]
