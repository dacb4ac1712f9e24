"""``envfence config migrate``: versioned migrations applied to every environment's files, safely."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from dotenv import dotenv_values

CANARY = "canary-migrate-7f3a-never-show"
RENAME = """description = "HCP_TOKEN is now HCP_API_KEY"

[[op]]
op = "rename"
key = "HCP_TOKEN"
to = "HCP_API_KEY"
"""


def _values(path):
    return dotenv_values(stream=io.StringIO(path.read_text()), interpolate=False)


def _events(run_cli, root, env="development"):
    return json.loads(run_cli("--env", env, "--json", "audit", "show", cwd=root).stdout)


def test_migrate_renames_splits_and_defaults_in_every_environment_and_audits_the_version(make_project, run_cli):
    root = make_project({
        ".env": f"HCP_TOKEN={CANARY}\nPROD_HCP_TOKEN={CANARY}-prod\nLOG_LEVEL=info\n",
        ".env.production": "DATABASE=db.internal:5432\nOLD_FLAG=1\n",
        "migrations/0001_rename_hcp_token.toml": RENAME,
        "migrations/0002_split_database.toml": """
[[op]]
op = "split"
key = "DATABASE"
into = ["DB_HOST", "DB_PORT"]
separator = ":"

[[op]]
op = "set_default"
key = "TIMEOUT"
value = 30

