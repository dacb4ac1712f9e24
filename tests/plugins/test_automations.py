"""Automations declared in settings or by plugins; schedule collisions across environments."""

from __future__ import annotations

import pytest


def codes(session):
    return [f.code for f in session.report.findings]


def test_settings_shorthand_function_and_command(make_project):
    from envfence.pipeline import Session
    from envfence.runner import collect_automations

    root = make_project(
        settings='[automations]\nsync = "acme.jobs:sync"\nbackup = "tar czf backup.tgz data --exclude \'*.tmp\'"\n'
        'listed = ["tar", "czf", "b.tgz"]\n'
    )
    automations = collect_automations(Session.open(root=root))
    assert automations["sync"].command is None and repr(automations["sync"].function) == "acme.jobs:sync"
    # A string is a shell line; a list (short form too) is a program and its arguments.
    assert automations["backup"].command == ("/bin/sh", "-c", "tar czf backup.tgz data --exclude '*.tmp'")
    assert automations["listed"].command == ("tar", "czf", "b.tgz")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[automations.x]\nrun = "a:b"\nwhen = "never"\n', "automations.x.when: unknown key"),
        ("[automations.x]\ndescription = 'no run'\n", "automations.x.run: missing"),
        ('[automations.x]\nrun = "a:b"\nenvironments = ["staging"]\n', "'staging' is no declared environment"),
        ('[automations.x]\nrun = "a:b"\nschedule = "0 25 * * *"\n', "automations.x.schedule: '0 25 * * *': hour field"),
        ('[automations.x]\nrun = "a:b"\nschedule = { live = "0 61 * * *" }\n', "automations.x.schedule.live"),
    ],
)
def test_bad_automation_settings_are_findings_naming_the_key(make_project, run_cli, body, words):
    from envfence.pipeline import Session

    root = make_project(settings=body)
    session = Session.open(root=root)
    found = [f for f in session.report.findings if f.code == "AUTOMATION_INVALID"]
    assert found and words in found[0].message
    assert str(root / "envfence.toml") in found[0].message
    result = run_cli("run", "x", cwd=root)
    assert result.exit_code == 4 and words in result.stderr


def test_plugin_registered_automation_runs(make_project, run_cli, envfence_plugin):
    from envfence import hookimpl
    from envfence.models import Automation

    seen = []

    class Shipper:
        @hookimpl
        def register_automations(self, register):
            register(Automation("ship", "Ship orders", function=lambda ctx: seen.append(ctx.environment), plugin="shipper"))

    envfence_plugin(Shipper(), "shipper")
    root = make_project()
    assert run_cli("run", "ship", cwd=root).exit_code == 0
    assert seen == ["development"]
    assert "Ship orders" in run_cli("list", cwd=root).stdout


def test_a_name_registered_twice_is_an_error(make_project, run_cli, envfence_plugin):
    from envfence import hookimpl
    from envfence.models import Automation

    class Other:
        @hookimpl
        def register_automations(self, register):
            register(Automation("sync", function=lambda ctx: None, plugin="other"))

    envfence_plugin(Other(), "other")
    root = make_project(settings='[automations]\nsync = "jobs:sync"\n')
    result = run_cli("run", "sync", cwd=root)
    assert result.exit_code == 4
    assert "'sync' is registered twice" in result.stderr


SHARED_BOX = """
[environments.development]
hostname_patterns = ["dev", "box"]

[environments.production]
hostname_patterns = ["prod", "box"]
"""


def test_schedules_colliding_across_environments_are_reported(make_project):
    from envfence.pipeline import Session

    root = make_project(
        settings=SHARED_BOX + """
[automations.sync]
run = "jobs:sync"
schedule = "0 2 * * *"

[automations.report]
run = "jobs:report"
schedule = { development = "*/30 * * * *", production = "15 2 * * *" }
"""
    )
    session = Session.open(root=root)
    collisions = [f for f in session.report.findings if f.code == "SCHEDULE_COLLISION"]
    # sync runs at 02:00 in both environments; report's development */30 meets sync's production 02:00
    messages = " | ".join(f.message for f in collisions)
    assert "sync in development ('0 2 * * *') and sync in production ('0 2 * * *')" in messages
    assert "report in development ('*/30 * * * *') and sync in production" in messages
    assert all(f.severity == "warning" and "stagger" in f.remediation for f in collisions)


def test_one_schedule_shared_by_many_environments_is_one_warning_naming_them(make_project):
    from envfence.pipeline import Session

    names = [f"qa{i}" for i in range(10)]
    settings = SHARED_BOX + "".join(
        f'[environments.{n}]\nprefix = "{n.upper()}"\nbased_on = "development"\nhostname_patterns = ["{n}", "box"]\n'
        for n in names
    )
    # On a machine of its own: never part of a collision.
    settings += '[environments.lab]\nprefix = "LAB"\nbased_on = "development"\nhostname_patterns = ["lab"]\n'
    settings += '[automations.sync]\nrun = "jobs:sync"\nschedule = "0 2 * * *"\n'
    settings += '[automations.report]\nrun = "jobs:report"\nschedule = { development = "*/30 * * * *", production = "15 2 * * *" }\n'
    collisions = [f for f in Session.open(root=make_project(settings=settings)).report.findings if f.code == "SCHEDULE_COLLISION"]
    [shared] = [f for f in collisions if "more" in f.message]
    assert shared.message.startswith("sync in development ('0 2 * * *'), sync in production ('0 2 * * *'), sync in qa0")
    assert "and 7 more are scheduled at the same time" in shared.message  # twelve environments: five named, seven more
    # report's */30 in development meets sync's 02:00 in the eleven other environments: one warning each.
    assert len([f for f in collisions if f.message.startswith("report in development")]) == 11
    assert len(collisions) == 12 and not any("in lab" in f.message for f in collisions)


def test_staggered_schedules_do_not_collide(make_project):
    from envfence.pipeline import Session

    root = make_project(
        settings="""
[automations.sync]
run = "jobs:sync"
schedule = { development = "10 * * * *", production = "0 2 * * *" }
environments = ["development", "production"]
"""
    )
    assert "SCHEDULE_COLLISION" not in codes(Session.open(root=root))


def test_a_plugins_bad_schedule_does_not_break_list(make_project, run_cli, envfence_plugin):
    from envfence import hookimpl
    from envfence.models import Automation

    class Sloppy:
        @hookimpl
        def register_automations(self, register):
            register(Automation("nightly", schedule="every night", function=lambda ctx: None, plugin="sloppy"))

    envfence_plugin(Sloppy(), "sloppy")
    result = run_cli("--json", "list", cwd=make_project())
    assert result.exit_code == 0
    assert '"next_run": null' in result.stdout
