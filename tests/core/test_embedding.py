"""Embedding: a cheap import, a session API, the process-wide singleton."""

from __future__ import annotations

import json
import subprocess
import sys

import envfence

HEAVY = ["pyairtable", "requests", "loguru", "envfence_builtins", "envfence.testing", "sqlite3"]


def modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_envfence_loads_nothing_heavy():
    loaded = modules_after("import envfence")
    assert not [m for m in HEAVY if m in loaded]
    assert "pluggy" not in loaded and "click" not in loaded


def test_cli_help_loads_nothing_heavy():
    loaded = modules_after(
        "from envfence.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not [m for m in ["pyairtable", "requests", "loguru", "envfence.testing"] if m in loaded]


def test_detect_imports_no_library_only_one_command_needs(make_project):
    """Every command imports every plugin: a plugin imports an archive format or statistics where it uses them."""
    loaded = modules_after(
        f"import os\nos.chdir({str(make_project())!r})\nfrom envfence.cli import main\n"
        "try:\n    main(['detect'])\nexcept SystemExit:\n    pass"
    )
    assert not [m for m in ["tarfile", "statistics", "html", "loguru", "pyairtable", "requests"] if m in loaded]


def test_python_dash_m_envfence(make_project):
    proc = subprocess.run([sys.executable, "-m", "envfence", "--json", "detect"], cwd=make_project(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["environment"] == "development"


def test_open_session_api(make_project):
    root = make_project({".env": "A=1\n", ".env.production": "A=2\n"})
    session = envfence.open_session(root, env="prod", environ={}, hostname="web-prod-01")
    assert session.environment.name == "production"
    assert session.host.environment == "production"
    assert session.profile.strict and not session.profile.interactive
    assert session.config["A"] == "2"
    assert session.root.path == root
    assert session.report.ok


def test_session_singleton_and_reset(make_project, monkeypatch):
    root = make_project({".env": "A=first\n"})
    monkeypatch.chdir(root)
    first = envfence.session()
    assert envfence.session() is first
    (root / ".env").write_text("A=second\n")
    assert envfence.session().config["A"] == "first"
    envfence.reset_session()
    assert envfence.session().config["A"] == "second"


def test_profiles_follow_their_base(make_project):
    root = make_project(settings='[environments.staging]\nbased_on = "production"\n[environments.staging.profile]\noutput = "verbose"\n')
    session = envfence.open_session(root, env="staging", environ={})
    assert isinstance(session.profile, envfence.ProductionProfile)
    assert session.profile.strict and session.profile.output == "verbose"
    dev = envfence.open_session(root, environ={}).profile
    assert isinstance(dev, envfence.DevelopmentProfile) and dev.interactive and not dev.strict


def test_validation_runs_when_the_report_is_first_read(make_project, recorded):
    class Counting:
        calls = 0

        @envfence.hookimpl
        def validate(self):
            Counting.calls += 1
            return [envfence.Finding("TEAM_RULE", "error", "broken")]

    recorded.plugins.register(Counting(), "counting")
    session = envfence.open_session(make_project(), environ={}, plugins=recorded.plugins)
    assert Counting.calls == 0  # opening (detect, config show) does not validate
    assert "TEAM_RULE" in session.report.codes() and session.report.codes() == session.report.codes()
    assert Counting.calls == 1
    assert [e.event for e in recorded.events].count("validation.failed") == 1
