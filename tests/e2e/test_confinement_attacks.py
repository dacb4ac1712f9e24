"""Confined writes tried as an adversary would: files that share their content with another environment's."""

from __future__ import annotations

import os

import pytest

SETTINGS = """
[automations]
touch = "jobs:touch"
"""
JOBS = '''
def touch(ctx):
    if not ctx.dry_run:
        ctx.paths.base.joinpath("marker").write_text(ctx.environment)
'''


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    assert run_cli("init", cwd=root).exit_code == 0
    assert run_cli("--env", "prod", "init", cwd=root).exit_code == 0
    return root


@pytest.mark.parametrize(
    "name",
    ["history.sqlite3", "audit/audit_development.jsonl", "logs/automation_development.log", "locks/touch.lock"],
)
def test_a_file_hard_linked_to_production_s_is_never_written(project, run_cli, name):
    """A hard link is no symlink: O_NOFOLLOW opens it, and development's writes landed in production's file."""
    victim = project / "var" / "production" / "victim"
    victim.write_bytes(b"production's own bytes\n")
    mine = project / "var" / "development" / name
    mine.unlink(missing_ok=True)
    os.link(victim, mine)
    result = run_cli("run", "touch", cwd=project)
    assert result.exit_code == 3, result.output
    assert "hard link" in result.stderr and str(mine) in result.stderr
    assert victim.read_bytes() == b"production's own bytes\n"
    assert not (project / "var" / "development" / "marker").exists()


def test_check_names_a_hard_linked_history(project, run_cli):
    victim = project / "var" / "production" / "history.sqlite3"
    victim.write_bytes(b"")
    os.link(victim, project / "var" / "development" / "history.sqlite3")
    check = run_cli("check", cwd=project)
    assert check.exit_code == 1 and "HISTORY_FILE" in check.stdout and "hard links" in check.stdout


def test_a_tree_base_linked_elsewhere_in_the_project_is_refused_before_anything_is_written(make_project, run_cli):
    """The trail is never written through a link; a linked base once had init create the tree through it, then fail."""
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    (root / "data" / "dev").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "development").symlink_to(root / "data" / "dev")
    for args in (("init",), ("run", "touch")):
        result = run_cli(*args, cwd=root)
        assert result.exit_code == 3 and "var/development is a symlink" in result.stderr, result.output
    assert list((root / "data" / "dev").iterdir()) == []
    assert "DIR_SYMLINK" in run_cli("check", cwd=root).stdout


def test_a_link_swapped_in_for_the_base_after_the_check_is_not_followed(make_project, run_cli):
    """Between the tree's inspection and a write, the base becomes a link to production's tree."""
    from envfence import files
    from envfence.errors import SafetyError

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    assert run_cli("--env", "prod", "init", cwd=root).exit_code == 0
    (root / "var").mkdir(exist_ok=True)
    (root / "var" / "development").symlink_to(root / "var" / "production")
    with pytest.raises(SafetyError) as raised:
        files.write_atomic(root / "var" / "development", "history.sqlite3", b"development's rows")
    assert "symlink" in str(raised.value)
    assert not (root / "var" / "production" / "history.sqlite3").exists()


@pytest.mark.parametrize(
    "table",
    [
        '[directories]\nbase = "var/{environment}/../production"',  # development's tree, normalised, is production's
        '[directories.paths]\ndevelopment = "var/Production"',      # the same directory where names ignore case
    ],
)
def test_a_tree_that_is_production_s_under_another_spelling_is_refused(make_project, run_cli, table):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS + table + "\n")
    result = run_cli("run", "touch", cwd=root)
    assert result.exit_code == 3 and "overlaps the production tree" in result.stderr, result.output
    assert not (root / "var" / "production" / "marker").exists() and not (root / "var" / "Production").exists()
    assert "DIR_OVERLAP" in run_cli("check", cwd=root).stdout
