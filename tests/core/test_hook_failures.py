"""A plugin that raises in a hook is reported by name, and the command goes on or stops as that hook's policy says."""

from __future__ import annotations

import json
import sys

import click

from envfence import hookimpl
from envfence.hookspecs import POLICIES
from envfence.cli.plugins import hookspec_names
from envfence import hookspecs

CANARY = "hookfail-CANARY-5150"
AUTOMATION = f"""
[automations.hello]
run = [{json.dumps(sys.executable)}, "-c", "print('hello ran')"]
"""


def test_every_hook_declares_its_failure_policy():
    assert set(POLICIES) == set(hookspec_names(hookspecs))


def test_collecting_hook_error_is_a_finding_naming_the_plugin_and_others_still_answer(envfence_project, envfence_plugin):
    class Breaks:
        @hookimpl
        def validate(self):
            raise RuntimeError(f"validator broke near {CANARY}")

    envfence_plugin(Breaks(), "breaks")
    envfence_project.write(".env", f"DEV_SYNC_TOKEN={CANARY}\nDEV_WEBHOOK_PORT=notaport\n")
    result = envfence_project.run("--json", "check")
    findings = json.loads(result.stdout)["findings"]
    [failed] = [f for f in findings if f["code"] == "PLUGIN_ERROR"]
    assert failed["plugin"] == "breaks" and "RuntimeError" in failed["message"]
    assert "SERVICE_PORT_INVALID" in {f["code"] for f in findings}  # the built-ins still ran
    assert CANARY not in result.output


def test_firstresult_hook_error_names_the_plugin_and_the_next_one_answers(envfence_project, envfence_plugin):
    class Detects:
        @hookimpl(tryfirst=True)
        def detect_environment(self):
            raise RuntimeError("detector broke")

    envfence_plugin(Detects(), "detects")
    session = envfence_project.session(environ={"ENVIRONMENT": "production"})
    assert session.environment.name == "production"  # environment_variable answered
    [failed] = [f for f in session.report.findings if f.code == "PLUGIN_ERROR"]
    assert failed.plugin == "detects" and "detect_environment" in failed.message


def test_wrapper_error_names_the_plugin_and_the_wrapped_answers_stand(envfence_project, envfence_plugin):
    class Wraps:
        @hookimpl(wrapper=True)
        def validate(self):
            findings = yield
            raise RuntimeError(f"wrapper broke after {len(findings)} findings")

    envfence_plugin(Wraps(), "wraps")
    envfence_project.write(".env", "DEV_WEBHOOK_PORT=notaport\n")
    codes = envfence_project.session().report.codes()
    assert "SERVICE_PORT_INVALID" in codes and "PLUGIN_ERROR" in codes
    [failed] = [f for f in envfence_project.session().report.findings if f.code == "PLUGIN_ERROR"]
    assert failed.plugin == "wraps"


def test_register_commands_error_is_a_warning_and_every_other_command_works(envfence_project, envfence_plugin):
    class Commands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("hello-there")
            def hello_there():
                click.echo("hi")

            raise RuntimeError("command registration broke")

    envfence_plugin(Commands(), "commands")
    result = envfence_project.run("--help")
    assert result.exit_code == 0, result.output
    assert "plugin 'commands' failed in register_commands" in result.stderr
    assert "-p no:commands" in result.stderr
    assert "detect" in result.stdout and envfence_project.run("detect").exit_code == 0


def test_on_run_start_error_is_logged_and_audited_and_the_run_goes_on(envfence_project, envfence_plugin, audit_events):
    class Starts:
        @hookimpl
        def on_run_start(self):
            raise RuntimeError(f"tracker down {CANARY}")

    envfence_plugin(Starts(), "starts")
    envfence_project.settings(AUTOMATION)
    envfence_project.setenv(DEV_TRACKER_TOKEN=CANARY)
    result = envfence_project.run("run", "hello")
    assert result.exit_code == 0, result.output
    assert "hello ran" in result.stdout
    [failed] = [e for e in audit_events if e.event == "plugin.failed"]
    assert failed.data["plugin"] == "starts" and failed.data["hook"] == "on_run_start"
    assert CANARY not in repr(audit_events)
    log = next((envfence_project.path / "var" / "development" / "logs").glob("*.log")).read_text()
    assert "plugin 'starts' failed in on_run_start" in log and CANARY not in log


def test_register_automations_error_stops_with_a_configuration_error_naming_the_plugin(envfence_project, envfence_plugin):
    class Registers:
        @hookimpl
        def register_automations(self):
            raise RuntimeError("registry broke")

    envfence_plugin(Registers(), "registers")
    result = envfence_project.run("list")
    assert result.exit_code == 4
    assert "plugin 'registers' failed in register_automations" in result.stderr and "-p no:registers" in result.stderr


