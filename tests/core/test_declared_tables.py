"""Every settings table is declared, by the plugin that owns it or by the core for the tables it reads.

For each table: a value of the wrong kind is one ``envfence check`` finding that names the file and the
key, and the JSON Schema ``envfence config schema`` prints refuses the same file. The core reads no
plugin's table: what it needs of one comes through a hook or a parameter.
"""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest
from test_settings_tables import _check, _findings, _project, _validator

CORE_DIR = Path(__file__).resolve().parents[2] / "core" / "envfence"

#: (table body, the dotted key check names): one wrong value per declared table.
WRONG = [
    ('[backup]\nkeep = "seven"\n', "backup.keep"),
    ('[backup.production]\ninclude = ["secrets"]\n', "backup.production.include"),
    ("[resources]\nopen_files = 0\n", "resources.open_files"),
    ('[thresholds.sync]\nerror_window = 0\n', "thresholds.sync.error_window"),
    ('[scaling.production]\nreceivers = "two"\n', "scaling.production.receivers"),
    ('[webhooks.orders]\nscheme = "standard"\nrequired_in = "production"\n', "webhooks.orders.required_in"),
    ('[webhooks.routes."/hcp"]\nprovider = "housecallpro"\nautomation = "sync"\nmax_body = -1\n', "webhooks.routes./hcp.max_body"),
    ('[webhooks.providers.acme]\nsignature_header = "x-sig"\nalgorithm = "md5"\n', "webhooks.providers.acme.algorithm"),
    ('[schedule]\ntarget = "launchd"\n', "schedule.target"),
    ("[alerts.email]\nport = true\n", "alerts.email.port"),
    ('[hostname]\nallow_stand_in = "yes"\n', "hostname.allow_stand_in"),
    ("[targets]\nproduction = 5\n", "targets.production"),
    ('[airtable]\ntables = "Jobs"\n', "airtable.tables"),
    ('[housecallpro]\nrequired_in = "production"\n', "housecallpro.required_in"),
    ('[encryption.public_keys]\nproduction = "x25519:short"\n', "encryption.public_keys.production"),
]


#: The guards' tables, read while a session opens (which host this is, whose targets these are).
READ_AS_THE_SESSION_OPENS = {"hostname.allow_stand_in", "targets.production"}


@pytest.mark.parametrize("body, dotted", WRONG, ids=[d for _, d in WRONG])
def test_a_wrong_value_is_one_check_error_naming_file_and_key_and_the_schema_refuses_it(tmp_path, body, dotted):
    root = _project(tmp_path, '[automations.sync]\nrun = ["true"]\n' + body)
    result = _check(root, "--env", "production")
    assert not _validator(tmp_path).is_valid(tomllib.loads(body))
    if dotted in READ_AS_THE_SESSION_OPENS:  # a guard's table: nothing runs on a wrong one, check included
        assert result.exit_code == 4 and f"{root / 'envfence.toml'}: {dotted}: must be " in result.output, result.output
        return
    assert result.exit_code == 1, result.output
    # One cause, one finding: the declaration's SETTINGS_INVALID, or the reader's own code with the same words.
    [finding] = [f for f in _findings(result) if f["message"].startswith(f"{root / 'envfence.toml'}: {dotted}: must be ")]
    assert finding["severity"] == "error" and finding["remediation"]
    assert finding["code"] == "SETTINGS_INVALID" or finding["plugin"], finding
    assert "PLUGIN_ERROR" not in result.output and "Traceback" not in result.output


def test_the_same_tables_with_good_values_pass_check_and_the_schema(tmp_path):
    body = ('[backup]\nkeep = 3\n[backup.production]\ninclude = ["logs"]\n[resources]\nopen_files = 512\n'
            '[scaling.production]\nreceivers = 2\n[webhooks.orders]\nscheme = "standard"\nrequired_in = ["production"]\n'
            '[webhooks.routes."/hcp"]\nprovider = "housecallpro"\nautomation = "sync"\nmax_body = 4096\n'
            '[webhooks.providers.acme]\nsignature_header = "x-sig"\nalgorithm = "sha512"\n')
    root = _project(tmp_path, '[automations.sync]\nrun = ["true"]\n' + body)
    result = _check(root)
    assert not [f for f in _findings(result) if f["code"].startswith("SETTINGS_")], result.output
    assert _validator(tmp_path).is_valid(tomllib.loads(body))


def test_a_misspelled_key_beside_environment_tables_is_named_with_the_key_it_means(tmp_path):
    root = _project(tmp_path, "[backup]\nkepe = 3\n")
    [finding] = [f for f in _findings(_check(root)) if f["key"] == "backup.kepe"]
    assert finding["code"] == "SETTINGS_INVALID" and "unknown key" in finding["message"] and "'keep'" in finding["remediation"]
    assert not _validator(tmp_path).is_valid({"backup": {"kepe": 3}})


