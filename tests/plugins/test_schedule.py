"""`envfence schedule`: the declared schedule as a crontab block, systemd units or a CronJob, checked by real validators."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from envfence.cron import parse

SETTINGS = """
[automations.sync]
run = "jobs:ok"
schedule = { development = "0 2 * * *", production = "0 2 * * *" }

[automations.report]
run = "jobs:ok"
environments = ["production"]
schedule = "*/15 8-18 * * mon-fri"

[automations.monthly]
run = "jobs:ok"
schedule = "30 4 1,15 * sun"
"""

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


@pytest.fixture
def crontab(tmp_path, monkeypatch):
    """A crontab program with cron's own interface (-l, -) keeping the table in a file of the test."""
    table = tmp_path / "crontab.txt"
    program = tmp_path / "crontab"
    program.write_text(
        "#!/bin/sh\n"
        f'f="{table}"\n'
        'case "$1" in\n'
        '  -l) if [ -f "$f" ]; then cat "$f"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;\n'
        '  -) cat > "$f" ;;\n'
        '  *) echo "usage" >&2; exit 2 ;;\n'
        "esac\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(program))
    return table


def cron_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_crontab_block_runs_each_scheduled_automation_through_envfence(project, run_cli):
    result = run_cli("--env", "production", "schedule", cwd=project)
    assert result.exit_code == 0, result.output
    lines = cron_lines(result.stdout)
    assert len(lines) == 4
    for line in lines:
        fields = line.split()
        parse(" ".join(fields[:5]))  # every schedule parses with the project's cron semantics
        assert f"cd {project} && " in line
    assert all(re.search(r"--env production -q run (sync|report|monthly)$", line) for line in lines[:3])
    # the environment's own health check, so a run that never happens is alerted
    # (every five minutes, at a minute of the period that this project, environment and host make their own)
    assert re.match(r"(\*|[0-4]-59)/5 \* \* \* \* ", lines[3]) and lines[3].endswith(" --env production -q health --alert")
    assert result.stdout.startswith(f"# BEGIN envfence {project} production\n")
    assert result.stdout.rstrip().endswith(f"# END envfence {project} production")
    dev = run_cli("--env", "development", "schedule", cwd=project)
    # report is production-only; development checks its own health
    assert [line.split("-q ", 1)[1] for line in cron_lines(dev.stdout)] == ["run monthly", "run sync", "health --alert"]


SHARED_HOST = """
[hostname.development]
hosts = ["build-box-*"]

[hostname.production]
hosts = ["build-box-*"]
"""


def test_stagger_moves_environments_apart_deterministically(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + SHARED_HOST + "\n[schedule]\nstagger = true\n")
    dev = json.loads(run_cli("--env", "development", "schedule", "--json", cwd=project).stdout)
    prod = json.loads(run_cli("--env", "production", "schedule", "--json", cwd=project).stdout)
    by_name = lambda data: {e["automation"]: e for e in data["entries"]}  # noqa: E731
    d, p = by_name(dev)["sync"], by_name(prod)["sync"]
    assert {d["stagger_minutes"], p["stagger_minutes"]} == {0, 1}
    assert parse(d["schedule"]).common_time(parse(p["schedule"])) is None
    again = json.loads(run_cli("--env", "production", "schedule", "--json", cwd=project).stdout)
    assert again["entries"] == prod["entries"]
    check = run_cli("--json", "check", cwd=project)
    assert "SCHEDULE_STAGGER_COLLISION" not in check.stdout


def test_stagger_refuses_a_schedule_that_fires_every_minute(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.x]\nrun = "jobs:ok"\nschedule = "* * * * *"\n[schedule]\nstagger = true\n'
                        + SHARED_HOST)
    results = [run_cli("--env", env, "schedule", cwd=root) for env in ("development", "production")]
    assert sorted(r.exit_code for r in results) == [0, 4]  # the environment that keeps its times is fine
    assert any("fires every minute: it cannot be staggered" in r.stderr for r in results)


def test_install_is_idempotent_keeps_other_lines_and_remove_takes_only_the_block(project, run_cli, crontab):
    crontab.write_text("MAILTO=ops@example.org\n5 * * * * /usr/bin/backup-home\n")
    first = run_cli("--env", "production", "schedule", "install", cwd=project)
    assert first.exit_code == 0, first.output
    assert "updated" in first.stdout
    installed = crontab.read_text()
    assert installed.startswith("MAILTO=ops@example.org\n5 * * * * /usr/bin/backup-home\n# BEGIN envfence")
    second = run_cli("--env", "production", "schedule", "install", "--json", cwd=project)
    assert json.loads(second.stdout)["changed"] is False
    assert crontab.read_text() == installed
    run_cli("--env", "development", "schedule", "install", cwd=project)
    assert crontab.read_text().count("# BEGIN envfence") == 2
    removed = run_cli("--env", "production", "schedule", "remove", cwd=project)
    assert removed.exit_code == 0
    text = crontab.read_text()
    assert "production" not in text and "--env development" in text and "/usr/bin/backup-home" in text


