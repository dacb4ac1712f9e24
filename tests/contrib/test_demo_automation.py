"""The demo project's sample automation, run as `make demo` runs it, on a copy of the project."""

from __future__ import annotations


import pytest

from envfence_builtins.fakes.airtable_emulator import DEMO_DEV_BASE, DEMO_PROD_BASE



@pytest.fixture
def demo(demo_checkout, fake_airtable, monkeypatch):
    root = demo_checkout
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "dev-laptop-07")
    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", fake_airtable.url)
    return root


def test_dry_run_shows_the_plan_and_writes_nothing(demo, run_cli, fake_airtable):
    result = run_cli("run", "import-jobs", "--dry-run", cwd=demo)
    assert result.exit_code == 0, result.output
    assert "plan: upsert 3 record(s) by Name in Jobs of base appDemoDevBase001" in result.stdout
    assert not (demo / "var").exists()
    assert len(fake_airtable.records(DEMO_DEV_BASE, "Jobs")) == 2  # the seeded ones only


def test_the_run_loads_the_csv_into_the_sandbox_base_only(demo, run_cli, fake_airtable):
    result = run_cli("run", "import-jobs", cwd=demo)
    assert result.exit_code == 0, result.output
    names = [r["fields"]["Name"] for r in fake_airtable.records(DEMO_DEV_BASE, "Jobs")]
    assert names[-3:] == ["JOB-2001", "JOB-2002", "JOB-2003"]
    assert fake_airtable.records(DEMO_PROD_BASE, "Jobs") == []
    processed = list((demo / "var" / "development" / "csv" / "processed").iterdir())
    assert len(processed) == 1 and processed[0].name.endswith("jobs.csv")
    # no status table in the seeded fake: the record waits in the queue, the run still succeeded
    assert (demo / "var" / "development" / "airtable-status-queue.jsonl").exists()
    assert "import-jobs" in run_cli("status", cwd=demo).stdout


def test_running_the_import_twice_never_duplicates(demo, run_cli, fake_airtable):
    for _ in range(2):
        result = run_cli("run", "import-jobs", cwd=demo)
        assert result.exit_code == 0, result.output
    assert "(0 new, 3 updated)" in result.stdout
    names = [r["fields"]["Name"] for r in fake_airtable.records(DEMO_DEV_BASE, "Jobs")]
    assert sorted(n for n in names if n.startswith("JOB-2")) == ["JOB-2001", "JOB-2002", "JOB-2003"]


def test_production_on_the_demo_laptop_is_refused(demo, run_cli, fake_airtable, demo_script):
    result = run_cli("--env", "production", "run", "import-jobs", cwd=demo, env=demo_script.credentials("PROD"))
    assert result.exit_code == 3
    assert "whose name says development" in result.stderr
    # The guard the demo is there to show leads; nothing the demo itself causes comes before it.
    assert result.stderr.splitlines()[1].startswith("error: HOSTNAME_MISMATCH"), result.stderr
    assert "VALIDATION_FAILED_STRICT" not in result.stderr
    assert "envfence --env production run import-jobs --force --reason TEXT" in result.stderr
    assert fake_airtable.records(DEMO_PROD_BASE, "Jobs") == []


def test_a_bad_row_fails_as_data_naming_its_line(demo, run_cli, fake_airtable):
    (demo / "data" / "jobs.csv").write_text("job,customer,status,amount,paid\nJOB-9,X,lost,1,no\n")
    result = run_cli("run", "import-jobs", cwd=demo)
    assert result.exit_code == 1
    assert "failed (data)" in result.stderr and "jobs.csv:2: status 'lost'" in result.stderr


def test_a_fresh_checkout_of_the_demo_commits_no_secret_and_checks_clean(demo_checkout, demo_script, run_cli, monkeypatch):
    import json
    import subprocess

    root = demo_checkout
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    tracked = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True).stdout
    assert ".env.development.local" not in tracked  # the laptop's credentials stay on the laptop
    committed = "".join((root / name).read_text() for name in tracked.split() if name.startswith(".env"))
    for value in [*demo_script.credentials("DEV").values(), *demo_script.credentials("PROD").values()]:
        assert value not in committed
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "dev-laptop-07")
    data = json.loads(run_cli("--json", "check", cwd=root).stdout)
    problems = [f for f in data["findings"] if f["severity"] != "info"]  # info says what holds (the limits in effect)
    assert data["ok"] and problems == [], data["findings"]
    assert [f["code"] for f in data["findings"]] == ["THRESHOLDS_EFFECTIVE"]
    init = run_cli("init", cwd=root)
    assert ".gitignore" not in init.stdout


def test_the_demo_shows_what_its_job_did_and_a_piece_of_advice(demo, run_cli, fake_airtable):
    import json

    assert run_cli("run", "import-jobs", cwd=demo).exit_code == 0
    # The business metric the job reports (ctx.metric), as the demo's status step shows it.
    [run] = json.loads(run_cli("status", "--json", "--automation", "import-jobs", cwd=demo).stdout)["runs"]
    assert run["business"]["records_synced"] == {"value": 3.0, "unit": "records"}
    assert "records_synced" in run_cli("status", "--automation", "import-jobs", cwd=demo).stdout
    # And the advice the demo's advise step prints: with its numbers and the setting that acts on it.
    shown = run_cli("--json", "advise", "--all-environments", cwd=demo)
    assert shown.exit_code == 0, shown.output
    advice = json.loads(shown.stdout)["advice"]
    assert advice and all(a["code"] and a["message"] and a["action"] for a in advice), advice
    assert "do: " in run_cli("advise", "--all-environments", cwd=demo).stdout
