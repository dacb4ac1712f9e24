"""`check` is the run's verdict in advance.

Over the demo project and a generated matrix of projects (hosts, environments,
declared settings, credentials, targets, pauses, maintenance windows, disabled
guards): when `check` exits 0, `run --dry-run` of every automation of that
environment passes the guards; and every guard refusal has a `check` finding
with its code.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

GOOD_TOKEN = "pat" + "A" * 14 + "." + "a" * 64
JOBS = """
def touch(ctx):
    if ctx.dry_run:
        return
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
"""


def verdicts(run_cli, root, env, host, extra=()):
    """``(check's exit code, check's codes, {automation: (dry run's status, its blocking codes)})``."""
    variables = {"ENVFENCE_HOSTNAME": host}
    chosen = ["--env", env, *extra]
    checked = run_cli("--json", *chosen, "check", cwd=root, env=variables)
    assert checked.exit_code in (0, 1), checked.output
    codes = {f["code"] for f in json.loads(checked.stdout)["findings"]}
    listed = json.loads(run_cli("--json", *chosen, "list", cwd=root, env=variables).stdout)
    runs = {}
    for item in listed["automations"]:
        if not item["allowed_here"]:
            continue
        result = run_cli("--json", *chosen, "run", item["name"], "--dry-run", cwd=root, env=variables)
        data = json.loads(result.stdout)
        blocking = {f["code"] for f in data.get("findings", []) if f["severity"] == "error"}
        runs[item["name"]] = (result.exit_code, blocking)
    return checked.exit_code, codes, runs


def assert_equivalent(checked, codes, runs):
    for name, (code, blocking) in runs.items():
        if checked == 0:
            assert code != 3, f"check passed, but the dry run of {name} was blocked by {blocking}"
        if code == 3:
            assert blocking, f"{name} was blocked without a finding"
            assert blocking <= codes, f"{name} was blocked by {blocking - codes}, which check did not report ({codes})"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_checkout_at):
    """A checkout of the demo project with the laptop's development credentials, as `make demo` writes them."""
    return demo_checkout_at(tmp_path_factory.mktemp("demo") / "demo")


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("host", ["dev-laptop-07", "web-prod-01", "prodserver01", "build-box-01"])
def test_the_demo_project(demo, run_cli, env, host):
    checked, codes, runs = verdicts(run_cli, demo, env, host)
    assert runs, "the demo has automations"
    assert_equivalent(checked, codes, runs)
    if (env, host) == ("development", "dev-laptop-07"):
        assert checked == 0 and all(code == 0 for code, _ in runs.values())  # where the demo belongs
    if (env, host) == ("production", "dev-laptop-07"):
        assert checked == 1 and all(code == 3 for code, _ in runs.values())


def test_the_ten_lines_of_the_home_page_no_longer_pass_check_and_then_block(make_project, run_cli):
    root = make_project({"import_jobs.py": "print('imported')\n"}, settings=(
        '[automations.import-jobs]\nrun = "python import_jobs.py"\n'
        'environments = ["development", "production"]\nsettings = ["JOBS_CSV"]\n'
    ))
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1 and "AUTOMATION_SETTING_MISSING" in check.stdout and "JOBS_CSV" in check.stdout
    assert run_cli("run", "import-jobs", cwd=root).exit_code == 3
    (root / ".env").write_text("JOBS_CSV=data/jobs.csv\n")
    assert run_cli("check", cwd=root).exit_code == 0
    assert run_cli("run", "import-jobs", "--dry-run", cwd=root).exit_code == 0


# --- a generated matrix of projects -------------------------------------------------------

HOSTS = ["build-box-01", "dev-laptop-07", "web-prod-01", "prodserver01", "dev-prod-bridge", "ip-10-0-0-5"]
FACTORS = {
    "host": HOSTS,
    "env": ["development", "production"],
    "setting": ["declared and set", "declared and missing", "none"],
    "credential": ["good", "malformed", "absent"],
    "target": ["own", "other's", "none"],
    "pause": [False, True],
    "window": [False, True],
    "disabled": [(), ("-p", "no:targets")],
    "restricted": [False, True],
}


def matrix(count: int = 36) -> list[dict]:
    """A deterministic sample of every factor's combinations, each value of each factor present."""
    everything = [dict(zip(FACTORS, values)) for values in itertools.product(*FACTORS.values())]
    return random.Random(26).sample(everything, count)


def build(make_project, run_cli, case: dict, index: int) -> Path:
    env = case["env"]
    prefix = "DEV" if env == "development" else "PROD"
    settings = ['[automations.touch]\nrun = "jobs:touch"\n']
    if case["setting"] != "none":
        settings.append('settings = ["JOBS_CSV"]\n')
    settings.append('[automations.other]\nrun = "jobs:touch"\n')
    if case["restricted"]:
        settings.append('environments = ["development"]\n')
    settings.append('[hostname.production]\nhosts = ["ip-10-0-0-*"]\n')
    settings.append('[targets]\nproduction = ["appLiveBase000001"]\ndevelopment = ["appSandboxBase001"]\n')
    if case["window"]:
        settings.append(f'[maintenance]\n{env} = ["daily 00:00-23:59"]\n')
    values = []
    if case["setting"] == "declared and set":
        values.append("JOBS_CSV=data/jobs.csv")
    if case["credential"] != "absent":
        values.append(f"{prefix}_AIRTABLE_API_KEY={GOOD_TOKEN if case['credential'] == 'good' else 'garbage-token'}")
    if case["target"] != "none":
        base = {"own": "appSandboxBase001" if env == "development" else "appLiveBase000001"}.get(
            case["target"], "appLiveBase000001" if env == "development" else "appSandboxBase001"
        )
        values.append(f"{prefix}_AIRTABLE_BASE_ID={base}")
    root = make_project({"jobs.py": JOBS, f".env.{env}": "\n".join(values) + "\n"}, settings="".join(settings), name=f"p{index}")
    if case["pause"]:
        paused = run_cli("--env", env, "pause", "touch", "--reason", "matrix", cwd=root, env={"ENVFENCE_HOSTNAME": case["host"]})
        assert paused.exit_code == 0, paused.output
    return root


@pytest.mark.parametrize("index", range(36))
def test_a_generated_project(make_project, run_cli, index):
    case = matrix()[index]
    root = build(make_project, run_cli, case, index)
    checked, codes, runs = verdicts(run_cli, root, case["env"], case["host"], case["disabled"])
    assert_equivalent(checked, codes, runs)


def test_the_matrix_covers_every_value_of_every_factor():
    cases = matrix()
    for factor, values in FACTORS.items():
        assert {repr(c[factor]) for c in cases} == {repr(v) for v in values}, factor
