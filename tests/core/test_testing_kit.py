"""The testing kit plugin authors use: fixtures a suite opts into, and none for a suite that did not."""

from __future__ import annotations

import subprocess
import sys


OPT_IN = 'pytest_plugins = ["envfence.testing.pytest_plugin", "envfence_builtins.fakes.pytest_fixtures"]\n'


def test_fixtures_work_in_a_plugin_authors_test_suite(pytester):
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(
        """
        from envfence import hookimpl
        from envfence.models import Finding


        class Policy:
            @hookimpl
            def validate(self, session):
                return [Finding("TEAM_RULE", "warning", f"checked {session.environment.name}")]


        def test_project_files_env_and_hostname(envfence_project):
            envfence_project.write(".env", "GREETING=hello\\n")
            envfence_project.hostname = "web-prod-01"
            envfence_project.setenv(PROD_API_TOKEN="canary-token-123")
            result = envfence_project.run("--json", "config", "show")
            assert result.exit_code == 0, result.output
            assert '"GREETING": "hello"' in result.stdout
            assert "canary-token-123" not in result.output
            assert envfence_project.session().environment.name == "production"


        def test_register_a_plugin_for_one_test(envfence_project, envfence_plugin):
            envfence_plugin(Policy(), "policy")
            assert "TEAM_RULE" in envfence_project.session().report.codes()


        def test_the_plugin_is_gone_in_the_next_test(envfence_project):
            assert "TEAM_RULE" not in envfence_project.session().report.codes()


        def test_audit_events_are_collected(envfence_project, envfence_audit_events):
            envfence_project.run("--env", "prod", "detect")
            detected = [e for e in envfence_audit_events if e.event == "environment.detected"]
            assert detected[0].environment == "production"
            assert detected[0].data["method"] == "flag"

        def test_emulated_services_answer_real_clients(envfence_fake_airtable, envfence_fake_housecallpro):
            import requests
            from pyairtable import Api
            from envfence.testing import DEMO_DEV_KEY, DEMO_DEV_TOKEN

            assert Api(DEMO_DEV_TOKEN, endpoint_url=envfence_fake_airtable.url).whoami()["id"]
            answer = requests.get(f"{envfence_fake_housecallpro.url}/company", headers={"Authorization": f"Token {DEMO_DEV_KEY}"}, timeout=5)
            assert answer.status_code == 200
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_developer_shell_does_not_leak_into_the_project(envfence_project, monkeypatch):
    # envfence_project cleared these before the test; set them again now to
    # show that run() still gives the project its own hostname.
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "db-prod-02")
    assert "host_class=none" in envfence_project.run("-q", "detect").stdout


def test_envfence_help_does_not_import_the_testing_kit():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "envfence", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "| envfence.cli" in proc.stderr  # the import log is there to read
    assert "envfence.testing" not in proc.stderr


def test_envfence_plugins_setting_isolates_a_plugins_tests_from_other_installed_plugins(pytester):
    pytester.makeconftest(OPT_IN)
    pytester.makeini("[pytest]\nenvfence_plugins = acme\n")
    pytester.makepyfile(
        """
        import json

        def test_only_builtins_and_the_named_plugin(envfence_project):
            listed = {p["name"]: p["status"] for p in json.loads(envfence_project.run("--json", "plugins").stdout)}
            assert listed["acme"] == "loaded" and listed["dotenv_files"] == "loaded"
            assert listed["slack"] == "disabled"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def _fixtures(project, conftest: str | None) -> set[str]:
    """``pytest --fixtures`` of a throwaway project, run as its own process with every installed pytest plugin."""
    import os

    project.mkdir()
    (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    if conftest is not None:
        (project / "conftest.py").write_text(conftest)
    environ = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD" and not k.startswith("PYTEST_XDIST")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
        cwd=project, capture_output=True, text=True, env=environ, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    import re

    return set(re.findall(r"^(\w+)(?: \[[\w ]+\])? -- ", done.stdout, re.M))


def test_a_project_with_envfence_installed_gets_no_fixture_it_did_not_ask_for(tmp_path):
    plain = _fixtures(tmp_path / "plain", None)
    assert "tmp_path" in plain  # pytest's own are listed
    assert not {n for n in plain if "envfence" in n or "fake" in n}
    assert not plain & {"make_project", "run_cli", "recorded", "audit_events"}
    kit = _fixtures(tmp_path / "kit", 'pytest_plugins = ["envfence.testing.pytest_plugin"]\n')
    for name in ("envfence_project", "envfence_plugin", "envfence_make_project", "envfence_run_cli", "envfence_recorded",
                 "envfence_audit_events"):
        assert name in kit, name
    # Every name prefixed, and the core's kit knows no service by name.
    assert all(n.startswith("envfence_") for n in kit - plain) and not {n for n in kit if "fake" in n}
    fakes = _fixtures(tmp_path / "fakes", 'pytest_plugins = ["envfence_builtins.fakes.pytest_fixtures"]\n')
    assert "envfence_fake_airtable" in fakes and "envfence_fake_housecallpro" in fakes
