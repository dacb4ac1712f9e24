"""Files that SQLite and loguru open by name: a link swapped in after envfence checked the path is caught.

Each test swaps the file for a link to a file outside the tree at the worst
moment, just before the library opens it, and shows that nothing is written
through the link and the command says which file was in the way.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from envfence.errors import SafetyError

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


def _swap_before(monkeypatch, module, attribute: str, target: Path, outside: Path) -> list[str]:
    """Make ``module.attribute`` (an opener) replace ``target`` with a link to ``outside`` before it opens."""
    real = getattr(module, attribute)
    swapped: list[str] = []

    def racing(path, *args, **kwargs):
        shown = str(path)  # the connection that writes (a read-only one is a file: URI)
        if Path(shown).resolve() == target.resolve() and not swapped and target.exists() and not target.is_symlink():
            os.unlink(target)
            os.symlink(outside, target)
            swapped.append(shown)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, attribute, racing)
    return swapped


def test_a_link_swapped_in_before_sqlite_opens_the_queue_is_caught(make_project, tmp_path, monkeypatch):
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue, queue_path

    session = open_session(root=make_project({}, settings=""))
    session.prepare()
    outside = tmp_path / "outside.sqlite3"
    outside.write_bytes(b"")
    WebhookQueue(session.paths).close()  # the file exists, checked, before the race
    swapped = _swap_before(monkeypatch, sqlite3, "connect", queue_path(session.paths), outside)
    with pytest.raises(SafetyError, match="not the file checked a moment before|it is a symlink"):
        WebhookQueue(session.paths)
    assert swapped and outside.read_bytes() == b""  # SQLite wrote nothing through the link


@pytest.mark.parametrize("side", ["-wal", "-journal"])
def test_a_hard_linked_side_file_of_the_queue_is_refused(make_project, tmp_path, side):
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue, queue_path

    session = open_session(root=make_project({}, settings=""))
    session.prepare()
    WebhookQueue(session.paths).close()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("another file's content\n")
    os.link(elsewhere, f"{queue_path(session.paths)}{side}")
    with pytest.raises(SafetyError, match="hard link"):
        WebhookQueue(session.paths)
    assert elsewhere.read_text() == "another file's content\n"


def test_a_link_swapped_in_before_sqlite_opens_the_history_fails_the_command_clearly(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings='[automations]\nok = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    history = root / "var" / "development" / "history.sqlite3"
    assert history.exists()
    outside = tmp_path / "other-history.sqlite3"
    outside.write_bytes(history.read_bytes())
    before = outside.read_bytes()
    swapped = _swap_before(monkeypatch, sqlite3, "connect", history, outside)
    ran = run_cli("run", "ok", cwd=root)
    assert swapped, "the race did not happen"
    assert ("not the file checked a moment before" in ran.output or "it is a symlink" in ran.output), ran.output
    assert "Traceback" not in ran.output
    assert outside.read_bytes() == before


def test_a_link_swapped_in_before_loguru_opens_the_log_file_is_caught(make_project, run_cli, tmp_path, monkeypatch):
    import loguru._file_sink as file_sink

    root = make_project({"jobs.py": JOBS}, settings='[automations]\nok = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    [log] = [p for p in (root / "var" / "development" / "logs").glob("*.log") if not p.is_symlink()]
    outside = tmp_path / "elsewhere.log"
    outside.write_text("")
    real = file_sink.FileSink.__init__
    swapped: list[bool] = []

    def racing(self, path, *args, **kwargs):
        if Path(path).resolve() == log.resolve() and not swapped:
            log.unlink()
            log.symlink_to(outside)
            swapped.append(True)
        real(self, path, *args, **kwargs)

    monkeypatch.setattr(file_sink.FileSink, "__init__", racing)
    ran = run_cli("run", "ok", cwd=root)
    assert swapped and ("not the file checked a moment before" in ran.output or "it is a symlink" in ran.output), ran.output
    assert outside.read_text() == ""