[[op]]
op = "drop"
key = "OLD_FLAG"
""",
    })
    pending = run_cli("check", cwd=root)
    assert "CONFIG_MIGRATION_PENDING" in pending.output and "0001_rename_hcp_token, 0002_split_database" in pending.output
    result = run_cli("config", "migrate", cwd=root)
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output
    shared, prod = _values(root / ".env"), _values(root / ".env.production")
    assert shared == {"HCP_API_KEY": CANARY, "PROD_HCP_API_KEY": f"{CANARY}-prod", "LOG_LEVEL": "info", "TIMEOUT": "30"}
    assert prod == {"DB_HOST": "db.internal", "DB_PORT": "5432"}
    got = run_cli("--env", "prod", "get", "HCP_API_KEY", "--reveal", cwd=root)
    assert got.stdout.strip() == f"{CANARY}-prod"
    for env in ("development", "production"):
        migrated = [e for e in _events(run_cli, root, env) if e["event"] == "config.migrated"]
        assert [e["data"]["migration"] for e in migrated] == ["0001_rename_hcp_token", "0002_split_database"]
        assert all(e["data"]["version"].startswith("cv-") for e in migrated)
        assert CANARY not in json.dumps(migrated)
    assert "CONFIG_MIGRATION_PENDING" not in run_cli("check", cwd=root).output
    again = run_cli("config", "migrate", cwd=root)
    assert again.exit_code == 0 and "development: up to date" in again.stdout


def test_each_step_is_snapshotted_first_and_the_snapshot_gives_the_old_files_back(make_project, run_cli):
    root = make_project({".env": "HCP_TOKEN=old\n", "migrations/0001_rename.toml": RENAME})
    data = json.loads(run_cli("--env", "dev", "--json", "config", "migrate", cwd=root).stdout)
    [step] = data["environments"][0]["migrations"]
    assert (root / ".env").read_text() == "HCP_API_KEY=old\n"
    assert run_cli("config", "rollback", step["snapshot"], cwd=root).exit_code == 0
    assert (root / ".env").read_text() == "HCP_TOKEN=old\n"


def test_dry_run_shows_the_diff_masked_and_writes_nothing(make_project, run_cli):
    root = make_project({".env": f"HCP_TOKEN={CANARY}\nURL=https://u:{CANARY}@h/\n",
                         "migrations/0001_rename.toml": RENAME,
                         "migrations/0002_url.toml": '[[op]]\nop = "rename"\nkey = "URL"\nto = "ENDPOINT"\n'})
    before = (root / ".env").read_text()
    result = run_cli("--env", "dev", "config", "migrate", "--dry-run", cwd=root)
    assert result.exit_code == 0, result.output
    assert ".env: HCP_TOKEN -> HCP_API_KEY  (value ********)" in result.stdout
    assert ".env: URL -> ENDPOINT" in result.stdout
    assert CANARY not in result.output
    assert (root / ".env").read_text() == before
    assert not (root / "var").exists()  # not even the tree
    assert "CONFIG_MIGRATION_PENDING" in run_cli("check", cwd=root).output


def test_renaming_onto_an_existing_key_fails_names_the_line_and_changes_nothing(make_project, run_cli):
    root = make_project({".env": f"HCP_TOKEN={CANARY}\nLOG=1\nHCP_API_KEY=other\n", "migrations/0001_rename.toml": RENAME,
                         "migrations/0002_later.toml": '[[op]]\nop = "drop"\nkey = "LOG"\n'})
    before = (root / ".env").read_text()
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1
    assert "HCP_API_KEY is already set in .env:3" in result.stderr and "0001_rename" in result.stderr
    assert CANARY not in result.output
    assert (root / ".env").read_text() == before
    events = _events(run_cli, root)
    assert [e["data"]["migration"] for e in events if e["event"] == "config.migration_failed"] == ["0001_rename"]
    assert "config.migrated" not in [e["event"] for e in events]  # the later migration waits
    assert "0001_rename, 0002_later" in run_cli("check", cwd=root).output


def test_a_secret_with_quotes_and_newlines_survives_rename_move_and_split(make_project, run_cli):
    tricky = f"a'b\"c\n{CANARY} #not-a-comment"
    root = make_project({
        ".env": 'API_TOKEN="' + tricky.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"\nPAIR=x"y:z\'w\n',
        "migrations/0001.toml": '[[op]]\nop = "rename"\nkey = "API_TOKEN"\nto = "SERVICE_TOKEN"\n\n'
                                '[[op]]\nop = "move"\nkey = "SERVICE_TOKEN"\nfrom = ".env"\nto = ".env.{environment}"\n\n'
                                '[[op]]\nop = "split"\nkey = "PAIR"\ninto = ["LEFT", "RIGHT"]\nseparator = ":"\n',
    })
    assert _values(root / ".env")["API_TOKEN"] == tricky
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output
    assert _values(root / ".env.development") == {"SERVICE_TOKEN": tricky}
    assert _values(root / ".env") == {"LEFT": 'x"y', "RIGHT": "z'w"}
    assert oct((root / ".env.development").stat().st_mode & 0o777) == "0o600"


def test_a_failing_python_migration_is_rolled_back_and_named_by_file_and_line(make_project, run_cli):
    root = make_project({".env": "A=1\nB=2\n", "migrations/0001_py.py": (
        '"""Rename A, then fail."""\n'
        "def migrate(step):\n"
        "    step.rename('A', 'C')\n"
        "    raise RuntimeError('the upstream API is down')\n")})
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1
    assert "migrations/0001_py.py:4: RuntimeError: the upstream API is down" in result.stderr
    assert (root / ".env").read_text() == "A=1\nB=2\n"


def test_a_python_migration_reads_and_sets_values(make_project, run_cli):
    root = make_project({".env.production": "PROD_API_URL=http://old.example/v1\n", "migrations/0001_v2.py": (
        "def migrate(step):\n"
        "    url = step.get('API_URL')\n"
        "    if url and url.endswith('/v1'):\n"
        "        step.set('PROD_API_URL', url[:-3] + '/v2', file='.env.{environment}')\n")})
    assert run_cli("config", "migrate", cwd=root).exit_code == 0
    assert _values(root / ".env.production") == {"PROD_API_URL": "http://old.example/v2"}


def test_malformed_migrations_are_named_with_file_and_line_before_anything_changes(make_project, run_cli):
    root = make_project({".env": "A=1\n", "migrations/0001_ok.toml": '[[op]]\nop = "drop"\nkey = "A"\n'})
    cases = {
        "0002_syntax.toml": ('[[op]]\nop = "drop"\nkey = \n', "migrations/0002_syntax.toml:3: not valid TOML"),
        "0002_unknown.toml": ('description = "x"\n\n[[op]]\nop = "renam"\nkey = "A"\n', "migrations/0002_unknown.toml:3: unknown operation 'renam'"),
        "0002_field.toml": ('[[op]]\nop = "rename"\nkey = "A"\n', "migrations/0002_field.toml:1: rename needs to"),
        "0002_py.py": ("def migrate(step):\n    step.drop('A'\n", "migrations/0002_py.py:2:"),
        "1_same.toml": ('[[op]]\nop = "drop"\nkey = "A"\n', "same number 1"),
        "notnumbered.toml": ("", "starts with its number"),
    }
    for name, (text, message) in cases.items():
        (root / "migrations" / name).write_text(text)
        result = run_cli("config", "migrate", cwd=root)
        assert result.exit_code == 4, (name, result.output)
        assert message in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.output
        assert (root / ".env").read_text() == "A=1\n"
        check = run_cli("check", cwd=root)
        assert "MIGRATION_INVALID" in check.output and message in check.output, name
        (root / "migrations" / name).unlink()
    assert run_cli("config", "migrate", cwd=root).exit_code == 0


def test_a_symlinked_env_file_is_refused_and_left_as_it_is(make_project, run_cli, tmp_path):
    shared = tmp_path / "shared.env"
    shared.write_text(f"HCP_TOKEN={CANARY}\n")
    root = make_project({"migrations/0001_rename.toml": RENAME})
    (root / ".env").symlink_to(shared)
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1
    assert "is a symbolic link" in result.stderr and ".env" in result.stderr
    assert (root / ".env").is_symlink() and shared.read_text() == f"HCP_TOKEN={CANARY}\n"


def _cli(root, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "ENVIRONMENT"))}
    return subprocess.run([sys.executable, "-m", "envfence", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_step_killed_midway_is_rolled_back_and_applied_again(make_project, run_cli):
    root = make_project({".env": f"HCP_TOKEN={CANARY}\nKEEP=1\n", "migrations/0001_killed.py": (
        "import os, signal\n"
        "from pathlib import Path\n"
        "def migrate(step):\n"
        "    Path('.env').write_text('HALF=WRITTEN\\n')  # a file changed, then the process dies\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")})
    killed = _cli(root, "--env", "dev", "config", "migrate")
    assert killed.returncode == -9
    assert (root / ".env").read_text() == "HALF=WRITTEN\n"
    check = run_cli("check", cwd=root)
    assert "CONFIG_MIGRATION_INTERRUPTED" in check.output and check.exit_code == 1
    (root / "migrations" / "0001_killed.py").write_text("def migrate(step):\n    step.rename('HCP_TOKEN', 'HCP_API_KEY')\n")
    again = _cli(root, "--env", "dev", "config", "migrate")
    assert again.returncode == 0, again.stderr
    assert (root / ".env").read_text() == f"HCP_API_KEY={CANARY}\nKEEP=1\n"
    events = [e["event"] for e in _events(run_cli, root)]
    assert events.index("config.migration_recovered") < events.index("config.migrated")
    assert "CONFIG_MIGRATION" not in run_cli("check", cwd=root).output


def test_a_python_migration_quoting_a_secret_in_its_error_is_masked(make_project, run_cli):
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\n", "migrations/0001_leaky.py": (
        "def migrate(step):\n"
        "    raise ValueError('bad token ' + step.get('API_TOKEN'))\n")})
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1 and "bad token" in result.stderr
    assert CANARY not in result.output
    assert CANARY not in run_cli("--env", "dev", "--json", "audit", "show", cwd=root).stdout


def test_a_second_migrate_is_refused_while_one_holds_the_environment(make_project, run_cli):
    import fcntl

    from envfence import files, open_session
    from envfence.migrations import LOCK

    root = make_project({".env": "HCP_TOKEN=x\n", "migrations/0001_rename.toml": RENAME})
    session = open_session(root, env="development")
    session.prepare()
    with files.open_lock(session.paths, LOCK) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1 and "another `config migrate`" in result.stderr
    assert (root / ".env").read_text() == "HCP_TOKEN=x\n"
    assert run_cli("--env", "dev", "config", "migrate", cwd=root).exit_code == 0


SETTINGS = """# the shop's settings
[health]
max_lock_age = "6h"