def test_diff_shows_drift_between_installed_and_declared(project, run_cli, crontab):
    missing = run_cli("--env", "production", "schedule", "diff", cwd=project)
    assert missing.exit_code == 1 and "+# BEGIN envfence" in missing.stdout
    run_cli("--env", "production", "schedule", "install", cwd=project)
    same = run_cli("--env", "production", "schedule", "diff", cwd=project)
    assert same.exit_code == 0 and "no drift" in same.stdout
    (project / "envfence.toml").write_text(SETTINGS.replace('production = "0 2 * * *"', 'production = "0 3 * * *"'))
    drift = run_cli("--env", "production", "schedule", "diff", "--json", cwd=project)
    assert drift.exit_code == 1
    data = json.loads(drift.stdout)
    assert data["drift"] is True and "-0 2 * * *" in data["diff"] and "+0 3 * * *" in data["diff"]


def test_missing_crontab_program_is_a_clear_error(project, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(tmp_path / "no-such-crontab"))
    result = run_cli("--env", "production", "schedule", "install", cwd=project)
    assert result.exit_code == 1
    assert "no crontab program on this host" in result.stderr and "Traceback" not in result.output


def _systemd_elapses(calendar: str, count: int) -> list[_dt.datetime]:
    out = subprocess.run(
        ["systemd-analyze", "calendar", f"--iterations={count}", calendar],
        capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, check=True,
    ).stdout
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", out)
    return [_dt.datetime.fromisoformat(f) for f in found]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this host")
