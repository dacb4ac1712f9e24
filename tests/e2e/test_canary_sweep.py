"""One canary, every command: no secret in any output, log, history, audit record or snapshot.

Feature tests each carry their own canary; this sweep runs the whole product
on one project, the way a team would use it in a day, and then searches
everything it printed and everything it wrote.
"""

from __future__ import annotations

from pathlib import Path

from envfence_builtins.operations.airtable_status import STATUS_FIELDS

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


# --- every form a secret takes, every source, every mode -------------------------------------------

import json as _json  # noqa: E402
from urllib.parse import quote as _quote  # noqa: E402

import pytest  # noqa: E402

#: A backslash, both quotes and a newline: repr(), JSON and URL-encoding all change it.
AWKWARD = "cnry\\back'quote\"Z9\ntail-Z9q"
DB_PASSWORD = "canary-db-pass-3391"
SHORTISH = "Qx7#kP"  # under 8 characters: a finding, still masked (4 and more)
FROM_ENV_FILE = "canary-devfile-6620"  # .env.development
FROM_PROD_FILE = "canary-prodfile-8812"  # .env.production
FROM_PROCESS = "canary-process-4417"
FROM_SET = "canary-set-9911"
FROM_ENC = "canary-enc-5150"
UNKNOWN_TOKEN = "patUnknownToken01." + "ab12" * 16  # known to no one: masked by its shape
#: Printed line by line by a command: its short line is no secret alone, only the whole block is.
PEM = "-----BEGIN CANARY KEY-----\nMIIBcanaryPemLine1\nQk9PTWNhbmFyeQ==\nZz\n-----END CANARY KEY-----"
FORMS_SECRETS = (
    AWKWARD, DB_PASSWORD, SHORTISH, FROM_ENV_FILE, FROM_PROD_FILE, FROM_PROCESS, FROM_SET, FROM_ENC, UNKNOWN_TOKEN, PEM,
)

FORMS_JOBS = '''
import os
from envfence.models import reveal

KEYS = ("DB_PASSWORD", "AWKWARD_TOKEN", "SHORTISH_TOKEN", "DEV_FILE_TOKEN", "PROD_FILE_TOKEN", "SET_TOKEN", "ENC_TOKEN")

def show(ctx):
    c = ctx.config
    ctx.say("url " + str(c["DATABASE_URL"]))
    for key in KEYS:
        if key in c:
            value = reveal(c[key])
            ctx.say(f"{key} {value!r} {value}")
            ctx.logger.info("{} as data {}", key, {"v": value, "l": [value]})
    ctx.say("process " + os.environ.get("ENV_ONLY_API_KEY", "unset"))

def prints(ctx):
    import sys

    print("printed", reveal(ctx.config["DB_PASSWORD"]))
    print("printed", reveal(ctx.config["AWKWARD_TOKEN"]), end="")
    print(" and", repr(reveal(ctx.config["PEM_KEY"])))
    sys.stderr.write("written " + reveal(ctx.config["PEM_KEY"]) + "\\n")

def leaky(ctx):
    secret = reveal(ctx.config["AWKWARD_TOKEN"])
    try:
        {}[secret]
    except KeyError:
        ctx.logger.exception("lookup failed")
    raise KeyError(secret)
'''


def _shown_forms(secret: str) -> set[str]:
    """What would give a secret away in output, computed here, independent of envfence's own list."""
    found = {secret, repr(secret)[1:-1], _json.dumps(secret)[1:-1], _quote(secret, safe="")}
    found |= {line for line in secret.split("\n") if len(line) >= 4}
    return found


