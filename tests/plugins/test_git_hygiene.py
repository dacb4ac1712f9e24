"""Secrets that must not reach git, as `envfence check`, `init` and the pre-commit hook show it."""

from __future__ import annotations

import json
import subprocess

import pytest

CANARY = "pat-canary-7Qz\\\"x'9-secret"


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def repo(make_project):
    root = make_project({".env": "APP_NAME=sync\n"})
    git(root, "init", "-q")
    return root


def test_check_reports_a_tracked_env_file_holding_a_secret(repo, run_cli):
    (repo / ".env").write_text(f"APP_NAME=sync\nDEV_AIRTABLE_API_KEY={CANARY}\n")
    git(repo, "add", ".env")
    result = run_cli("--json", "check", cwd=repo)
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "GIT_TRACKED_SECRET"]
    assert [(f["file"], f["line"], f["key"]) for f in found] == [(".env", 2, "DEV_AIRTABLE_API_KEY")]
    assert "pat-canary" not in result.stdout + result.stderr


def test_an_untracked_or_encrypted_secret_is_not_reported(repo, run_cli):
    (repo / ".env").write_text("APP_NAME=sync\nDEV_AIRTABLE_API_KEY=enc:fernet:abc\n")
    (repo / ".env.local").write_text(f"DEV_AIRTABLE_API_KEY={CANARY}\n")
    git(repo, "add", ".env")
    result = run_cli("--json", "check", cwd=repo)
    assert "GIT_TRACKED_SECRET" not in result.stdout


def test_plaintext_production_secret_is_reported_where_a_production_key_exists(make_project, run_cli):
    root = make_project({".env": f"PROD_AIRTABLE_API_KEY={CANARY}\nDEV_AIRTABLE_API_KEY={CANARY}\n"})
    result = run_cli("--json", "check", cwd=root)
    assert "PLAINTEXT_PROD_SECRET" not in result.stdout  # no key: nothing to encrypt with
    result = run_cli("--json", "check", cwd=root, env={"ENVFENCE_KEY_PROD": "x" * 44})
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "PLAINTEXT_PROD_SECRET"]
    assert [f["key"] for f in found] == ["PROD_AIRTABLE_API_KEY"]
    assert "secret encrypt PROD_AIRTABLE_API_KEY" in found[0]["remediation"]
    assert "pat-canary" not in result.stdout + result.stderr


def test_precommit_refuses_a_staged_plaintext_secret_and_names_only_file_line_key(repo, run_cli):
    (repo / ".env.production").write_text(f"# prod\nAIRTABLE_API_KEY={CANARY}\n")
    git(repo, "add", ".env.production")
    result = run_cli("precommit", cwd=repo)
    assert result.exit_code == 1
    assert ".env.production:2: AIRTABLE_API_KEY holds a plaintext secret" in result.stderr
    assert "pat-canary" not in result.stdout + result.stderr
    # Encrypted and staged again: the commit may go ahead.
    (repo / ".env.production").write_text("AIRTABLE_API_KEY=enc:fernet:gAAAA\n")
    git(repo, "add", ".env.production")
    assert run_cli("precommit", ".env.production", cwd=repo).exit_code == 0


def test_precommit_refuses_any_local_file(repo, run_cli):
    (repo / ".env.local").write_text("A=1\n")
    git(repo, "add", "-f", ".env.local")
    result = run_cli("precommit", cwd=repo)
    assert result.exit_code == 1 and "never commit it" in result.stderr


