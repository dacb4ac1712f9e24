"""Every hook, exercised through the core the way a plugin meets it.

Each test is named ``test_hook_<hook>`` so that the meta-test in
tests/docs/test_reference.py can see that every hookspec has one.
"""

from __future__ import annotations

import json

import click

from envfence import hookimpl
from envfence.models import Automation, ConfigLayer, Environment, EnvPaths, Finding, HostInfo, ProjectRoot, SettingSpec


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hook_find_project_root(envfence_project, envfence_plugin, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    class Root:
        @hookimpl(tryfirst=True)
        def find_project_root(self, start, environ):
            return ProjectRoot(elsewhere, "team convention", str(start))

    envfence_plugin(Root())
    root = _json(envfence_project.run("--json", "detect"))["root"]
    assert root == {"path": str(elsewhere), "method": "team convention"}


def test_hook_classify_host(envfence_project, envfence_plugin):
    class Inventory:
        @hookimpl(tryfirst=True)
        def classify_host(self, hostname, settings):
            if hostname == "box-17":
                return HostInfo(hostname, tokens=("box",), matches=(("production", "inventory"),))

    envfence_plugin(Inventory())
    envfence_project.hostname = "box-17"
    data = _json(envfence_project.run("--json", "detect"))
    assert data["host"]["class"] == "production"
    assert data["host"]["matches"] == [{"environment": "production", "token": "inventory"}]


def test_hook_detect_environment(envfence_project, envfence_plugin):
    class FromFile:
        @hookimpl
        def detect_environment(self, settings, environ, host):
            return Environment("production", "marker file", "/etc/role says prod")

    envfence_plugin(FromFile())
    data = _json(envfence_project.run("--json", "detect"))
    assert (data["environment"], data["method"], data["evidence"]) == ("production", "marker file", "/etc/role says prod")
    # The flag still wins over any plugin.
    assert _json(envfence_project.run("--json", "--env", "dev", "detect"))["method"] == "flag"


def test_hook_host_notes(envfence_project, envfence_plugin):
    asked = []

    class Inventory:
        @hookimpl
        def host_notes(self, session):
            return [Finding("HOST_IN_INVENTORY", "info", f"{session.host.hostname} is rack 4", "nothing to do")]

        @hookimpl
        def validate(self, session, live):
            asked.append("validate")  # detect shows the host notes without running the validation
            return [Finding("HOST_FROM_VALIDATION", "warning", "not a host note")]

    envfence_plugin(Inventory())
    envfence_project.hostname = "box-17"
    notes = _json(envfence_project.run("--json", "detect"))["notes"]
    assert [n["code"] for n in notes] == ["HOST_IN_INVENTORY"] and notes[0]["message"] == "box-17 is rack 4"
    assert asked == []
    assert "HOST_FROM_VALIDATION" in envfence_project.run("check").output and asked == ["validate"]


def test_hook_declare_settings(envfence_project, envfence_plugin):
    class Declares:
        @hookimpl
        def declare_settings(self, settings):
            return [
                SettingSpec("SIGNING_PHRASE", secret=True, doc="not secret by its name"),
                SettingSpec("BATCH_SIZE", default="50"),
            ]

    envfence_plugin(Declares())
    envfence_project.write(".env", "SIGNING_PHRASE=correct-horse-canary\n")
    result = envfence_project.run("--json", "config", "show")
    entries = {e["key"]: e for e in _json(result)["entries"]}
    assert entries["SIGNING_PHRASE"]["secret"] is True
    assert "correct-horse-canary" not in result.output
    assert (entries["BATCH_SIZE"]["value"], entries["BATCH_SIZE"]["source"]) == ("50", "defaults")


def test_hook_load_config(envfence_project, envfence_plugin):
    class Vault:
        @hookimpl
        def load_config(self, root, environment, settings, environ):
            return [ConfigLayer(f"vault:{environment.name}", {"REGION": "eu-west"}, precedence=15, plugin="vault")]

    envfence_plugin(Vault())
    envfence_project.write(".env", "REGION=us-east\n")
    envfence_project.write(".env.development", "OTHER=1\n")
    entries = {e["key"]: e for e in _json(envfence_project.run("--json", "config", "show"))["entries"]}
    # Precedence 15 sits between .env (10) and .env.<environment> (20).
    assert entries["REGION"]["value"] == "eu-west"
    assert entries["REGION"]["source"] == "vault:development"
    assert entries["REGION"]["overridden"] == [{"source": ".env", "value": "us-east"}]


def test_hook_validate(envfence_project, envfence_plugin):
    seen = []

    class Rule:
        @hookimpl
        def validate(self, session, live):
            seen.append(live)
            return [Finding("TEAM_RULE", "error", "always wrong", key="X", plugin="rule")]

    envfence_plugin(Rule())
    session = envfence_project.session()
    assert [f.code for f in session.report.errors] == ["TEAM_RULE"]
    assert not session.report.ok
    assert seen == [False]  # opening a session never runs live checks


def test_hook_environment_paths(envfence_project, envfence_plugin, tmp_path):
    class Shared:
        @hookimpl(tryfirst=True)
        def environment_paths(self, session):
            base = tmp_path / "srv" / session.environment.name
            return EnvPaths(session.environment.name, base, {"logs": base / "log"})

    envfence_plugin(Shared())
    paths = envfence_project.session(env="production").paths
    assert paths.base == tmp_path / "srv" / "production"
    assert paths.log_file() == tmp_path / "srv" / "production" / "log" / "automation_production.log"
    assert not paths.base.exists()  # computing paths creates nothing


def test_hook_register_commands(envfence_project, envfence_plugin):
    class Hello:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                """Say hello from a plugin."""
                click.echo("hello from a plugin")

    envfence_plugin(Hello(), "hello-plugin")
    assert "hello" in envfence_project.run("--help").stdout
    assert envfence_project.run("hello").stdout == "hello from a plugin\n"


def test_register_commands_follow_the_plugins_of_each_run(envfence_project, envfence_plugin):
    test_hook_register_commands(envfence_project, envfence_plugin)
    envfence_project.run("--help")
    result = envfence_project.run("-p", "no:hello-plugin", "hello")
    assert result.exit_code == 2 and "No such command 'hello'" in result.stderr


def test_hook_audit_event(envfence_project, audit_events):
    envfence_project.write(".env", "DEV_API_TOKEN=tok-canary-998877\n")
    session = envfence_project.session()
    session.credential("API_TOKEN", by="test")
    names = [e.event for e in audit_events]
    assert names[:2] == ["environment.detected", "config.loaded"]
    accessed = [e for e in audit_events if e.event == "credential.accessed"]
    assert accessed[-1].data == {"name": "API_TOKEN", "key": "DEV_API_TOKEN", "by": "test", "found": True}
    assert "tok-canary-998877" not in repr(audit_events)


def test_hook_decrypt_value(envfence_project, envfence_plugin):
    import codecs

    class Rot13:
        @hookimpl(tryfirst=True)
        def decrypt_value(self, key, value, source, environment):
            scheme, _, text = value.removeprefix("enc:").partition(":")
            return codecs.decode(text, "rot13") if scheme == "rot13" else None

    envfence_plugin(Rot13())
    envfence_project.write(".env", "DEV_SERVICE_TOKEN=enc:rot13:pnanel-gbxra\n")
    session = envfence_project.session()
    token = session.credential("SERVICE_TOKEN")
    assert token.reveal() == "canary-token"
    result = envfence_project.run("-q", "config", "show")
    assert "canary-token" not in result.output and "DEV_SERVICE_TOKEN=********" in result.stdout


# --- runs ---------------------------------------------------------------------------

CANARY = "patCANARYhooks001.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


class Stale(Exception):
    """An automation's own error type, for classify_error."""


class Jobs:
    """Registers two automations and records what the run hooks see."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def register_automations(self, session, register):
        register(Automation("greet", "say hello", function=lambda ctx: ctx.say(f"hello from {ctx.environment}")))
        register(Automation("stale", "fails", function=self._stale))

    def _stale(self, ctx):
        raise Stale(f"export is stale; token {CANARY}")

    @hookimpl
    def on_run_start(self, session, request, run_id):
        self.calls.append(("start", request.automation.name, run_id))

    @hookimpl
    def on_run_finish(self, session, request, outcome):
        self.calls.append(("finish", outcome.automation, outcome.status, outcome.run_id))

    @hookimpl
    def on_error(self, session, failure):
        self.calls.append(("error", failure.automation, failure.classification, failure.message))


def test_hook_register_automations(envfence_project, envfence_plugin):
    envfence_plugin(Jobs(), "jobs")
    listing = envfence_project.run("list")
    assert "greet  say hello" in listing.stdout and "stale  fails" in listing.stdout
    result = envfence_project.run("run", "greet")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello from development\n"


def test_hook_on_run_start(envfence_project, envfence_plugin):
    jobs = Jobs()
    envfence_plugin(jobs, "jobs")
    envfence_project.run("run", "greet")
    [start, finish] = jobs.calls
    assert start[:2] == ("start", "greet")
    assert start[2] == finish[3]  # the same run id from start to finish
    assert not envfence_project.run("run", "greet", "--dry-run").exit_code
    assert len(jobs.calls) == 2  # a dry run neither starts nor finishes


def test_hook_reap_abandoned_runs(envfence_project, envfence_plugin):
    """Called once per real run, before the lock: the run's own start comes after it."""
    jobs = Jobs()

    class Reaper:
        @hookimpl
        def reap_abandoned_runs(self, session):
            jobs.calls.append(("reap", session.prepared, envfence.runner.lock_path(session.paths, "greet").exists()))

    import envfence.runner

    envfence_plugin(jobs, "jobs")
    envfence_plugin(Reaper(), "reaper")
    envfence_project.run("run", "greet")
    assert [c[:2] for c in jobs.calls] == [("reap", True), ("start", "greet"), ("finish", "greet")]
    assert jobs.calls[0][2] is False  # the lock file does not exist yet: reaped before the lock
    envfence_project.run("run", "greet", "--dry-run")
    assert len(jobs.calls) == 3  # a dry run reaps nothing


def test_hook_on_run_finish(envfence_project, envfence_plugin):
    jobs = Jobs()
    envfence_plugin(jobs, "jobs")
    envfence_project.run("run", "greet")
    envfence_project.run("run", "stale")
    finishes = [c[:3] for c in jobs.calls if c[0] == "finish"]
    assert finishes == [("finish", "greet", "succeeded"), ("finish", "stale", "failed")]


def test_hook_on_error(envfence_project, envfence_plugin):
    jobs = Jobs()
    envfence_plugin(jobs, "jobs")
    envfence_project.write(".env", f"DEV_AIRTABLE_API_KEY={CANARY}\n")
    result = envfence_project.run("run", "stale")
    assert result.exit_code == 1
    [error] = [c for c in jobs.calls if c[0] == "error"]
    assert error[1] == "stale" and "export is stale" in error[3]
    assert CANARY not in error[3] and CANARY not in result.output


def test_hook_classify_error(envfence_project, envfence_plugin):
    jobs = Jobs()

    class Classes:
        @hookimpl(tryfirst=True)
        def classify_error(self, error):
            return "data" if isinstance(error, Stale) else None

    envfence_plugin(jobs, "jobs")
    envfence_plugin(Classes(), "classes")
    result = envfence_project.run("run", "stale")
    assert "stale failed (data)" in result.stderr
    assert [c[2] for c in jobs.calls if c[0] == "error"] == ["data"]


def test_hook_pre_run_safety(envfence_project, envfence_plugin):
    class Freeze:
        @hookimpl
        def pre_run_safety(self, session, request):
            if request.automation.name == "greet":
                return [Finding("TEAM_FREEZE", "error", "change freeze until Monday", "wait, or force with a reason")]

    envfence_plugin(Jobs(), "jobs")
    envfence_plugin(Freeze(), "freeze")
    blocked = envfence_project.run("run", "greet")
    assert blocked.exit_code == 3
    assert "TEAM_FREEZE: change freeze until Monday" in blocked.stderr
    forced = envfence_project.run("run", "greet", "--force", "--reason", "hotfix")
    assert forced.exit_code == 0 and "forced past TEAM_FREEZE" in forced.stderr


def test_hook_prepare_environment(envfence_project, envfence_plugin):
    class Spool:
        @hookimpl
        def prepare_environment(self, session, paths):
            (paths.base / "spool").mkdir(parents=True, exist_ok=True)
            return [Finding("SPOOL_READY", "info", "spool directory ready")]

    envfence_plugin(Jobs(), "jobs")
    envfence_plugin(Spool(), "spool")
    spool = envfence_project.path / "var" / "development" / "spool"
    envfence_project.run("run", "greet", "--dry-run")
    assert not spool.exists()  # a dry run prepares nothing
    assert envfence_project.run("run", "greet").exit_code == 0
    assert spool.is_dir()


def test_hook_tree_refusals(envfence_project, envfence_plugin, tmp_path):
    """A plugin's refusal of the tree stops a restore before anything is written into it."""
    made = envfence_project.run("--json", "backup", "--output", str(tmp_path / "offsite"))
    archive = _json(made)["archive"]
    tree = envfence_project.path / "var" / "development"
    tree.rename(tmp_path / "moved")

    class Mounts:
        @hookimpl
        def tree_refusals(self, session, paths):
            return [Finding("TREE_NOT_MOUNTED", "error", f"{paths.base} is not on the data volume", "mount it first")]

    envfence_plugin(Mounts(), "mounts")
    refused = envfence_project.run("restore", archive)
    assert refused.exit_code == 3 and "is not on the data volume" in refused.stderr
    assert not tree.exists()


def test_hook_configure_logging(envfence_project, envfence_plugin):
    seen = []

    class Quiet:
        @hookimpl(tryfirst=True)
        def configure_logging(self, session, embedded):
            seen.append((session.environment.name, embedded))
            return "quiet strategy"

    envfence_plugin(Jobs(), "jobs")
    envfence_plugin(Quiet(), "quiet")
    assert envfence_project.run("run", "greet").exit_code == 0
    assert seen == [("development", False)]  # the CLI is no embedding tool


def test_hook_fallback_log_file(envfence_project, envfence_plugin):
    written = []

    class Quiet:
        @hookimpl(tryfirst=True)
        def configure_logging(self, session, embedded):
            return "quiet strategy"  # names no file

    class OwnFile:
        @hookimpl(tryfirst=True)
        def fallback_log_file(self, session):
            path = session.paths.base / "logs" / "mine.log"
            written.append(session.prepared)
            return path

    envfence_plugin(Jobs(), "jobs")
    envfence_plugin(Quiet(), "quiet")
    assert envfence_project.run("run", "greet").exit_code == 0
    # The logging plugin's plain file, for a run whose strategy wrote none.
    assert "hello from development" in (envfence_project.path / "var/development/logs/automation_development.log").read_text()
    envfence_plugin(OwnFile(), "own-file")
    assert envfence_project.run("run", "greet").exit_code == 0
    assert written == [True]  # asked once, for the prepared run only
    assert not envfence_project.run("run", "greet", "--dry-run").exit_code and written == [True]


def test_hook_run_history(envfence_project, envfence_plugin):
    import datetime as dt

    from envfence.models import RunOutcome

    at = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)

    class Remote:
        @hookimpl(tryfirst=True)
        def run_history(self, session, automation, limit):
            return [RunOutcome("run-remote1", "greet", session.environment.name, "succeeded", 0, at, at, metrics={"host": "elsewhere"})][:limit]

    envfence_plugin(Jobs(), "jobs")
    envfence_plugin(Remote(), "remote")
    runs = _json(envfence_project.run("--json", "status"))["runs"]
    assert [(r["run_id"], r["host"]) for r in runs] == [("run-remote1", "elsewhere")]