@pytest.fixture
def forms_project(envfence_project):
    project = envfence_project
    project.settings(
        '[automations]\nshow = "jobs:show"\nleaky = "jobs:leaky"\nprints = "jobs:prints"\n'
        '[automations.pem]\nrun = ["sh", "-c", "echo begin; printf \'%s\\\\n\' \\"$PEM_KEY\\"; echo end"]\n'
        '[environments.development]\naliases = ["dev"]\n[environments.production]\naliases = ["prod"]\n'
    )
    project.write("jobs.py", FORMS_JOBS)
    for env in ("development", "production"):
        made = project.run("--env", env, "secret", "keygen")
        assert made.exit_code == 0, made.output
    encrypted = {}
    for env in ("development", "production"):
        made = project.run("--env", env, "secret", "encrypt", "ENC_TOKEN", input=FROM_ENC)
        assert made.exit_code == 0, made.output
        encrypted[env] = made.stdout.strip()
    pem = PEM.replace("\n", "\\n")
    awkward = AWKWARD.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    project.write(
        ".env",
        f'DB_PASSWORD={DB_PASSWORD}\nDATABASE_URL=postgres://u:{DB_PASSWORD}@db.internal/app\n'
        f'AWKWARD_TOKEN="{awkward}"\nSHORTISH_TOKEN={SHORTISH}\nNOTE=rotate {UNKNOWN_TOKEN} soon\n'
        f'PEM_KEY="{pem}"\n',
    )
    project.write(".env.development", f"DEV_FILE_TOKEN={FROM_ENV_FILE}\n{encrypted['development']}\n")
    project.write(".env.production", f"PROD_FILE_TOKEN={FROM_PROD_FILE}\n{encrypted['production']}\n")
    project.environ["ENV_ONLY_API_KEY"] = FROM_PROCESS
    return project


FORMS_COMMANDS = (
    ("detect",), ("config", "show"), ("config", "show", "--explain"), ("config", "template"),
    ("config", "diff", "dev", "prod"), ("check",), ("config", "snapshot", "--note", f"before {DB_PASSWORD} and {UNKNOWN_TOKEN}"),
    ("--set", f"SET_TOKEN={FROM_SET}", "run", "show", "--force", "--reason", f"sweep {DB_PASSWORD}"),
    ("run", "leaky", "--force", "--reason", "sweep"), ("run", "pem", "--force", "--reason", "sweep"),
    ("run", "prints", "--force", "--reason", "sweep"), ("run", "prints", "--dry-run"), ("status",), ("audit", "show"),
)
MODES = ((), ("--json",), ("-v",), ("-q",))


def forms_sweep(project, commands=FORMS_COMMANDS, modes=MODES, environments=("development", "production")) -> list[str]:
    """Run ``commands`` in every mode and environment; return where any form of any secret showed."""
    leaks = []
    for env in environments:
        for mode in modes:
            for args in commands:
                argv = ("--env", env, *mode, *args)
                result = project.run(*argv)
                assert "Traceback (most recent call last)" not in result.output or "-v" in mode or env == "development", argv
                for secret in FORMS_SECRETS:
                    for form in _shown_forms(secret):
                        if form in result.output:
                            leaks.append(f"`envfence {' '.join(argv)}` printed {form!r}")
    root = Path(project.path)
    for path in root.rglob("*"):
        # Everything envfence wrote, wherever it is; the project's own .env files and their
        # owner-only snapshot copies hold the secrets by design.
        if path.is_file() and not (path.name.startswith(".env") and (path.parent == root or "backups/config" in path.as_posix())):
            data = path.read_text(errors="replace")
            for secret in FORMS_SECRETS:
                for form in _shown_forms(secret):
                    if form in data:
                        leaks.append(f"{path} holds {form!r}")
    return leaks


@pytest.mark.heavy
def test_no_form_of_any_secret_leaks_in_any_mode_or_environment(forms_project):
    leaks = forms_sweep(forms_project)
    assert not leaks, "\n".join(leaks[:20])
    # The sweep saw the secrets at work: masked inside the URL, the job said them, the logs hold records.
    shown = forms_project.run("-q", "config", "show").output
    assert "DATABASE_URL=postgres://u:********@db.internal/app" in shown and "NOTE=rotate ******** soon" in shown
    check = _json.loads(forms_project.run("--json", "check").stdout)
    codes = {(f["code"], f["key"]): f["message"] for f in check["findings"]}
    assert "holds the value of DB_PASSWORD" in codes[("SECRET_IN_VALUE", "DATABASE_URL")]
    assert "what looks like an Airtable personal access token" in codes[("SECRET_IN_VALUE", "NOTE")]
    assert "6" not in codes[("SECRET_TOO_SHORT", "SHORTISH_TOKEN")]  # nor its length
    ran = forms_project.run("--set", f"SET_TOKEN={FROM_SET}", "run", "show").output
    assert "process ********" in ran and "SET_TOKEN '********' ********" in ran and "ENC_TOKEN '********' ********" in ran
    logs = "".join(p.read_text() for p in Path(forms_project.path, "var").rglob("*.log"))
    assert "lookup failed" in logs and "KeyError" in logs
    # A command printing a secret of several lines line by line: the block is one mask, on screen and in the log.
    pem = forms_project.run("run", "pem").stdout
    assert pem.splitlines() == ["begin", "********", "end"], pem
    assert "Zz" not in "".join(p.read_text() for p in Path(forms_project.path, "var").rglob("*.log"))
    # A function's print() and sys.stderr.write reach the screen redacted, and its log.
    for args in (("run", "prints"), ("run", "prints", "--dry-run")):
        printed = forms_project.run(*args).stdout
        assert "printed ********\nprinted ******** and '********'\nwritten ********\n" in printed, printed
    assert "written ********" in "".join(p.read_text() for p in Path(forms_project.path, "var").rglob("*.log"))


