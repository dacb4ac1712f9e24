"""One canary, every command: no secret in any output, log, history, audit record or snapshot.

Feature tests each carry their own canary; this sweep runs the whole product
on one project, the way a team would use it in a day, and then searches
everything it printed and everything it wrote.
"""

from __future__ import annotations

from pathlib import Path

from envfence_builtins.airtable_status import STATUS_FIELDS

# Valid-shaped, so the validators and the fake Airtable treat them as real.
TOKEN = "patCanaryTokenX01." + "c0ffee15deadbeef" * 4
HOOK = "whsec_" + "Q2FuYXJ5V2ViaG9va1NlY3JldEJ5dGVzMTIzNDU2Nzg="
SECRETS = (TOKEN, HOOK, "canary-db-password-7731", "canary-prod-token-5520", TOKEN[20:52])

JOBS = '''
def sync(ctx):
    token = ctx.credential("AIRTABLE_API_KEY")
    ctx.logger.info(f"syncing with {token.reveal()}")
    ctx.say(f"using {token.reveal()} and {ctx.config['DB_PASSWORD'].reveal()}")

def broken(ctx):
    raise RuntimeError(f"upstream refused {ctx.credential('AIRTABLE_API_KEY').reveal()}")
'''


def test_no_command_prints_or_writes_a_secret(envfence_project, fake_airtable):
    project = envfence_project
    fake_airtable.add_token(TOKEN)
    fake_airtable.add_table("appCanaryBase0001", "Jobs")
    fake_airtable.add_table("appCanaryBase0001", "Runs", STATUS_FIELDS)
    project.settings(
        '[airtable]\n[automations]\nsync = "jobs:sync"\nbroken = "jobs:broken"\n'
        '[webhooks.housecallpro]\n'
    )
    project.write("jobs.py", JOBS)
    project.write(
        ".env",
        f"DEV_AIRTABLE_API_KEY={TOKEN}\nPROD_AIRTABLE_API_KEY=canary-prod-token-5520\n"
        f"DB_PASSWORD=canary-db-password-7731\nHOUSECALLPRO_WEBHOOK_SECRET={HOOK}\n"
        f"AIRTABLE_BASE_ID=appCanaryBase0001\nAIRTABLE_TABLE=Jobs\nAIRTABLE_ENDPOINT_URL={fake_airtable.url}\n"
        "AIRTABLE_STATUS_TABLE=Runs\n",
    )
    commands = [
        ("detect",), ("--json", "detect"),
        ("config", "show", "--explain"), ("--json", "config", "show"), ("-q", "config", "show"),
        ("config", "diff", "dev", "prod"), ("config", "template"),
        ("check",), ("--json", "check"), ("check", "--live"), ("--env", "prod", "check"),
        ("init",), ("config", "snapshot", "--note", f"before rotating {TOKEN}"),
        ("list",), ("run", "sync", "--dry-run"), ("run", "sync"), ("-v", "run", "broken"), ("--json", "run", "broken"),
        ("--env", "prod", "run", "sync"),
        ("--env", "prod", "run", "sync", "--force", "--reason", f"hotfix with {TOKEN} and canary-db-password-7731"),
        ("status",), ("--json", "status"), ("status", "--compare"),
        ("audit", "show"), ("--json", "audit", "show"), ("audit", "verify"),
        ("clean", "--older-than", "0d", "--dry-run"),
        ("pause", "sync", "--reason", f"rotating {TOKEN}"), ("list",), ("--json", "list"), ("resume", "sync"),
        ("schedule",), ("metrics",), ("report",), ("--json", "report"), ("alerts", "show"), ("backup",),
    ]
    printed = []
    for args in commands:
        result = project.run(*args)
        assert result.exit_code in (0, 1, 3), (args, result.output)
        printed.append((args, result.output))
    for args in [("health",), ("--json", "health")]:  # Nagios codes: the failed run makes it CRITICAL (2)
        result = project.run(*args)
        assert result.exit_code == 2, (args, result.output)
        printed.append((args, result.output))
    # The secrets were really used: the run printed and logged them, masked,
    # and the live check reached the fake service.
    outputs = dict(printed)
    assert "using ******** and ********" in outputs[("run", "sync")]
    assert "upstream refused ********" in outputs[("-v", "run", "broken")]
    assert fake_airtable.requests
    for args, output in printed:
        for secret in SECRETS:
            assert secret not in output, f"`envfence {' '.join(args)}` printed a secret"
    # The project's own .env files hold the secrets; everything envfence wrote must not.
    written = [p for p in Path(project.path, "var").rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written) and any("audit" in p.name for p in written)
    for path in written:
        if "backups/config" in path.as_posix() and path.name.startswith(".env"):
            continue  # copies of the .env files themselves: owner-only, checked below
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{path} holds a secret"
    for copy in Path(project.path, "var").rglob("backups/config/*/.env"):
        assert oct(copy.stat().st_mode & 0o777) == "0o600"
    # Development's runs reached Airtable; production's token is refused there, so the
    # forced run waits in production's queue, its reason masked. Neither holds a secret.
    runs = fake_airtable.records("appCanaryBase0001", "Runs")
    assert {r["fields"]["Automation"] for r in runs} == {"sync", "broken"}
    queued = Path(project.path, "var", "production", "airtable-status-queue.jsonl").read_text()
    assert '"Forced": true' in queued and '"Reason": "hotfix with ******** and ********"' in queued
    for secret in SECRETS:
        assert secret not in repr(runs) and secret not in repr(fake_airtable.requests)
