"""Backups complete and scheduled, and a restore drill: back up, destroy, restore, verify the trail, roll back a snapshot.

The scheduled backup is run as cron runs it: the crontab line ``schedule``
writes, read the way cronie hands a command to ``/bin/sh``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n    print('processed', file=open(ctx.paths.stage('processed') / 'done.csv', 'w'))\n"
SETTINGS = '''
[automations.ok]
run = "jobs:ok"

[backup]
include = ["csv", "logs"]
keep = 2

[backup.production]
schedule = "0 2 * * *"
keep = 3
'''


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env": "APP=v1\n", ".env.development": "BASE=appOne\n"}, settings=SETTINGS)
    assert run_cli("audit", "keygen", cwd=root).exit_code == 0  # archives and the trail are signed
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    incoming = root / "var" / "development" / "csv" / "incoming"
    (incoming / "orders.csv").write_text("id,total\n1,9.50\n")
    return root


def tree(root, env="development"):
    return root / "var" / env


def made(run_cli, root, *args) -> dict:
    result = run_cli("--json", "backup", *args, cwd=root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_restore_drill_back_up_destroy_restore_verify_roll_back(project, run_cli, tmp_path):
    first = json.loads(run_cli("--json", "config", "snapshot", "--note", "v1", cwd=project).stdout)["id"]
    (project / ".env.development").write_text("BASE=appTwo\n")
    manifest = made(run_cli, project, "--output", str(tmp_path / "offsite"))
    assert manifest["signed"] is True
    names = set(manifest["files"])
    assert {"csv/incoming/orders.csv", "csv/processed/done.csv", "logs/automation_development.log"} <= names
    runs = json.loads(run_cli("--json", "status", cwd=project).stdout)["runs"]
    verified = run_cli("backup", "verify", manifest["archive"], cwd=project)
    assert verified.exit_code == 0 and "archive verified: it restores whole" in verified.stdout, verified.output

    shutil.rmtree(tree(project))  # the disk died
    restored = run_cli("restore", manifest["archive"], cwd=project)
    assert restored.exit_code == 0 and "chain intact" in restored.stdout, restored.output
    assert (tree(project) / "csv" / "incoming" / "orders.csv").read_text() == "id,total\n1,9.50\n"
    audit = run_cli("audit", "verify", cwd=project)
    assert audit.exit_code == 0 and "chain intact" in audit.stdout, audit.output
    assert json.loads(run_cli("--json", "status", cwd=project).stdout)["runs"] == runs
    rolled = run_cli("config", "rollback", first, "--reason", "drill", cwd=project)
    assert rolled.exit_code == 0, rolled.output
    assert (project / ".env.development").read_text() == "BASE=appOne\n"
    assert run_cli("run", "ok", cwd=project).exit_code == 0  # the restored tree works on


def test_without_include_csv_and_logs_stay_out(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    names = set(made(run_cli, root)["files"])
    assert not any(n.startswith(("csv/", "logs/")) for n in names) and "history.sqlite3" in names


def test_verify_finds_a_damaged_archive_and_leaves_the_tree_alone(make_project, run_cli, tmp_path, rewrite_archive):
    import hashlib

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)  # no audit key: what the manifest says is all there is
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    archive = made(run_cli, root, "--output", str(tmp_path / "offsite"))["archive"]
    before = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in tree(root).rglob("*") if "backups" not in p.parts)

    def forged_record(name, data):  # a record changed, and the manifest's checksum with it: only the trail can tell
        if name.endswith(".jsonl"):
            return data.replace(b'"ok"', b'"ko"', 1)
        if name == "manifest.json":
            manifest = json.loads(data)
            trail = next(n for n in manifest["files"] if n.endswith(".jsonl"))
            changed = forged[trail]
            manifest["files"][trail] = {"sha256": hashlib.sha256(changed).hexdigest(), "size": len(changed)}
            return json.dumps(manifest, indent=2).encode()
        return data

    with tarfile.open(archive, "r:gz") as tar:
        forged = {m.name: tar.extractfile(m).read().replace(b'"ok"', b'"ko"', 1) for m in tar.getmembers() if m.name.endswith(".jsonl")}
    rewrite_archive(archive, lambda name, data: (name, forged_record(name, data)))
    result = run_cli("--json", "backup", "verify", archive, cwd=root)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"][0].startswith("audit trail:")
    text = run_cli("backup", "verify", archive, cwd=root)
    assert "DAMAGED audit trail" in text.stdout and "archive damaged" in text.stdout
    rewrite_archive(archive, lambda name, data: (name, data[:-10] if name == "history.sqlite3" else data))  # a checksum no longer matches
    broken = run_cli("backup", "verify", archive, cwd=root)
    assert broken.exit_code != 0 and ("checksum mismatch" in broken.stderr or "is not the manifest's" in broken.stderr), broken.output
    after = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in tree(root).rglob("*") if "backups" not in p.parts
                   and p.name not in ("audit_development.jsonl", "audit_development.head"))
    assert [b for b in before if b[0].name not in ("audit_development.jsonl", "audit_development.head")] == after


def test_verify_refuses_another_environments_archive(project, run_cli, tmp_path):
    archive = made(run_cli, project, "--output", str(tmp_path / "offsite"))["archive"]
    other = run_cli("--env", "production", "backup", "verify", archive, cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert other.exit_code == 3 and "is a backup of development, not of production" in other.stderr


def cron_command(line: str) -> str:
    """What cronie hands to sh for a five-field crontab line (cronie src/do_command.c): a bare % ends it, \\% is %."""
    command, out, escaped = line.split(None, 5)[5], [], False
    for ch in command:
        if escaped:
            out[-1:] = ["%"] if ch == "%" else [out[-1], ch]
            escaped = False
            continue
        if ch == "%":
            break
        out.append(ch)
        escaped = ch == "\\"
    return "".join(out)


def test_the_scheduled_backup_runs_as_cron_runs_it_and_keeps_its_environments_count(project, run_cli, tmp_path):
    prod = {"ENVFENCE_HOSTNAME": "web-prod-01"}
    block = run_cli("--env", "production", "schedule", cwd=project, env=prod)
    assert block.exit_code == 0, block.output
    [line] = [x for x in block.stdout.splitlines() if x.endswith(" backup")]
    assert line.startswith("0 2 * * * ") and "--env production -q backup" in line
    development = run_cli("schedule", cwd=project)
    assert " backup" not in development.stdout  # no schedule in development's table, none in the shared one
    for _ in range(5):
        ran = subprocess.run(["/bin/sh", "-c", cron_command(line)], capture_output=True, text=True, cwd=tmp_path,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ENVFENCE_HOSTNAME": "web-prod-01"})
        assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", ""), ran  # nothing for cron to mail
    archives = sorted((tree(project, "production") / "backups" / "archives").glob("envfence_production_*.tar.gz"))
    assert len(archives) == 3  # production keeps 3; development's table says 2
    assert run_cli("--env", "production", "backup", "verify", str(archives[-1]), cwd=project, env=prod).exit_code == 0


@pytest.mark.parametrize("table, said", [
    ('[backup]\ninclude = ["csv", "secrets"]\n', "backup.include: must be a list of words among csv, logs, not a list"),
    ('[backup.production]\nschedule = "at two"\n', "backup.production.schedule: is no cron expression"),
    ('[backup]\nkeep = 0\n', "backup.keep: must be a whole number of at least 1, not 0"),
    ('[backup]\nwhen = "0 2 * * *"\n', "backup.when: unknown key"),
])
def test_a_bad_backup_table_is_found_by_check_and_stops_backup_and_schedule(make_project, run_cli, table, said):
    root = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n' + table)
    prod = {"ENVFENCE_HOSTNAME": "web-prod-01"}
    checked = run_cli("--env", "production", "check", "--config-only", cwd=root, env=prod)
    # Named once, by the [backup] declaration that the backup command reads through too.
    assert "SETTINGS_INVALID" in checked.output and "BACKUP_INVALID" not in checked.output and said in checked.output
    for args in (("backup",), ("schedule",)):
        result = run_cli("--env", "production", *args, cwd=root, env=prod)
        assert result.exit_code == 4 and said in result.stderr and "Traceback" not in result.output, (args, result.output)


def test_include_never_follows_a_link_out_of_the_tree(project, run_cli, tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not the tree's\n")
    incoming = tree(project) / "csv" / "incoming"
    (incoming / "linked.csv").symlink_to(secret)
    (incoming / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    names = set(made(run_cli, project)["files"])
    assert "csv/incoming/orders.csv" in names
    assert not any("linked" in n for n in names)