def test_an_ordinary_word_as_a_secret_hides_no_other_word(envfence_project):
    envfence_project.settings("[webhooks.housecallpro]\n")
    envfence_project.write(".env", "HOUSECALLPRO_WEBHOOK_SECRET=short\nDEV_X_TOKEN=development\n")
    result = envfence_project.run("check")
    assert "is shorter than 24 characters" in result.output and "********er" not in result.output
    assert "(secret, under 8 chars)" in result.output
    # Where a message names a file of the environment, the name inside a longer word stays.
    redact = envfence_project.session().redactor()
    assert redact("logs/automation_development.log in development") == "logs/automation_development.log in ********"


# --- each redaction step, switched off, makes the sweep fail ------------------------------------------


def _off_escaped_forms(monkeypatch):
    monkeypatch.setattr("envfence.redaction.forms", lambda value: {value})


def _off_values_inside_values(monkeypatch):
    from envfence.models import mask

    monkeypatch.setattr("envfence.cli.config._shown", lambda session: mask)


def _off_shapes(monkeypatch):
    from envfence.redaction import Redactor

    init = Redactor.__init__
    monkeypatch.setattr(Redactor, "__init__", lambda self, secrets=(), shapes=(): init(self, secrets))


def _off_log_records(monkeypatch):
    monkeypatch.setattr("envfence.redaction.record_patcher", lambda redactor, detailed=False: lambda record: None)


def _off_snapshot_note(monkeypatch):
    from envfence import slotted

    from envfence import snapshots

    take = snapshots.take
    monkeypatch.setattr(snapshots, "take", lambda session, note="": slotted.evolve(take(session, note), note=note))


def _off_whole_secret(monkeypatch):
    from envfence.redaction import Redactor

    find = Redactor.find
    monkeypatch.setattr(Redactor, "find", lambda self, text: [m for m in find(self, text) if m.secret is None])


def _off_command_stream(monkeypatch):
    class Unredacted:
        def __init__(self, redactor, emit):
            self.feed, self.close = emit, lambda: None

    monkeypatch.setattr("envfence.redaction.LineStream", Unredacted)


def _off_function_output(monkeypatch):
    import contextlib

    monkeypatch.setattr("envfence.redaction.redirected_output", lambda *args, **kwargs: contextlib.nullcontext())


@pytest.mark.parametrize(
    "switch_off, commands",
    [
        (_off_escaped_forms, (("run", "leaky"),)),
        (_off_values_inside_values, (("config", "show"), ("config", "template"))),
        (_off_shapes, (("config", "snapshot", "--note", f"before {UNKNOWN_TOKEN}"),)),
        (_off_log_records, (("run", "leaky"),)),
        (_off_whole_secret, (("--set", f"SET_TOKEN={FROM_SET}", "run", "show"),)),
        (_off_snapshot_note, (("config", "snapshot", "--note", f"before {DB_PASSWORD}"),)),
        (_off_command_stream, (("run", "pem"),)),
        (_off_function_output, (("run", "prints"), ("run", "prints", "--dry-run"))),
    ],
    ids=[
        "escaped-forms", "secrets-inside-values", "secret-shapes", "log-records", "secret-values", "snapshot-note",
        "command-output", "function-output",
    ],
)
def test_switching_a_redaction_step_off_makes_the_sweep_fail(forms_project, monkeypatch, switch_off, commands):
    assert not forms_sweep(forms_project, commands, modes=((), ("--json",)), environments=("development",))
    switch_off(monkeypatch)
    assert forms_sweep(forms_project, commands, modes=((), ("--json",)), environments=("development",))
