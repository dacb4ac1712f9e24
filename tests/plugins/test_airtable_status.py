"""Status tracking in Airtable, against the fake Airtable; queued when Airtable cannot be reached."""

from __future__ import annotations

import json
import socket

import pytest

from envfence_builtins.fakes.airtable_emulator import DEMO_DEV_BASE, DEMO_DEV_TOKEN, DEMO_PROD_BASE, FakeAirtable

from envfence_builtins.operations.airtable_status import STATUS_FIELDS

JOBS = '''
def ok(ctx):
    ctx.say("fine")

def bad(ctx):
    raise ValueError("bad data")
'''


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fake():
    with FakeAirtable() as server:
        server.add_table(DEMO_DEV_BASE, "Runs", STATUS_FIELDS)
        server.add_table(DEMO_PROD_BASE, "Runs", STATUS_FIELDS)
        yield server


@pytest.fixture
def project(make_project):
    return make_project(
        {
            "jobs.py": JOBS,
            ".env": f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\nAIRTABLE_STATUS_TABLE=Runs\n",
            ".env.development": f"AIRTABLE_BASE_ID={DEMO_DEV_BASE}\n",
        },
        settings='[automations]\nok = "jobs:ok"\nbad = "jobs:bad"\n',
    )


def queue(project):
    path = project / "var" / "development" / "airtable-status-queue.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_each_run_is_recorded_in_the_environments_base(project, run_cli, fake):
    assert run_cli("run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", cwd=project).exit_code == 0
    assert run_cli("run", "bad", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", cwd=project).exit_code == 1
    records = [r["fields"] for r in fake.records(DEMO_DEV_BASE, "Runs")]
    assert [(r["Automation"], r["Status"], r.get("Exit code", 0)) for r in records] == [("ok", "succeeded", 0), ("bad", "failed", 1)]
    assert records[1]["Error class"] == "data" and records[1]["Error id"].startswith("E")
    assert all(r["Environment"] == "development" and r["Host"] == "build-box-01" for r in records)
    assert fake.records(DEMO_PROD_BASE, "Runs") == []  # never the other environment's base
    assert queue(project) == []


def test_unreachable_airtable_queues_the_record_and_sends_it_later(project, run_cli, fake):
    down = closed_port_url()
    result = run_cli("run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={down}", cwd=project)
    assert result.exit_code == 0  # the run's own result stands
    failed = run_cli("run", "bad", "--set", f"AIRTABLE_ENDPOINT_URL={down}", cwd=project)
    assert failed.exit_code == 1  # and a failed run stays failed, not worse
    assert [r["Automation"] for r in queue(project)] == ["ok", "bad"]
    assert fake.records(DEMO_DEV_BASE, "Runs") == []
    assert run_cli("run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", cwd=project).exit_code == 0
    sent = [r["fields"]["Automation"] for r in fake.records(DEMO_DEV_BASE, "Runs")]
    assert sent == ["ok", "bad", "ok"]  # nothing lost, oldest first
    assert queue(project) == []


def test_a_refused_record_is_queued_not_lost(project, run_cli, fake):
    # a table without the status fields: Airtable answers 422
    result = run_cli(
        "run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", "--set", "AIRTABLE_STATUS_TABLE=Jobs", cwd=project
    )
    assert result.exit_code == 0
    assert [r["Automation"] for r in queue(project)] == ["ok"]
    log = (project / "var" / "development" / "logs" / "automation_development.log").read_text()
    assert "Airtable status tracking failed" in log and DEMO_DEV_TOKEN not in log


def test_dry_run_writes_nothing_to_airtable(project, run_cli, fake):
    assert run_cli("run", "ok", "--dry-run", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", cwd=project).exit_code == 0
    assert fake.records(DEMO_DEV_BASE, "Runs") == []
    assert not (project / "var").exists()


def test_without_a_status_table_nothing_is_sent(make_project, run_cli, fake):
    root = make_project({"jobs.py": JOBS, ".env": f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\n"}, settings='[automations]\nok = "jobs:ok"\n')
    assert run_cli("run", "ok", "--set", f"AIRTABLE_ENDPOINT_URL={fake.url}", cwd=root).exit_code == 0
    assert fake.records(DEMO_DEV_BASE, "Runs") == []
    assert not (root / "var" / "development" / "airtable-status-queue.jsonl").exists()


def test_prefixed_settings_are_read_through_the_environments_prefix(make_project, run_cli, fake):
    """DEV_ endpoint, base and table are development's; production's are never used here."""
    root = make_project(
        {
            "jobs.py": JOBS,
            ".env": (
                f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\nDEV_AIRTABLE_STATUS_TABLE=Runs\n"
                f"DEV_AIRTABLE_BASE_ID={DEMO_DEV_BASE}\nDEV_AIRTABLE_ENDPOINT_URL={fake.url}\n"
                f"PROD_AIRTABLE_BASE_ID={DEMO_PROD_BASE}\nPROD_AIRTABLE_ENDPOINT_URL={closed_port_url()}\n"
            ),
        },
        settings='[automations]\nok = "jobs:ok"\n',
    )
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    assert [r["fields"]["Automation"] for r in fake.records(DEMO_DEV_BASE, "Runs")] == ["ok"]
    assert fake.records(DEMO_PROD_BASE, "Runs") == []
    assert queue(root) == []


def test_a_record_that_landed_but_stayed_queued_is_not_sent_twice(project, run_cli, fake):
    """A timeout after Airtable wrote the record leaves it queued; sending it again updates the same row."""
    url = f"AIRTABLE_ENDPOINT_URL={fake.url}"
    assert run_cli("run", "ok", "--set", url, cwd=project).exit_code == 0
    [landed] = [r["fields"] for r in fake.records(DEMO_DEV_BASE, "Runs")]
    path = project / "var" / "development" / "airtable-status-queue.jsonl"
    path.write_text(json.dumps(landed) + "\n")
    assert run_cli("run", "ok", "--set", url, cwd=project).exit_code == 0
    runs = [r["fields"]["Run"] for r in fake.records(DEMO_DEV_BASE, "Runs")]
    assert len(runs) == 2 and runs.count(landed["Run"]) == 1
    assert queue(project) == []