[snapshots]
keep = 20  # a month of changes

[alerts.escalation]
production = ["console"]
"""


def test_settings_are_migrated_once_for_every_environment_keeping_comments(make_project, run_cli):
    root = make_project({".env": "A=1\n", "migrations/0001_settings.toml": (
        '[[op]]\nop = "set_setting"\nsetting = "snapshots.keep"\nvalue = 50\n\n'
        '[[op]]\nop = "rename_setting"\nsetting = "health.max_lock_age"\nto = "health.min_free_disk"\n\n'
        '[[op]]\nop = "drop_setting"\nsetting = "alerts.escalation.production"\n\n'
        '[[op]]\nop = "set_setting"\nsetting = "hostname.production.hosts"\nvalue = ["web-prod-*"]\n')},
        settings=SETTINGS)
    dry = run_cli("config", "migrate", "--dry-run", cwd=root)
    assert "~ envfence.toml: snapshots.keep=20 -> 50" in dry.stdout and (root / "envfence.toml").read_text() == SETTINGS
    result = run_cli("config", "migrate", cwd=root)
    assert result.exit_code == 0, result.output
    text = (root / "envfence.toml").read_text()
    assert "# the shop's settings" in text and "keep = 50  # a month of changes" in text
    import tomllib

    data = tomllib.loads(text)
    assert data["health"] == {"min_free_disk": "6h"} and data["alerts"]["escalation"] == {}
    assert data["hostname"]["production"]["hosts"] == ["web-prod-*"]
    assert "production: 0001_settings" in result.stdout  # applied there too: nothing left to change
    assert run_cli("--env", "prod", "config", "migrate", cwd=root).stdout.strip() == "production: up to date"


def test_a_step_that_leaves_settings_that_do_not_load_is_rolled_back_whole(make_project, run_cli):
    root = make_project({".env": "A=1\n", "migrations/0001_bad.toml": (
        '[[op]]\nop = "drop"\nkey = "A"\n\n[[op]]\nop = "set_setting"\nsetting = "snapshots.keep"\nvalue = 0\n')},
        settings=SETTINGS)
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1
    assert "0001_bad: the configuration it leaves does not load" in result.stderr and "keep" in result.stderr
    assert (root / "envfence.toml").read_text() == SETTINGS and (root / ".env").read_text() == "A=1\n"
    assert "CONFIG_MIGRATION_PENDING" in run_cli("check", cwd=root).output


def test_renaming_a_setting_onto_one_that_is_set_is_refused(make_project, run_cli):
    root = make_project({"migrations/0001.toml": '[[op]]\nop = "rename_setting"\nsetting = "health.max_lock_age"\nto = "snapshots.keep"\n'},
                        settings=SETTINGS)
    result = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert result.exit_code == 1 and "snapshots.keep is already set in envfence.toml" in result.stderr
    assert (root / "envfence.toml").read_text() == SETTINGS


def test_a_kill_after_the_settings_are_written_puts_them_back_before_applying_again(make_project, run_cli):
    root = make_project({".env": "A=1\n", "migrations/0001.toml": (
        '[[op]]\nop = "drop"\nkey = "A"\n\n[[op]]\nop = "rename_setting"\nsetting = "health.max_lock_age"\nto = "health.min_free_disk"\n')},
        settings=SETTINGS)
    # Killed once every file is written, before the step is recorded: the worst moment.
    code = ("import os, signal, envfence.migrations as m\n"
            "m._loads = lambda session, migration: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from envfence.cli import main\nmain()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "ENVIRONMENT"))}
    killed = subprocess.run([sys.executable, "-c", code, "--env", "dev", "config", "migrate"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9
    assert "min_free_disk" in (root / "envfence.toml").read_text() and (root / ".env").read_text() == ""
    (root / "migrations" / "0001.toml").write_text('[[op]]\nop = "set_setting"\nsetting = "snapshots.keep"\nvalue = 30\n')
    again = run_cli("--env", "dev", "config", "migrate", cwd=root)
    assert again.exit_code == 0, again.output
    assert (root / "envfence.toml").read_text() == SETTINGS.replace("keep = 20", "keep = 30")
    assert (root / ".env").read_text() == "A=1\n"


def test_check_reads_python_migrations_without_running_them(make_project, run_cli):
    root = make_project({".env": "A=1\n", "migrations/0001_side_effect.py": (
        "from pathlib import Path\n"
        "Path('RAN').write_text('top-level code ran')\n"
        "def migrate(step):\n    step.drop('A')\n")})
    check = run_cli("check", cwd=root)
    assert "CONFIG_MIGRATION_PENDING" in check.output and "0001_side_effect" in check.output
    assert not (root / "RAN").exists()
    assert run_cli("--env", "dev", "config", "migrate", cwd=root).exit_code == 0
    assert (root / "RAN").exists() and (root / ".env").read_text() == ""
