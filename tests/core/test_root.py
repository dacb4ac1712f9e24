"""Root discovery: --root, ENVFENCE_ROOT, envfence settings, then setup.py, VERSION, .git, else the working directory."""

from __future__ import annotations

import json


def root_of(run_cli, cwd, *args, **env):
    result = run_cli(*args, "--json", "detect", cwd=cwd, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["root"]


def test_envfence_toml_marks_the_root_from_a_subdirectory(tmp_path, run_cli):
    (tmp_path / "envfence.toml").write_text("")
    (tmp_path / "jobs" / "nightly").mkdir(parents=True)
    assert root_of(run_cli, tmp_path / "jobs" / "nightly") == {"path": str(tmp_path), "method": "envfence.toml"}


def test_pyproject_with_tool_envfence_marks_the_root(tmp_path, run_cli):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n\n[tool.envfence]\n")
    (tmp_path / "src").mkdir()
    assert root_of(run_cli, tmp_path / "src")["method"] == "pyproject.toml [tool.envfence]"


def test_pyproject_without_the_table_does_not(tmp_path, run_cli):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / ".git").mkdir()
    assert root_of(run_cli, tmp_path)["method"] == ".git"


def test_settings_beat_the_seed_markers(tmp_path, run_cli):
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "envfence.toml").write_text("")
    assert root_of(run_cli, tmp_path / "app")["path"] == str(tmp_path / "app")


def test_seed_order_setup_py_then_version_then_git(tmp_path, run_cli):
    # .git nearest, VERSION above it, setup.py at the top: setup.py wins,
    # then VERSION once setup.py is gone, then .git.
    top = tmp_path
    mid = top / "mid"
    low = mid / "low"
    low.mkdir(parents=True)
    (top / "setup.py").write_text("")
    (mid / "VERSION").write_text("1.0\n")
    (low / ".git").mkdir()
    assert root_of(run_cli, low) == {"path": str(top), "method": "setup.py"}
    (top / "setup.py").unlink()
    assert root_of(run_cli, low) == {"path": str(mid), "method": "VERSION"}
    (mid / "VERSION").unlink()
    assert root_of(run_cli, low) == {"path": str(low), "method": ".git"}


def test_working_directory_is_the_last_resort(tmp_path, run_cli):
    assert root_of(run_cli, tmp_path) == {"path": str(tmp_path), "method": "working directory"}


def test_envfence_root_variable_wins(tmp_path, run_cli):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "envfence.toml").write_text("")
    assert root_of(run_cli, tmp_path, ENVFENCE_ROOT=str(project)) == {"path": str(project), "method": "ENVFENCE_ROOT"}


def test_root_flag_wins_over_the_variable(tmp_path, run_cli):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert root_of(run_cli, tmp_path, "--root", str(a), ENVFENCE_ROOT=str(b)) == {"path": str(a), "method": "--root"}


def test_envfence_root_that_is_not_a_directory_is_a_clear_error(tmp_path, run_cli):
    result = run_cli("detect", cwd=tmp_path, env={"ENVFENCE_ROOT": str(tmp_path / "missing")})
    assert result.exit_code == 4
    assert "ENVFENCE_ROOT=" in result.stderr and "not a directory" in result.stderr


def test_files_are_read_from_the_root_not_the_working_directory(tmp_path, run_cli):
    (tmp_path / "envfence.toml").write_text("")
    (tmp_path / ".env").write_text("WHERE=root\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".env").write_text("WHERE=sub\n")
    data = json.loads(run_cli("--json", "config", "show", cwd=tmp_path / "sub").stdout)
    assert data["values"]["WHERE"] == "root"