def test_an_optional_hook_the_specs_do_not_know_keeps_the_plugin(envfence_project, envfence_plugin):
    class Optional:
        @hookimpl(optionalhook=True)
        def a_hook_from_a_future_version(self):
            return None

        @hookimpl
        def validate(self):
            from envfence.models import Finding

            return [Finding("OPTIONAL_PLUGIN_RAN", "info", "ran")]

    envfence_plugin(Optional(), "optional")
    records = {r["name"]: r for r in json.loads(envfence_project.run("--json", "plugins").stdout)}
    assert records["optional"]["status"] == "loaded"
    assert "OPTIONAL_PLUGIN_RAN" in envfence_project.session().report.codes()


def test_plugins_are_listed_in_registration_order(envfence_project, envfence_plugin):
    from envfence_builtins import ORDER

    class Inline:
        @hookimpl
        def validate(self):
            return []

    envfence_plugin(Inline(), "zz-inline")
    names = [r["name"] for r in json.loads(envfence_project.run("--json", "plugins").stdout)]
    builtins = [n for n in names if n in ORDER]
    assert builtins == [n for n in ORDER if n in builtins]
    third_party = names[len(builtins):-1]
    assert third_party == sorted(third_party) and names[-1] == "zz-inline"
    assert names.index("zz-inline") > max(names.index(n) for n in builtins)


def test_the_builtins_order_names_every_builtin_entry_point_once():
    from envfence.entrypoints import entry_points
    from envfence.plugins import BUILTIN_PACKAGE
    from envfence_builtins import ORDER

    builtins = {ep.name for ep in entry_points("envfence") if ep.value.startswith(BUILTIN_PACKAGE + ".")}
    assert sorted(ORDER) == sorted(builtins) and len(set(ORDER)) == len(ORDER)


def test_one_cause_is_one_finding_whichever_plugins_report_it(make_project, run_cli):
    # A typo under an automation is read by the automations and the schedule plugins alike.
    root = make_project(settings='[automations.sync]\nrun = "true"\nschedul = "0 * * * *"\n')
    data = json.loads(run_cli("--json", "check", cwd=root).stdout)
    said = [f for f in data["findings"] if "automations.sync.schedul: unknown key" in f["message"]]
    assert len(said) == 1, said


def test_a_raising_host_classifier_is_said_once_by_check_and_shown_by_detect(make_project, run_cli, envfence_plugin, monkeypatch):
    import envfence

    class Broken:
        @envfence.hookimpl(tryfirst=True)
        def classify_host(self, hostname, settings):
            raise RuntimeError("inventory unreachable")

    envfence_plugin(Broken(), "inventory")
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "web-01")  # a stand-in: the classifier is asked about two names
    root = make_project()
    data = json.loads(run_cli("--json", "check", cwd=root).stdout)
    errors = [f for f in data["findings"] if f["plugin"] == "inventory"]
    assert len(errors) == 1 and "inventory unreachable" in errors[0]["message"], data["findings"]
    shown = run_cli("-v", "detect", cwd=root)
    assert "inventory unreachable" in shown.output
    as_json = json.loads(run_cli("--json", "detect", cwd=root).stdout)
    assert any("inventory unreachable" in note["message"] for note in as_json["notes"])


def test_a_failure_reported_before_any_session_masks_every_plugins_secret_shapes(envfence_project, envfence_plugin):
    """A plugin that fails where no session exists (``register_commands``) is reported without the token it held."""
    token = "pat" + "Q7" * 7 + "." + "c0ffee42" * 8  # the Airtable plugin's shape of a personal access token

    class Commands:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError(f"could not add commands with {token}")

    envfence_plugin(Commands(), "commands")
    result = envfence_project.run("audit", "show")  # a plugin's command: every plugin adds its commands first
    assert "commands" in result.stderr and "RuntimeError" in result.stderr
    assert token not in result.output and "pat" + "Q7" * 7 not in result.output


def test_a_plugin_failing_in_secret_shapes_is_reported_once_and_the_rest_still_mask(envfence_project, envfence_plugin):
    token = "pat" + "Q7" * 7 + "." + "c0ffee42" * 8

    class Shapes:
        @hookimpl
        def secret_shapes(self):
            raise RuntimeError("no shapes today")

    class Commands:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError(f"could not add commands with {token}")

    envfence_plugin(Shapes(), "shapes")
    envfence_plugin(Commands(), "commands")
    result = envfence_project.run("audit", "show")
    assert result.exit_code == 0 and "no shapes today" in result.stderr
    assert token not in result.output
