"""Schedules compete only on a shared machine: SCHEDULE_COLLISION and stagger look at environments that share a host."""

from __future__ import annotations

import json

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SYNC = '[automations.sync]\nrun = "jobs:ok"\nschedule = "0 2 * * *"\n'


def collisions(run_cli, root) -> list[str]:
    result = run_cli("--json", "check", cwd=root)
    return [f["message"] for f in json.loads(result.stdout)["findings"] if f["code"] == "SCHEDULE_COLLISION"]


def test_development_and_production_on_their_own_machines_do_not_collide(make_project, run_cli):
    # The default hostname patterns (dev..., prod...) can never name one machine.
    assert collisions(run_cli, make_project({"jobs.py": JOBS}, settings=SYNC)) == []


def test_environments_whose_patterns_name_one_machine_collide(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[environments.development]\nhostname_patterns = ["dev", "box*"]\n'
                        '[environments.production]\nhostname_patterns = ["prod", "boxes"]\n')
    [message] = collisions(run_cli, root)
    assert message.startswith("sync in development ('0 2 * * *') and sync in production ('0 2 * * *') are scheduled")


def test_this_host_carrying_both_markers_shares_them(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert len(collisions(run_cli, root)) == 0
    result = run_cli("--json", "check", cwd=root, env={"ENVFENCE_HOSTNAME": "dev-prod-01"})
    assert [f for f in json.loads(result.stdout)["findings"] if f["code"] == "SCHEDULE_COLLISION"]


def test_enrolled_hosts_decide_over_patterns(make_project, run_cli):
    patterns = '[environments.development]\nhostname_patterns = ["ip"]\n[environments.production]\nhostname_patterns = ["ip"]\n'
    apart = '[hostname.development]\nhosts = ["ip-10-0-0-*"]\n[hostname.production]\nhosts = ["ip-10-0-9-*"]\n'
    root = make_project({"jobs.py": JOBS}, settings=SYNC + patterns + apart)
    assert collisions(run_cli, root) == []  # one subnet each, though both patterns say "ip"
    together = '[hostname.development]\nhosts = ["ip-10-0-*"]\n[hostname.production]\nhosts = ["ip-10-0-9-*"]\n'
    (root / "envfence.toml").write_text(SYNC + patterns + together)
    assert len(collisions(run_cli, root)) == 1
    by_id = '[hostname.development]\nmachine_ids = ["3d12"]\n[hostname.production]\nhosts = ["web-*"]\nmachine_ids = ["3d12"]\n'
    (root / "envfence.toml").write_text(SYNC + by_id)
    assert len(collisions(run_cli, root)) == 1


def test_stagger_offsets_only_environments_sharing_a_host(make_project, run_cli):
    settings = (
        SYNC
        + '[environments.staging]\nbased_on = "production"\nprefix = "STG"\n'
        + '[hostname.development]\nhosts = ["laptop-*"]\n'
        + '[hostname.staging]\nhosts = ["web-*"]\n[hostname.production]\nhosts = ["web-*"]\n'
        + "[schedule]\nstagger = true\n"
    )
    root = make_project({"jobs.py": JOBS}, settings=settings)
    moved = {env: json.loads(run_cli("--json", "--env", env, "schedule", cwd=root).stdout)["entries"][0]
             for env in ("development", "staging", "production")}
    assert moved["development"]["schedule"] == "0 2 * * *"  # alone on its laptop: it keeps its time
    assert {moved["staging"]["schedule"], moved["production"]["schedule"]} == {"0 2 * * *", "1 2 * * *"}
    check = json.loads(run_cli("--json", "check", cwd=root).stdout)
    assert not [f for f in check["findings"] if "COLLISION" in f["code"]]


def test_without_the_hostname_plugin_every_pair_of_environments_may_share_a_machine(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert collisions(run_cli, root) == []  # dev... and prod... name different machines
    result = run_cli("-p", "no:hostname", "--json", "check", cwd=root)
    # Nobody can tell the machines apart: the cautious reading warns rather than stays silent.
    assert [f for f in json.loads(result.stdout)["findings"] if f["code"] == "SCHEDULE_COLLISION"]


def test_the_staggered_time_is_what_list_shows_and_health_checks_and_the_declared_one_without_the_schedule_plugin(
    make_project, run_cli
):
    settings = SYNC + '[hostname.development]\nhosts = ["web-*"]\n[hostname.production]\nhosts = ["web-*"]\n[schedule]\nstagger = true\n'
    root = make_project({"jobs.py": JOBS}, settings=settings)
    states = {env: json.loads(run_cli("--json", "--env", env, "list", cwd=root).stdout)["automations"][0]["state"]
              for env in ("development", "production")}
    moved = [s["schedule"] for s in states.values() if "schedule" in s]
    assert moved == [{"declared": "0 2 * * *", "installed": "1 2 * * *", "offset": 1}]
    env = next(e for e, s in states.items() if "schedule" in s)
    due = {c["name"]: c for c in json.loads(run_cli("--json", "--env", env, "health", cwd=root).stdout)["checks"]}
    assert "(1 2 * * *)" in due["sync.expected_every"]["message"]
    plain = json.loads(run_cli("-p", "no:schedule", "--json", "--env", env, "list", cwd=root).stdout)["automations"][0]
    assert plain["state"] == {}
    due = {c["name"]: c for c in json.loads(run_cli("-p", "no:schedule", "--json", "--env", env, "health", cwd=root).stdout)["checks"]}
    assert "(0 2 * * *)" in due["sync.expected_every"]["message"]


def test_many_environments_read_the_enrollment_once_not_once_per_pair(make_project, run_cli, monkeypatch):
    # Every pair of environments asks whether they may share a machine: n² questions. Each used to read the
    # whole [hostname] table again, so validation grew with the cube of the environments.
    from envfence_builtins.detection import hostname

    names = [f"site{i:02d}" for i in range(12)]
    settings = SYNC + "".join(f'[environments.{n}]\nbased_on = "production"\nprefix = "{n.upper()}"\n' for n in names)
    settings += '[hostname.development]\nhosts = ["laptop-*"]\n[hostname.production]\nhosts = ["web-00"]\n'
    settings += "".join(f'[hostname.{n}]\nhosts = ["web-{i + 1:02d}"]\n' for i, n in enumerate(names[:-1]))
    settings += f'[hostname.{names[-1]}]\nhosts = ["web-00"]\n'  # the one that shares production's machine
    root = make_project({"jobs.py": JOBS}, settings=settings)
    reads = []
    real = hostname.enrollment
    monkeypatch.setattr(hostname, "enrollment", lambda s: reads.append(1) or real(s))
    found = collisions(run_cli, root)
    assert len(found) == 1 and "production" in found[0] and names[-1] in found[0]
    pairs = len(names + ["development", "production"]) * (len(names) + 1)
    assert 1 <= len(reads) < pairs / 10, f"[hostname] read {len(reads)} times for {pairs} pairs"
