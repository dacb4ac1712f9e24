"""The testing kit plugin authors use: fixtures loaded from the pytest11 entry point."""

from __future__ import annotations

import subprocess
import sys


def test_fixtures_work_in_a_plugin_authors_test_suite(pytester):
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


        def test_audit_events_are_collected(envfence_project, audit_events):
            envfence_project.run("--env", "prod", "detect")
            detected = [e for e in audit_events if e.event == "environment.detected"]
            assert detected[0].environment == "production"
            assert detected[0].data["method"] == "flag"

        def test_emulated_services_answer_real_clients(fake_airtable, fake_housecallpro):
            import requests
            from pyairtable import Api
            from envfence.testing import DEMO_DEV_KEY, DEMO_DEV_TOKEN

            assert Api(DEMO_DEV_TOKEN, endpoint_url=fake_airtable.url).whoami()["id"]
            answer = requests.get(f"{fake_housecallpro.url}/company", headers={"Authorization": f"Token {DEMO_DEV_KEY}"}, timeout=5)
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