def test_precommit_hook_is_declared_for_pre_commit():
    from pathlib import Path

    text = (Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text()
    assert "entry: envfence precommit" in text and "id: envfence-no-plaintext-secrets" in text


def test_init_offers_the_gitignore_lines_it_lacks_with_the_command_that_adds_them(repo, run_cli):
    result = run_cli("init", cwd=repo)
    assert result.exit_code == 0, result.output
    assert "does not ignore var/, .env*.local" in result.stdout
    assert "envfence init --gitignore" in result.stdout
    assert not (repo / ".gitignore").exists()  # offered, not written
    (repo / ".gitignore").write_text("var/\n.env*.local\n")
    assert ".gitignore" not in run_cli("init", cwd=repo).stdout


def test_init_gitignore_adds_only_the_missing_lines_and_keeps_the_rest_byte_for_byte(repo, run_cli):
    original = b"# caf\xe9 notes\n*.pyc\nvar/"  # Latin-1, no final newline
    (repo / ".gitignore").write_bytes(original)
    (repo / ".gitignore").chmod(0o664)
    result = run_cli("init", "--gitignore", cwd=repo)
    assert result.exit_code == 0, result.output
    assert (repo / ".gitignore").read_bytes() == original + b"\n.env*.local\n"
    assert (repo / ".gitignore").stat().st_mode & 0o777 == 0o664
    # git itself reads the file so: the machine-local secrets and the trees are ignored, the rest is not.
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", ".env.development.local", "var/production/x",
                              ".env"], capture_output=True, text=True)
    assert ignored.stdout.split() == [".env.development.local", "var/production/x"], ignored
    again = run_cli("init", "--gitignore", cwd=repo)
    assert (repo / ".gitignore").read_bytes() == original + b"\n.env*.local\n"  # idempotent
    assert "nothing to do" in again.stdout and ".gitignore" not in again.stdout


def test_init_gitignore_never_writes_through_a_link(repo, run_cli, tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep\n")
    (repo / ".gitignore").symlink_to(elsewhere)
    result = run_cli("init", "--gitignore", cwd=repo)
    assert result.exit_code == 0, result.output
    assert elsewhere.read_text() == "keep\n" and (repo / ".gitignore").is_symlink()
    assert "is a link" in result.stdout


def test_a_second_init_reports_no_change_in_text_json_or_log(repo, run_cli):
    (repo / ".gitignore").write_text("var/\n.env*.local\n")
    assert run_cli("init", cwd=repo).exit_code == 0
    logs = sorted((repo / "var").rglob("*.log"))
    before = [p.read_text() for p in logs]
    again = run_cli("init", cwd=repo)
    assert "nothing to do" in again.stdout and "change(s)" not in again.output
    assert [p.read_text() for p in logs] == before
    assert json.loads(run_cli("--json", "init", cwd=repo).stdout)["changes"] == []


def _recording_git(tmp_path, monkeypatch):
    """A `git` first on PATH that logs its arguments, then runs the real one."""
    import shutil

    real = shutil.which("git")
    if real is None:
        pytest.skip("git is not installed: apt-get install git")
    bin_dir, log = tmp_path / "bin", tmp_path / "git-calls.log"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.delenv("GIT_DIR", raising=False)
    return log


def test_outside_any_repository_check_does_not_start_git(make_project, run_cli, tmp_path, monkeypatch):
    log = _recording_git(tmp_path, monkeypatch)
    root = make_project({".env": f"APP_NAME=sync\nDEV_AIRTABLE_API_KEY={CANARY}\n"})
    result = run_cli("--json", "check", cwd=root)
    assert result.exit_code in (0, 1), result.output
    assert not log.exists(), log.read_text()


def test_a_project_below_a_repository_or_in_a_worktree_is_still_checked(make_project, run_cli, tmp_path, monkeypatch):
    log = _recording_git(tmp_path, monkeypatch)
    root = make_project({"app/.env": f"APP_NAME=sync\nDEV_AIRTABLE_API_KEY={CANARY}\n", "app/envfence.toml": ""})
    git(root, "init", "-q")
    git(root, "add", "app/.env", "app/envfence.toml")
    result = run_cli("--json", "check", cwd=root / "app")
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "GIT_TRACKED_SECRET"]
    assert [(f["file"], f["key"]) for f in found] == [(".env", "DEV_AIRTABLE_API_KEY")]
    assert "ls-files" in log.read_text()
    # A worktree's .git is a file naming the repository: git is asked there too.
    worktree = tmp_path / "wt"
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "x")
    git(root, "worktree", "add", "-q", str(worktree))
    assert (worktree / ".git").is_file()
    result = run_cli("--json", "check", cwd=worktree / "app")
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "GIT_TRACKED_SECRET"]
    assert [(f["file"], f["key"]) for f in found] == [(".env", "DEV_AIRTABLE_API_KEY")]
