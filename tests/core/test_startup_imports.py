"""What a cold ``envfence -q detect`` imports: the declarations every session reads, never the work behind them.

Every session asks each plugin what settings it declares (``declare_settings``) and whether it
records an event (``audit_event``); each plugin answers from a light module and imports its
working code only when it acts. These tests keep it so, through a new interpreter each.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from fresh_process import envfence_in_new_process

SETTINGS = '[automations]\nnoop = ["true"]\n'

#: Modules that do a plugin's work, not its declarations: ``detect`` never needs them.
WORK_MODULES = {
    "envfence.audit_chain",  # the record format: only a session that writes a record
    "envfence.redaction",  # built when a finding or an event's data is first shown, and detect -q shows neither
    "envfence_builtins.store.postgres_client", "envfence_builtins.store.postgres_audit",  # a project without [store]
    "envfence_builtins.webhook_service.webhook_signatures",  # signing, for validate and the receiver
    "envfence_builtins.runs.directories_checks",  # inspecting the tree, for check and prepare
    "envfence_builtins.operations.alerts_delivery",  # channels and state: a security event or a run
    "hmac",  # loads OpenSSL
    "difflib",  # click's "did you mean" for a short option tried as a long one
    "unicodedata",  # an ASCII host name is its own NFKC
    # Hooks plugins offer, declared from the manifest: their modules are imported by the code that calls them.
    "envfence_builtins.store.store_hooks", "envfence_builtins.operations.schedule_hooks",
    "envfence_builtins.operations.backup_hooks", "envfence_builtins.webhook_service.provider_hooks",
}


@pytest.fixture
def environ(tmp_path):
    return {**os.environ, "ENVFENCE_PLUGIN_CACHE": str(tmp_path / "cache"), "ENVFENCE_HOSTNAME": "build-box-01"}


def test_detect_asks_the_declarations_without_importing_the_work(make_project, environ):
    root = make_project({".env": "A=1\n"}, settings=SETTINGS)
    envfence_in_new_process(root, "-q", "detect", env=environ)  # builds the manifest
    code, output, stderr, modules = envfence_in_new_process(root, "-q", "detect", env=environ)
    assert code == 0 and output.strip() == f"environment=development method=default host_class=none root={root}", stderr
    assert modules & WORK_MODULES == set()
    if importlib.util.find_spec("_sha256") or importlib.util.find_spec("_sha2"):  # the interpreter's own SHA-256
        assert "hashlib" not in modules  # the .env files' digests need no OpenSSL


def test_a_project_using_the_store_and_webhooks_still_declares_their_secrets(make_project, run_cli):
    """The declarations answered from the light modules are the same: the store's and a webhook's secrets stay masked."""
    settings = SETTINGS + '[store]\nurl = "postgresql://envfence@127.0.0.1:1/envfence"\nfallback = "local"\n[webhooks.orders]\nscheme = "standard"\n'
    canaries = {"DEV_STORE_PASSWORD": "canary-store-pass-4f1e9a7c", "DEV_ORDERS_WEBHOOK_SECRET": "canary-hook-secret-9b2d6f0a3c"}
    root = make_project({".env": "".join(f"{k}={v}\n" for k, v in canaries.items())}, settings=settings)
    result = run_cli("--env", "development", "config", "show", cwd=root)
    assert result.exit_code in (0, 1), result.output
    for key, value in canaries.items():
        assert key in result.output and value not in result.output + result.stderr


@pytest.mark.parametrize("args", [
    ["-q", "detect"], ["-v", "-q", "-q", "detect"], ["-p", "no:acme", "-q", "detect"], ["--root", ".", "-q", "detect"],
    ["-qq", "detect"], ["--root=.", "-q", "detect"], ["detect", "-q"],
])
def test_short_global_flags_mean_what_they_always_meant(make_project, run_cli, args):
    root = make_project({".env": "A=1\n"})
    result = run_cli(*args, cwd=root, env={"ENVFENCE_HOSTNAME": "build-box-01"})
    assert result.exit_code == 0 and result.output.startswith("environment=development method=default"), result.output


def test_a_short_flag_given_as_an_options_value_stays_its_value(make_project, run_cli):
    root = make_project({".env": "A=1\n"})
    result = run_cli("-p", "-q", "detect", cwd=root)
    assert result.exit_code == 2 and "'-q': write -p no:NAME" in result.output + result.stderr



HOOKSPECS = '''
from envfence.hookcalls import OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec


class ProbeSpecs:
    @failure_policy(OnError.FINDING)
    @hookspec(firstresult=True)
    def probe_answer(self, question, loud=False):
        """The first answer."""


class ProbeHooks(OfferedHooks):
    declared_by = "probe_offers"
    specs = ProbeSpecs

    def probe_answer(self, *, question, loud=False):
        return self._call("probe_answer", question=question, loud=loud)
'''

OFFERS = '''
from envfence import hookimpl
from envfence.models import Finding


@hookimpl
def register_hookspecs(register):
    from probe_hookspecs import ProbeSpecs

    register(ProbeSpecs)


@hookimpl
def validate(session):
    from probe_hookspecs import ProbeHooks

    result = ProbeHooks(session.plugins).probe_answer(question="asked", loud=True)
    return [Finding("PROBE_SAYS", "warning", f"answer {result.first!r}")] + result.findings()
'''

ANSWERS = '''
from envfence import hookimpl


@hookimpl(optionalhook=True)
def probe_answer(question, loud):
    return question.upper() if loud else question


@hookimpl(optionalhook=True, tryfirst=True)
def probe_answer_first(question):
    raise RuntimeError("the first answer broke")


probe_answer_first.envfence_impl["specname"] = "probe_answer"
'''


def _install_probe(site):
    site.mkdir()
    (site / "probe_hookspecs.py").write_text(HOOKSPECS)
    (site / "probe_offers.py").write_text(OFFERS)
    (site / "probe_answers.py").write_text(ANSWERS)
    info = site / "envfence_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: envfence-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[envfence]\nprobe_offers = probe_offers\nprobe_answers = probe_answers\n")


def test_hooks_a_plugin_offers_are_declared_from_the_manifest_as_from_their_module(make_project, environ, tmp_path):
    """Markers, argument names, defaults and the failure policy: the same answers, without importing the hookspecs."""
    site = tmp_path / "site"
    _install_probe(site)
    environ = {**environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH", "")]))}
    root = make_project({".env": "A=1\n"})
    cold = envfence_in_new_process(root, "--json", "check", env=environ)  # builds the manifest
    warm = envfence_in_new_process(root, "--json", "check", env=environ)
    assert cold[1] == warm[1] and "answer 'ASKED'" in warm[1], cold[2] + warm[2]  # firstresult passed the failed first
    assert "the first answer broke" in warm[1]  # FINDING: reported as a finding naming the plugin, the call went on
    assert "probe_hookspecs" in cold[3]
    code, _, stderr, modules = envfence_in_new_process(root, "-q", "detect", env=environ)
    assert code == 0 and "probe_hookspecs" not in modules and "probe_offers" not in modules, stderr
    listed = [envfence_in_new_process(root, "--json", "plugins", "--hooks", env={**environ, **cache}) for cache in
              ({}, {"ENVFENCE_PLUGIN_CACHE": "off"})]
    assert listed[0][1] == listed[1][1] and '"probe_answer"' in listed[0][1]


def test_the_garbage_collector_runs_again_after_start_up_and_during_a_job(make_project, run_cli, tmp_path):
    """Start-up pauses the cyclic collector; a command ends with it as it found it, and a job runs with it on."""
    import gc

    seen = tmp_path / "seen.txt"
    jobs = f"import gc\n\ndef probe(ctx):\n    open({str(seen)!r}, 'w').write(str(gc.isenabled()))\n"
    root = make_project({"jobs.py": jobs, ".env": "A=1\n"}, settings='[automations.probe]\nrun = "jobs:probe"\nisolation = "in-process"\n'
                        'isolation_reason = "reads the collector of this process"\n')
    assert gc.isenabled()
    assert run_cli("-q", "detect", cwd=root).exit_code == 0 and gc.isenabled()
    result = run_cli("run", "probe", cwd=root)
    assert result.exit_code == 0, result.output + result.stderr
    assert seen.read_text() == "True" and gc.isenabled()
    gc.disable()
    try:
        assert run_cli("-q", "detect", cwd=root).exit_code == 0 and not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_the_console_program_keeps_start_up_out_of_a_jobs_collections(make_project, run_cli, tmp_path):
    """``envfence run`` as a program: the job runs with the collector on and start-up's objects frozen (no
    collection walks them again); the command line called in process leaves its caller's collector as it was."""
    import gc
    import subprocess
    import sys

    seen = tmp_path / "seen.txt"
    jobs = (f"import gc\n\ndef probe(ctx):\n    open({str(seen)!r}, 'w').write(f'{{gc.isenabled()}} {{gc.get_freeze_count()}}')\n")
    root = make_project({"jobs.py": jobs, ".env": "A=1\n"}, settings='[automations.probe]\nrun = "jobs:probe"\nisolation = "in-process"\n'
                        'isolation_reason = "reads the collector of this process"\n')
    program = [sys.executable, "-c", "import sys; from envfence.cli import main; sys.argv[0] = 'envfence'; main()"]
    done = subprocess.run([*program, "-q", "run", "probe"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    enabled, frozen = seen.read_text().split()
    assert enabled == "True" and int(frozen) > 10_000  # modules, classes and functions of start-up
    before = gc.get_freeze_count()
    assert run_cli("run", "probe", cwd=root).exit_code == 0
    assert seen.read_text() == f"True {before}" and gc.get_freeze_count() == before and gc.isenabled()


def test_every_security_event_the_alerts_plugin_lets_through_raises_an_alert(make_project):
    """audit_event looks at the event's name before loading the delivery: each name it lets through is one
    security_alert turns into an alert, and any other name is none."""
    from envfence import open_session
    from envfence.models import AuditEvent
    from envfence_builtins.operations.alerts_delivery import security_alert
    from envfence_builtins.operations.alerts_settings import SECURITY_EVENTS

    root = make_project({".env": "A=1\n"})
    session = open_session(root=root, env="production", hostname="web-prod-01")
    data = {"automation": "sync", "overridden": ["HOST_MISMATCH"], "keys": ["API_TOKEN"], "by": "get",
            "reason": "r", "trail": "t", "archive": "a", "files": 1, "id": "d1", "findings": [], "process": "serve"}
    for name in sorted(SECURITY_EVENTS):
        assert security_alert(session, AuditEvent(event=name, environment="production", data=data)) is not None, name
    for name in ("environment.detected", "config.loaded", "run.started", "run.finished", "credential.accessed"):
        assert security_alert(session, AuditEvent(event=name, environment="production", data=data)) is None, name


#: What a run of a command automation (and ``exec``) in a project without [store], a named zone or maintenance
#: windows leaves unloaded; each is loaded by the code that needs it, where it does.
RUN_UNNEEDED = {
    "secrets", "hmac", "_hashlib",  # ids are os.urandom's; HMAC only with an audit key
    "difflib",  # a key near a declared name is judged by difflib's own quick bound first
    "unicodedata",  # an ASCII automation name's control characters are known without the database
    "zoneinfo",  # no zone named, no maintenance window: the machine's zone is never asked
    "envfence_builtins.store.postgres_client", "envfence_builtins.store.postgres_audit",  # no [store]
    "envfence_builtins.store.postgres_schema",
}


def test_a_command_run_and_exec_load_only_what_they_use_and_still_record_everything(make_project, environ):
    """No OpenSSL, time zone database, difflib or store client; the audit trail and the history still get every record."""
    env = "A=1\nAPI_TOKN=canary-4f1e9a7c3b5d\n"  # a near miss of nothing declared: the misspelling check still runs
    root = make_project({".env": env}, settings='[automations.noop-command]\nrun = ["true"]\n')
    envfence_in_new_process(root, "-q", "detect", env=environ)  # builds the manifest
    for args in (("-q", "run", "noop-command"), ("-q", "exec", "--", "true")):
        code, output, stderr, modules = envfence_in_new_process(root, *args, env=environ)
        assert code == 0, output + stderr
        assert modules & RUN_UNNEEDED == set(), args
        if importlib.util.find_spec("_sha256") or importlib.util.find_spec("_sha2"):
            assert "hashlib" not in modules, args  # the audit chain's digests need no OpenSSL
    code, output, stderr, _ = envfence_in_new_process(root, "--json", "audit", "verify", env=environ)
    assert code == 0 and '"ok": true' in output, output + stderr
    code, output, stderr, _ = envfence_in_new_process(root, "--json", "status", "--automation", "noop-command", env=environ)
    assert code == 0 and "run-" in output, output + stderr
    trail = "".join(p.read_text() for p in root.rglob("audit*.jsonl"))
    assert trail.count('"run.finished"') == 2 and "canary-4f1e9a7c3b5d" not in trail


def test_the_audit_chain_digests_are_hashlib_and_hmacs_at_every_size():
    """The built-in SHA-256 for small records, hashlib's for large: the same hash, the same signature, either way."""
    import hashlib
    import hmac

    from envfence import audit_chain
    from envfence.digests import SMALL

    key = b"k" * 32
    for size in (0, 100, SMALL - 40, SMALL, SMALL + 1, 4 * SMALL):
        record = {"event": "run.finished", "data": {"note": "é" * (size // 2)}, "seq": 7, "prev": "0" * 64}
        body = audit_chain.canonical(record)
        assert audit_chain.record_hash(record) == hashlib.sha256(body).hexdigest()
        mac = audit_chain.sign(key, "production", "audit.jsonl", 7, audit_chain.record_hash(record))
        message = "\0".join(["envfence audit head", "production", "audit.jsonl", "7", hashlib.sha256(body).hexdigest()]).encode()
        assert mac == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert audit_chain.genesis("production", "t") == hashlib.sha256(b"envfence audit trail\0production\0t").hexdigest()


@pytest.mark.parametrize("name, refused", [
    ("a\\u0001b", True), ("a\\u007fb", True), ("a\\tb", True), ("a\\u202eb", True), ("a\\u2028b", True), ("a\\u0085b", True),
    ("a\\u00adb", True), ("café-sync", False), ("sync~2", False),
])
def test_an_automation_name_with_a_control_character_is_refused_ascii_or_not(make_project, run_cli, name, refused):
    root = make_project({".env": "A=1\n"}, settings=f'[automations."{name}"]\nrun = ["true"]\n')
    result = run_cli("check", cwd=root)
    assert ("AUTOMATION_INVALID" in result.output) is refused, result.output
    assert "Traceback" not in result.output


def test_a_maintenance_zone_that_is_none_refuses_a_run_even_without_windows(make_project, run_cli):
    root = make_project({".env": "A=1\n"}, settings='[automations.noop]\nrun = ["true"]\n[maintenance]\ntimezone = "Mars/Olympus"\n')
    result = run_cli("run", "noop", cwd=root)
    assert result.exit_code == 3 and "'Mars/Olympus' is no time zone" in result.output + result.stderr, result.output


def test_a_strict_environment_still_gets_its_audit_key_and_every_record_signed(make_project, environ):
    """init makes the key (secrets, where a key is made); a run signs each record with it (hmac, where there is a key)."""
    import json
    import re

    import socket

    environ = {k: v for k, v in environ.items() if k != "ENVFENCE_HOSTNAME"}
    enrolled = f'[hostname.production]\nhosts = [{json.dumps(socket.gethostname())}]\n'  # production runs only on an enrolled host
    root = make_project({".env": "A=1\n"}, settings='[automations.noop]\nrun = ["true"]\n' + enrolled)
    code, output, stderr, _ = envfence_in_new_process(root, "--env", "production", "init", env=environ)
    key = root / ".envfence" / "keys" / "production.audit.key"
    assert code == 0 and re.fullmatch(rb"[0-9a-f]{64}\n", key.read_bytes()) and key.stat().st_mode & 0o777 == 0o600, output + stderr
    code, output, stderr, modules = envfence_in_new_process(root, "--env", "production", "-q", "run", "noop", env=environ)
    assert code == 0 and "hmac" in modules and "secrets" not in modules, output + stderr
    records = [json.loads(line) for line in next(root.rglob("audit_production.jsonl")).read_text().splitlines()]
    finished = [r for r in records if r["event"] == "run.finished"]
    assert len(finished) == 1 and re.fullmatch(r"run-[0-9a-f]{8}", finished[0]["data"]["run_id"]), finished
    assert all(r.get("mac") for r in records)
    code, output, stderr, _ = envfence_in_new_process(root, "--env", "production", "--json", "audit", "verify", env=environ)
    assert code == 0 and '"ok": true' in output, output + stderr


def test_a_process_that_called_main_still_leaves_a_later_start_up_its_collector():
    # main() freezes start-up's objects because the console program exits after one command; a process
    # that calls main() and then opens sessions itself (a tool, a test) must not keep freezing them.
    import gc

    from envfence.cli import main, paused_collection

    try:
        with pytest.raises(SystemExit):
            main(["--help"])
        assert paused_collection.freeze is False
        frozen = gc.get_freeze_count()
        with paused_collection():
            [object() for _ in range(10)]
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
