"""Plugin tooling: `plugins --hooks`, strict plugins, required plugins, tracing, inline plugins."""

from __future__ import annotations

import json

from envfence import hookimpl
from envfence.models import Environment, HostInfo


class AlwaysStaging:
    """Answers detection before the built-ins."""

    @hookimpl(tryfirst=True)
    def classify_host(self, hostname):
        return HostInfo(hostname, matches=(("production", "everything"),))

    @hookimpl
    def detect_environment(self):
        return Environment("production", "plugin", "AlwaysStaging")


class Broken:
    """Implements a hook that does not exist, so it fails to register."""

    @hookimpl
    def detect_enviroment(self):  # misspelt on purpose
        return None


def test_plugins_hooks_lists_each_hook_with_its_plugins_in_call_order(envfence_project, envfence_plugin):
    envfence_plugin(AlwaysStaging(), "always")
    result = envfence_project.run("plugins", "--hooks")
    assert result.exit_code == 0, result.output
    block = result.stdout.split("classify_host (firstresult)\n")[1].split("detect_environment")[0]
    lines = block.splitlines()
    # Inline plugins register last, so among tryfirst ones they are called first;
    # the built-in hostname matcher has no marker and comes after every tryfirst.
    assert lines[0] == "    1. always [tryfirst]"
    assert lines[-1].endswith(". hostname")
    alone = envfence_project.run("-p", "no:logging", "plugins", "--hooks").stdout
    assert alone.split("configure_logging (firstresult)\n")[1].startswith("    (no plugin)\n")


def test_plugins_hooks_json_gives_order_and_markers(envfence_project, envfence_plugin):
    envfence_plugin(AlwaysStaging(), "always")
    result = envfence_project.run("--json", "plugins", "--hooks")
    table = {row["hook"]: row for row in json.loads(result.stdout)}
    detect = [p["plugin"] for p in table["detect_environment"]["plugins"]]
    # environment_variable is tryfirst, hostname trylast; the plain inline plugin sits between.
    assert detect == ["environment_variable", "always", "hostname"]
    assert table["detect_environment"]["firstresult"] is True
    assert table["load_config"]["firstresult"] is False


def test_failed_plugin_is_a_warning_by_default(envfence_project, envfence_plugin):
    envfence_plugin(Broken(), "broken")
    result = envfence_project.run("detect")
    assert result.exit_code == 0
    assert "plugin 'broken' failed to load" in result.stderr
    assert "detect_enviroment" in envfence_project.run("plugins").stdout


def test_strict_plugins_flag_makes_a_failed_plugin_an_error(envfence_project, envfence_plugin):
    envfence_plugin(Broken(), "broken")
    result = envfence_project.run("--strict-plugins", "detect")
    assert result.exit_code == 4
    assert "--strict-plugins" in result.stderr
    assert "broken: implements unknown hook(s): detect_enviroment" in result.stderr
    assert "hint: fix or reinstall the plugin" in result.stderr


def test_strict_plugins_variable_and_setting_do_the_same(envfence_project, envfence_plugin):
    envfence_plugin(Broken(), "broken")
    assert envfence_project.run("detect", env={"ENVFENCE_STRICT_PLUGINS": "1"}).exit_code == 4
    envfence_project.settings("strict_plugins = true\n")
    result = envfence_project.run("detect")
    assert result.exit_code == 4
    assert "strict_plugins = true in" in result.stderr and "envfence.toml" in result.stderr


def test_strict_plugins_passes_when_every_plugin_loaded(envfence_project):
    envfence_project.settings("strict_plugins = true\n")
    assert envfence_project.run("detect").exit_code == 0


def test_strict_plugins_setting_must_be_a_boolean(envfence_project):
    envfence_project.settings('strict_plugins = "yes"\n')
    result = envfence_project.run("detect")
    assert result.exit_code == 4
    assert "strict_plugins: must be true or false, not 'yes'" in result.stderr


def test_required_plugins_missing_or_disabled_are_findings(envfence_project):
    envfence_project.settings('required_plugins = ["hostname", "warehouse"]\n')
    report = envfence_project.session().report
    missing = [f for f in report.findings if f.code == "PLUGIN_REQUIRED_MISSING"]
    assert [(f.plugin, f.severity) for f in missing] == [("warehouse", "error")]
    assert "not installed" in missing[0].message
    assert missing[0].file.endswith("envfence.toml")

    report = envfence_project.session(disabled_plugins=["hostname"]).report
    disabled = {f.plugin: f.message for f in report.findings if f.code == "PLUGIN_REQUIRED_MISSING"}
    assert "disabled" in disabled["hostname"]


def test_check_reports_each_missing_required_plugin(envfence_project):
    envfence_project.settings('required_plugins = ["hostname", "warehouse", "audit"]\n')
    result = envfence_project.run("-p", "no:audit", "--json", "check")
    assert result.exit_code == 1
    missing = {f["plugin"]: f for f in json.loads(result.stdout)["findings"] if f["code"] == "PLUGIN_REQUIRED_MISSING"}
    assert sorted(missing) == ["audit", "warehouse"]
    assert "(not installed)" in missing["warehouse"]["message"]
    assert "disabled" in missing["audit"]["message"]
    text = envfence_project.run("check").stdout
    assert "required plugin 'warehouse' is not loaded" in text and "remove it from required_plugins" in text


def test_required_plugins_present_give_no_finding(envfence_project):
    envfence_project.settings('required_plugins = ["hostname", "dotenv_files"]\n')
    assert "PLUGIN_REQUIRED_MISSING" not in envfence_project.session().report.codes()


def test_trace_prints_every_hook_call_with_plugins_timings_and_outcome(envfence_project, envfence_plugin):
    envfence_plugin(AlwaysStaging(), "always")
    result = envfence_project.run("detect", env={"ENVFENCE_TRACE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("envfence: trace: ")]
    classify = next(line for line in lines if line.startswith("envfence: trace: classify_host ["))
    assert "always" in classify and "(answered)" in classify
    assert classify.endswith("hostname (not called)")
    load = next(line for line in lines if "trace: load_config [" in line)
    assert "dotenv_files" in load and " ms (answered)" in load


def test_trace_is_off_by_default(envfence_project):
    assert "trace:" not in envfence_project.run("detect").stderr


def test_inline_plugin_is_listed_and_can_be_disabled(envfence_project, envfence_plugin):
    envfence_plugin(AlwaysStaging(), "always")
    listing = envfence_project.run("plugins").stdout
    assert "always" in listing and "inline" in listing
    assert envfence_project.session().environment.name == "production"
    assert envfence_project.session(disabled_plugins=["always"]).environment.name == "development"


def test_trace_names_a_hook_called_through_a_wrapper(envfence_project, envfence_plugin):
    class Timing:
        @hookimpl(wrapper=True)
        def validate(self):
            findings = yield
            return findings

    envfence_plugin(Timing(), "timing")
    result = envfence_project.run("-q", "check", env={"ENVFENCE_TRACE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    line = next(l for l in result.stderr.splitlines() if l.startswith("envfence: trace: validate ["))
    assert "timing" in line and "(through a wrapper: no per-plugin timings)" in line