def test_a_table_for_no_declared_environment_is_said_by_its_reader(tmp_path):
    """The schema cannot know the project's environments; the reader can, and ``check`` says it before a backup fails."""
    root = _project(tmp_path, "[backup.staging]\nkeep = 3\n")
    found = _findings(_check(root))
    [finding] = [f for f in found if f["code"] == "BACKUP_INVALID"]
    assert "backup.staging: unknown key (not a setting, nor a declared environment)" in finding["message"]
    assert "SETTINGS_INVALID" not in {f["code"] for f in found}


def test_another_environments_table_is_judged_in_its_own_environment_only(tmp_path):
    root = _project(tmp_path, '[automations.sync]\nrun = ["true"]\n[resources.production]\nmemory = "lots"\n')
    assert "resources.production.memory" not in {f["key"] for f in _findings(_check(root, "--env", "development"))}
    production = _findings(_check(root, "--env", "production"))
    assert [f["code"] for f in production if f["key"] == "resources.production.memory"] == ["SETTINGS_INVALID"]


def test_a_part_of_a_shared_table_is_judged_only_while_its_plugin_is_loaded(tmp_path):
    """[webhooks.routes] belongs to the receiver: without it the sources' plugin keeps its place open."""
    root = _project(tmp_path, '[webhooks.routes."/hcp"]\nprovider = "housecallpro"\nautomation = "sync"\nmax_body = -1\n')
    keys = {f["key"] for f in _findings(_check(root, "-p", "no:webhook_receiver"))}
    assert "webhooks.routes./hcp.max_body" not in keys and "webhooks.routes" not in keys
    assert "webhooks.routes./hcp.max_body" in {f["key"] for f in _findings(_check(root))}


# --- the core reads only the tables it declares ------------------------------------------------------


def _table_reads(path: Path) -> list[tuple[int, str]]:
    """``(line, table)`` of each ``….section("x")``, ``….raw.get("x")`` or ``….raw["x"]`` in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }

    def name(arg: ast.AST) -> str | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        return constants.get(arg.id) if isinstance(arg, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            reads_raw = node.func.attr == "get" and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "raw"
            if node.func.attr == "section" or reads_raw:
                found.append((node.lineno, name(node.args[0])))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "raw":
            found.append((node.lineno, name(node.slice)))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "tables":
            found.append((node.lineno, name(node.slice)))
    return found


def test_the_core_reads_no_plugins_table():
    from envfence.settings import CORE

    reads = {f"{path.relative_to(CORE_DIR)}:{line}": table
             for path in sorted(CORE_DIR.rglob("*.py")) for line, table in _table_reads(path)}
    assert reads, "the scan finds the core's own reads ([resources], [thresholds], [snapshots])"
    strangers = {where: table for where, table in reads.items() if table is not None and table not in CORE.known()}
    assert strangers == {}, "the core reads a plugin's table: take what it needs through a hook or a parameter"


def test_the_scan_finds_a_plugin_table_read_in_core_code(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('SECTION = "schedule"\n\ndef f(settings):\n    return settings.section(SECTION).get("target")\n'
                      'def g(settings):\n    return settings.raw.get("encryption")\n')
    assert sorted(_table_reads(module)) == [(4, "schedule"), (6, "encryption")]


def test_which_scheduler_fires_an_automation_comes_from_the_schedule_plugin(envfence_project):
    from envfence.automations import installed_firing

    envfence_project.settings('[schedule]\ntarget = "systemd"\n[automations.job]\nrun = ["true"]\nschedule = "30 1 * * *"\n')
    session = envfence_project.session()
    assert installed_firing(session, session.automations["job"]) == ("30 1 * * *", "systemd")
    # Without the plugin that owns [schedule], nothing installs the schedule: cron's reading of it applies.
    session = envfence_project.session(disabled_plugins=["schedule"])
    assert installed_firing(session, session.automations["job"]) == ("30 1 * * *", "crontab")
    assert "envfence_builtins.operations.schedule" not in json.dumps(sorted(session.plugins.names()))


def test_set_seals_to_the_public_key_through_the_encryption_plugin_and_without_it_keeps_the_secret_here(envfence_project):
    pytest.importorskip("cryptography")
    envfence_project.settings('[environments.development]\nbased_on = "development"\n')
    assert envfence_project.run("secret", "keygen", "--pair").exit_code == 0
    settings_text = (envfence_project.path / "envfence.toml").read_text()
    assert "[encryption.public_keys]" in settings_text and "development = \"x25519:" in settings_text
    # The public key is the encryption plugin's: without it nothing seals, and the secret stays on this machine.
    local = envfence_project.run("-p", "no:encryption", "set", "API_TOKEN", "can'ary-9876543210")
    assert local.exit_code == 0 and "set API_TOKEN in .env.development.local" in local.stdout, local.output
    assert "the encryption plugin is disabled" in local.stderr and "can'ary" not in local.output
    sealed = envfence_project.run("set", "DB_PASSWORD", "can'ary-0123456789")
    assert sealed.exit_code == 0 and "(encrypted)" in sealed.stdout, sealed.output
    shared = (envfence_project.path / ".env.development").read_text()
    assert "DB_PASSWORD=enc:x25519:" in shared and "can'ary" not in shared