def test_systemd_units_verify_and_fire_when_cron_does(project, run_cli, tmp_path):
    units = tmp_path / "units"
    result = run_cli("--env", "production", "schedule", "--format", "systemd", "--output", str(units), cwd=project)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in units.iterdir())
    assert "envfence-production-report.timer" in names and "envfence-production-report.service" in names
    verify = subprocess.run(["systemd-analyze", "verify", *(str(units / n) for n in names)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    data = json.loads(run_cli("--env", "production", "schedule", "--format", "systemd", "--json", cwd=project).stdout)
    for entry in data["entries"]:
        timer = data["artefact"][f"envfence-production-{entry['automation']}.timer"]
        assert "Persistent=true" in timer
        calendars = re.findall(r"^OnCalendar=(.+)$", timer, re.M)
        # systemd's own parser agrees with cron's next firing times (a timer fires at the union of its calendars)
        systemd = sorted(set(t for c in calendars for t in _systemd_elapses(c, 6)))[:6]
        cron = parse(entry["schedule"])
        now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
        expected, moment = [], now
        for _ in range(6):
            moment = cron.next_after(moment)
            expected.append(moment)
        assert systemd == expected, (entry, calendars)


def test_kubernetes_cronjobs_match_the_kubernetes_schema(project, run_cli):
    from kubernetes.client import ApiClient

    missing = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=project)
    assert missing.exit_code == 4 and "[schedule] image is needed" in missing.stderr
    (project / "envfence.toml").write_text(SETTINGS + '\n[schedule]\nimage = "registry.local/app:1.4"\nnamespace = "jobs"\n')
    result = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=project)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "List" and len(manifest["items"]) == 4  # three automations and the health check

    client = ApiClient()
    for item in manifest["items"]:
        job = client.deserialize(json.dumps(item), "V1CronJob", "application/json")  # the client's models check required fields
        # Nothing the schema does not know was dropped on the way: the model serialises back to the manifest.
        assert client.sanitize_for_serialization(job) == item
        assert job.spec.concurrency_policy == "Forbid"
        container = job.spec.job_template.spec.template.spec.containers[0]
        assert container.image == "registry.local/app:1.4"
        is_health = job.metadata.name == "envfence-health-production"
        runs = ["health", "--alert"] if is_health else ["run", container.command[-1]]
        assert container.command[-5:] == ["--env", "production", "-q", *runs]
        assert {"name": "ENVIRONMENT", "value": "production"} in item["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job.metadata.name) and len(job.metadata.name) <= 52


def test_unknown_format_is_a_usage_error(project, run_cli):
    result = run_cli("schedule", "--format", "launchd", cwd=project)
    assert result.exit_code == 2 and "launchd" in result.output


def test_diff_without_a_crontab_program_says_it_cannot_check_with_its_own_exit_code(project, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(tmp_path / "no-such-crontab"))
    result = run_cli("--env", "production", "schedule", "diff", cwd=project)
    assert result.exit_code == 4, result.output  # not 1, which means "drift found"
    assert "cannot check for drift" in result.stderr and "no crontab program on this host" in result.stderr
    as_json = run_cli("--env", "production", "--json", "schedule", "diff", cwd=project)
    assert as_json.exit_code == 4 and json.loads(as_json.stdout)["exit_code"] == 4


# Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation/validation.go): dns1123LabelFmt and labelValueFmt.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def test_cronjob_names_and_labels_are_valid_for_any_environment_and_automation_name(make_project, run_cli):
    from kubernetes.client import ApiClient

    long_env = "e" + "x" * 69
    automations = ["a_b", "a-b", "A-B", "Nightly Report!", "ünïcode", "---", "z" * 80, "x.y_"]
    settings = "".join(f'[automations."{name}"]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n' for name in automations)
    settings += "".join(f'[environments.{env}]\nprefix = "P{i}"\nbased_on = "development"\n'
                        for i, env in enumerate(("qa_", long_env, "QA-1")))
    settings += '[schedule]\nimage = "registry.local/app:1.4"\n'
    root = make_project({"jobs.py": JOBS}, settings=settings)
    for env in ("qa_", long_env, "QA-1"):
        result = run_cli("--env", env, "schedule", "--format", "kubernetes", cwd=root)
        assert result.exit_code == 0, result.output
        items = json.loads(result.stdout)["items"]
        assert len(items) == len(automations) + 1  # and the environment's health check
        names = [item["metadata"]["name"] for item in items]
        assert len(set(names)) == len(names), names  # a_b and a-b stay two CronJobs
        for item in items:
            ApiClient().deserialize(json.dumps(item), "V1CronJob", "application/json")
            name = item["metadata"]["name"]
            assert DNS1123_LABEL.fullmatch(name) and len(name) <= 52, name
            for labels in (item["metadata"]["labels"], item["spec"]["jobTemplate"]["metadata"]["labels"]):
                for value in labels.values():
                    assert LABEL_VALUE.fullmatch(value) and len(value) <= 63, value
            # the job still runs the automation and environment it names, whatever the labels had to become
            command = item["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
            assert command[-2:] == ["health", "--alert"] or (command[-2] == "run" and command[-1] in automations)
            assert command[command.index("--env") + 1] == env


def test_a_namespace_kubernetes_would_refuse_is_a_clear_error(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS + '[schedule]\nimage = "app:1"\nnamespace = "Jobs_Prod"\n')
    result = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=root)
    assert result.exit_code == 4 and "namespace" in result.stderr and "Traceback" not in result.output


def test_health_check_setting_sets_its_time_or_turns_it_off_and_a_bad_one_is_named(project, run_cli):
    def lines(extra: str, env: str = "production", *args) -> list[str]:
        (project / "envfence.toml").write_text(SETTINGS + f"\n[schedule]\n{extra}\n")
        result = run_cli("--env", env, "schedule", *args, cwd=project)
        assert result.exit_code == 0, result.output
        return cron_lines(result.stdout)

    assert re.match(r"(\*|\d-59)/10 \* \* \* \* ", lines('health_check = "*/10 * * * *"')[-1])
    assert lines('health_check = "* * * * *"')[-1].startswith("* * * * * ")  # every minute: nothing to spread
    assert not any(line.endswith("health --alert") for line in lines("health_check = false"))
    units = json.loads(run_cli("--env", "production", "--json", "schedule", "--format", "systemd", cwd=project).stdout)
    assert sorted(units["artefact"]) == sorted(f"envfence-production-{a}.{kind}" for a in ("sync", "report", "monthly")
                                               for kind in ("service", "timer"))
    for bad in ('"every five minutes"', "true", '"0 0 * * 5L"'):
        (project / "envfence.toml").write_text(SETTINGS + f"\n[schedule]\nhealth_check = {bad}\n")
        shown = run_cli("--env", "production", "schedule", cwd=project)
        assert shown.exit_code == 4 and "health_check" in shown.stderr and "Traceback" not in shown.output, shown.output
        checked = run_cli("check", cwd=project)
        assert checked.exit_code == 1 and "schedule.health_check" in checked.output, checked.output


def test_an_environment_without_schedules_gets_no_health_check(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\nschedule = { production = "0 2 * * *" }\n')
    assert json.loads(run_cli("--env", "development", "--json", "schedule", cwd=root).stdout)["entries"] == []
    result = run_cli("--env", "development", "schedule", cwd=root)
    assert cron_lines(result.stdout) == [] and "no automation is scheduled" in result.stderr
    assert [e["command"] for e in json.loads(run_cli("--env", "production", "--json", "schedule", cwd=root).stdout)["entries"]] == [
        ["run", "sync"], ["health", "--alert"]]


def test_an_automation_named_like_the_health_check_is_refused_where_it_would_replace_it(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.envfence-health]\nrun = "jobs:ok"\nschedule = "0 2 * * *"\n'
                                                  '[schedule]\nimage = "app:1"\n')
    for form in ("systemd", "kubernetes"):
        result = run_cli("schedule", "--format", form, cwd=root)
        assert result.exit_code == 4, result.output
        assert "automation 'envfence-health' and the health check" in result.stderr and "Traceback" not in result.output
    crontab = cron_lines(run_cli("schedule", cwd=root).stdout)  # lines have no names to share
    assert [line.split("-q ", 1)[1] for line in crontab] == ["run envfence-health", "health --alert"]
