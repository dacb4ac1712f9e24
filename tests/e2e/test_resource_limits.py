"""Resources per environment: a job that takes more than its environment allows fails as ``resource_limit``.

Real children reach real limits: a busy loop its CPU seconds, an allocation
its memory, a loop of opens its file descriptors; as command automations and
as function automations run in their own process. The same table reaches the
host schedulers (systemd reads the units back, the Kubernetes client reads
the CronJobs and their quantities).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

PY = json.dumps(sys.executable)
JOBS = '''
import os, resource

def spin(ctx):
    while True:
        pass

def eat(ctx):
    ctx.say("allocating")
    return len(bytearray(4 * 1024 ** 3))

def limits(ctx):
    ctx.say(f"cpu={resource.getrlimit(resource.RLIMIT_CPU)} as={resource.getrlimit(resource.RLIMIT_AS)} nice={os.nice(0)}")

def files(ctx):
    kept = [open(os.devnull) for _ in range(200)]
    return len(kept) - 200
'''


def settings(limits: str, isolation: str = "process") -> str:
    reason = 'isolation_reason = "tested in both ways"' if isolation == "in-process" else ""
    return f'''{limits}
[automations.spin_cmd]
run = [{PY}, "-c", "while True: pass"]
[automations.eat_cmd]
run = [{PY}, "-c", "x = bytearray(4 * 1024 ** 3)"]
[automations.files_cmd]
run = [{PY}, "-c", "import os; k = [open(os.devnull) for _ in range(200)]"]
[automations.nice_cmd]
run = [{PY}, "-c", "import os, resource; print('nice', os.nice(0), 'files', resource.getrlimit(resource.RLIMIT_NOFILE))"]
[automations.spin]
run = "jobs:spin"
isolation = "{isolation}"
{reason}
[automations.eat]
run = "jobs:eat"
isolation = "{isolation}"
{reason}
[automations.limits]
run = "jobs:limits"
isolation = "{isolation}"
{reason}
[automations.files]
run = "jobs:files"
isolation = "{isolation}"
{reason}
'''


LIMITS = '''
[alerts.escalation]
development = ["console"]

[thresholds."*"]
alert_on_failure = true

[resources]
open_files = 64
nice = 5

[resources.development]
cpu_seconds = 1
memory = "400MB"

[resources.production]
memory = "1GB"
cpus = 0.5
nice = 10
open_files = 512
'''


@pytest.fixture
def limited(make_project):
    return make_project({"jobs.py": JOBS}, settings=settings(LIMITS))


def last_run(run_cli, root, name: str) -> dict:
    [run] = [r for r in json.loads(run_cli("--json", "status", cwd=root).stdout)["runs"] if r["automation"] == name][:1]
    return run


@pytest.mark.parametrize("name", ["spin_cmd", "spin"])
def test_a_job_past_its_cpu_seconds_is_stopped_and_recorded_as_resource_limit(limited, run_cli, name):
    ran = run_cli("run", name, cwd=limited)
    assert ran.exit_code == 1, ran.output
    assert "reached its resource limit cpu_seconds = 1" in ran.stderr and "(resource_limit)" in ran.stderr
    run = last_run(run_cli, limited, name)
    assert run["status"] == "failed" and run["error_class"] == "resource_limit"
    assert run["exit_code"] in (152, 137)  # SIGXCPU, or SIGKILL at the hard limit a second later
    incident = json.loads(run_cli("--json", "alerts", "show", cwd=limited).stdout)["incidents"][f"{name}:failed"]
    assert incident["run_id"] == run["run_id"] and incident["message"].endswith("failed (resource_limit)")


@pytest.mark.parametrize("name", ["eat_cmd", "eat"])
def test_a_job_past_its_memory_fails_with_its_own_class(limited, run_cli, name):
    ran = run_cli("run", name, cwd=limited)
    assert ran.exit_code == 1, ran.output
    assert "reached its resource limit memory = '400 MiB'" in ran.stderr
    assert last_run(run_cli, limited, name)["error_class"] == "resource_limit"


@pytest.mark.parametrize("name", ["files_cmd", "files"])
def test_a_job_past_its_open_files_fails_with_its_own_class(limited, run_cli, name):
    ran = run_cli("run", name, cwd=limited)
    assert ran.exit_code == 1, ran.output
    assert "open_files = 64" in ran.stderr
    assert last_run(run_cli, limited, name)["error_class"] == "resource_limit"


def test_the_limits_are_those_of_the_environment_the_default_table_overlaid(limited, run_cli):
    dev = run_cli("run", "limits", cwd=limited)
    assert dev.exit_code == 0, dev.output
    assert "cpu=(1, 2) as=(419430400, 419430400) nice=5" in dev.stdout
    prod = run_cli("--env", "production", "run", "nice_cmd", cwd=limited, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert prod.exit_code == 0, prod.output
    assert "nice 10 files (512, 512)" in prod.stdout


def test_without_limits_the_same_failure_is_no_resource_limit(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=settings("") + f'[automations.oom]\nrun = [{PY}, "-c", "raise MemoryError"]\n')
    ran = run_cli("run", "oom", cwd=root)
    assert ran.exit_code == 1
    assert last_run(run_cli, root, "oom")["error_class"] == "bug"
    plain = run_cli("run", "nice_cmd", cwd=root)
    assert plain.exit_code == 0 and "nice 0 " in plain.stdout


@pytest.mark.parametrize("table, key, code", [
    ('[resources.development]\nmemory = "lots"\n', "resources.development.memory: is not a size", "SETTINGS_INVALID"),
    ('[resources]\nnice = 40\n', "resources.nice: must be a whole number of at least -20 and at most 19, not 40", "SETTINGS_INVALID"),
    ('[resources]\nmemroy = "1GB"\n', "resources.memroy: unknown key", "SETTINGS_INVALID"),
    ('[resources.prod]\nmemory = "1GB"\n', "resources.prod: unknown key", "RESOURCES_INVALID"),
    ('[resources]\ncpu_seconds = true\n', "resources.cpu_seconds: must be a whole number of at least 1, not true", "SETTINGS_INVALID"),
])
def test_a_bad_resources_table_is_a_clear_error_before_any_job_starts(make_project, run_cli, table, key, code):
    root = make_project({"jobs.py": JOBS}, settings=settings(table))
    ran = run_cli("run", "nice_cmd", cwd=root)
    assert ran.exit_code == 1, ran.output
    assert key in ran.stderr and "Traceback" not in ran.stderr and "failed (configuration)" in ran.stderr
    assert "nice" not in ran.stdout  # the job never started
    strict = run_cli("--env", "production", "run", "nice_cmd", cwd=root, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    if "development" in table:  # development's own table: production's jobs are not concerned
        assert strict.exit_code == 0, strict.output
    else:  # production's strict profile refuses to start on an error
        assert strict.exit_code == 3 and key in strict.output and "nice" not in strict.stdout
    checked = run_cli("check", cwd=root)
    # A value the [resources] declaration refuses is check's SETTINGS_INVALID; a table for no declared environment,
    # which only the reader can tell, is RESOURCES_INVALID: each said once.
    assert checked.exit_code == 1 and code in checked.output and key in checked.output
    assert checked.output.count(key) == 1, checked.output


def test_limits_above_what_this_process_may_give_are_refused(make_project, run_cli):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this process has no hard limit on open files")
    root = make_project({"jobs.py": JOBS}, settings=settings(f"[resources]\nopen_files = {hard + 1}\n"))
    ran = run_cli("run", "nice_cmd", cwd=root)
    assert ran.exit_code == 1 and "above this process's own hard limit" in ran.stderr and "files" not in ran.stdout


def test_check_warns_that_an_in_process_function_runs_unlimited(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=settings(LIMITS, isolation="in-process"))
    checked = run_cli("--json", "check", cwd=root)
    found = [f for f in json.loads(checked.stdout)["findings"] if f["code"] == "RESOURCES_NOT_APPLIED"]
    assert sorted(f["key"] for f in found) == [f"automations.{n}" for n in ("eat", "files", "limits", "spin")]


# --- host schedulers --------------------------------------------------------------------


SCHEDULED = LIMITS + '''
[automations.nightly]
run = "jobs:limits"
schedule = "0 3 * * *"
'''


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed; Debian: apt-get install systemd")
def test_systemd_units_carry_the_environment_limits_and_systemd_reads_them(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": JOBS}, settings=SCHEDULED)
    units = tmp_path / "units"
    made = run_cli("--env", "production", "schedule", "--format", "systemd", "--output", str(units), cwd=root)
    assert made.exit_code == 0, made.output
    service = units / "envfence-production-nightly.service"
    text = service.read_text()
    for line in ("MemoryMax=1073741824", "CPUQuota=50%", "Nice=10", "LimitNOFILE=512"):
        assert line + "\n" in text
    assert "MemoryMax" not in (units / "envfence-production-envfence-health.service").read_text()  # envfence's own check
    verify = subprocess.run(["systemd-analyze", "verify", str(service)], capture_output=True, text=True)
    complaints = [line for line in verify.stderr.splitlines() if "Unknown key" in line or "Failed to parse" in line
                  or "Invalid" in line]
    assert complaints == [], verify.stderr


def test_kubernetes_cronjobs_carry_limits_and_equal_requests(make_project, run_cli):
    from kubernetes.client import ApiClient
    from kubernetes.utils import parse_quantity

    root = make_project({"jobs.py": JOBS}, settings=SCHEDULED + '[schedule]\nimage = "registry.example/app:1"\n')
    made = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=root)
    assert made.exit_code == 0, made.output
    items = {i["metadata"]["name"]: i for i in json.loads(made.stdout)["items"]}
    job = ApiClient().deserialize(json.dumps(items["nightly-production"]), "V1CronJob", "application/json")
    resources = job.spec.job_template.spec.template.spec.containers[0].resources
    assert parse_quantity(resources.limits["memory"]) == 1024 ** 3 and parse_quantity(resources.limits["cpu"]) == parse_quantity("0.5")
    assert resources.requests == resources.limits
    health = [i for n, i in items.items() if "health" in n][0]
    assert "resources" not in health["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def test_an_ad_hoc_command_is_limited_too_and_its_limit_is_reported(limited, run_cli):
    ran = run_cli("exec", "--", sys.executable, "-c", "while True: pass", cwd=limited)
    assert ran.exit_code in (152, 137), ran.output  # exec exits with the command's own code
    assert last_run(run_cli, limited, "exec")["error_class"] == "resource_limit"


def test_a_secret_in_the_output_of_a_job_that_hit_its_limit_stays_masked(make_project, run_cli):
    canary = "canary-limits-Zq8Rt3Wp"
    root = make_project({"jobs.py": JOBS, ".env": f"DEV_API_KEY={canary}\n"},
                        settings=settings('[resources]\nmemory = "400MB"\n[settings.API_KEY]\nsecret = true\n'
                                          f'[automations.leak]\nrun = [{PY}, "-c", "import os; print(os.environ[\'API_KEY\']); '
                                          'raise MemoryError(os.environ[\'API_KEY\'])"]\n'))
    ran = run_cli("run", "leak", cwd=root)
    assert ran.exit_code == 1 and "resource_limit" in ran.stderr
    assert canary not in ran.output
    log = (root / "var" / "development" / "logs" / "automation_development.log").read_text()
    assert canary not in log
