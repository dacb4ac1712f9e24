"""One canary, every command: no secret in any output, log, history, audit record or snapshot.

Feature tests each carry their own canary; this sweep runs the whole product
on one project, the way a team would use it in a day, and then searches
everything it printed and everything it wrote.
"""

from __future__ import annotations

from pathlib import Path

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
    project.settings(
        '[airtable]\n[automations]\nsync = "jobs:sync"\nbroken = "jobs:broken"\n'
        '[webhooks.housecallpro]\n'
    )
    project.write("jobs.py", JOBS)
    project.write(
        ".env",
        f"DEV_AIRTABLE_API_KEY={TOKEN}\nPROD_AIRTABLE_API_KEY=canary-prod-token-5520\n"
        f"DB_PASSWORD=canary-db-password-7731\nHOUSECALLPRO_WEBHOOK_SECRET={HOOK}\n"
        f"AIRTABLE_BASE_ID=appCanaryBase0001\nAIRTABLE_TABLE=Jobs\nAIRTABLE_ENDPOINT_URL={fake_airtable.url}\n",
    )
    commands = [
        ("detect",), ("--json", "detect"),
        ("config", "show", "--explain"), ("--json", "config", "show"), ("-q", "config", "show"),
        ("config", "diff", "dev", "prod"), ("config", "template"),
        ("check",), ("--json", "check"), ("check", "--live"), ("--env", "prod", "check"),
        ("init",), ("config", "snapshot"),
        ("list",), ("run", "sync", "--dry-run"), ("run", "sync"), ("-v", "run", "broken"), ("--json", "run", "broken"),
        ("--env", "prod", "run", "sync"),
        ("status",), ("--json", "status"), ("status", "--compare"),
        ("audit", "show"), ("--json", "audit", "show"), ("audit", "verify"),
        ("clean", "--older-than", "0d", "--dry-run"),
    ]
    printed = []
    for args in commands:
        result = project.run(*args)
        assert result.exit_code in (0, 1, 3), (args, result.output)
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
        if "backups/config" in path.as_posix():
            continue  # snapshots are copies of the .env files: owner-only, checked below
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{path} holds a secret"
    for copy in Path(project.path, "var").rglob("backups/config/*/.env"):
        assert oct(copy.stat().st_mode & 0o777) == "0o600"
    # Nor did Airtable receive one in a record.
    assert all(TOKEN not in str(r) for r in fake_airtable.records("appCanaryBase0001", "Jobs"))
