"""Logging strategies: development console + file, production JSON lines, embedded silence; never a secret."""

from __future__ import annotations

import json
import os
import sys

import pytest

import envfence

CANARY = "patCanaryLogToken01." + "beef" * 16
HCP_CANARY = "hcp-canary-7f3a9c1e5b2d"
ENV_FILE = f"DEV_AIRTABLE_API_KEY={CANARY}\nPROD_AIRTABLE_API_KEY={CANARY}\nHOUSECALLPRO_API_KEY={HCP_CANARY}\n"


@pytest.fixture(autouse=True)
def fresh_loguru():
    """Each test starts and ends with loguru as a fresh process has it."""
    from loguru import logger

    def reset():
        logger.remove()
        logger.configure(patcher=None, extra={})
        logger.enable("envfence")

    reset()
    yield logger
    reset()
    logger.add(sys.stderr)


def fail_with_secret(secret: str) -> None:
    api_key = secret  # a local variable a detailed traceback would show
    raise ValueError(f"Airtable refused {api_key}")


def log_everything(session) -> None:
    log = session.logger(automation="sync")
    log.debug("debug line with {}", CANARY)
    log.bind(header=f"Bearer {HCP_CANARY}", token=CANARY).info(f"calling with {HCP_CANARY}")
    try:
        fail_with_secret(CANARY)
    except ValueError:
        log.exception("sync failed")
    from loguru import logger

    # code that uses loguru directly, not through the session
    logger.warning(f"plain loguru record with {CANARY}")
    logger.complete()


def test_development_logs_to_a_coloured_console_and_a_file_without_secrets(make_project, capsys, fresh_loguru):
    session = envfence.open_session(root=make_project({".env": ENV_FILE}))
    session.prepare()
    strategy = session.configure_logging(embedded=False)
    assert strategy.name == "development" and strategy.console and strategy.level == "DEBUG"
    assert strategy.file == session.paths.base / "logs" / "automation_development.log"
    log_everything(session)
    fresh_loguru.remove()  # flushes the queued file sink
    console = capsys.readouterr().err
    text = strategy.file.read_text()
    for output in (console, text):
        assert CANARY not in output and HCP_CANARY not in output
        assert "debug line with ********" in output
        assert "ValueError: Airtable refused ********" in output
        assert "plain loguru record with ********" in output
    assert "api_key = '********'" in text  # detailed traceback: locals, redacted
    assert "development" in console


def test_production_logs_json_lines_to_a_file_only(make_project, capsys, fresh_loguru):
    session = envfence.open_session(root=make_project({".env": ENV_FILE}), env="production")
    session.prepare()
    strategy = session.configure_logging(embedded=False)
    assert strategy.name == "production" and not strategy.console
    assert strategy.file.name == "automation_production.log"
    log_everything(session)
    fresh_loguru.remove()
    assert capsys.readouterr().err == ""
    lines = strategy.file.read_text().splitlines()
    assert lines and CANARY not in "\n".join(lines) and HCP_CANARY not in "\n".join(lines)
    records = [json.loads(line)["record"] for line in lines]
    assert [r["level"]["name"] for r in records] == ["INFO", "ERROR", "WARNING"]  # INFO and up
    info, error, _ = records
    assert info["extra"] == {"environment": "production", "automation": "sync", "header": "Bearer ********", "token": "********"}
    assert "ValueError: Airtable refused ********" in error["message"]
    assert "api_key =" not in error["message"]  # no variable values in production


def test_production_rotation_and_compression_come_from_settings(make_project, fresh_loguru):
    root = make_project(settings='[logging]\nrotation = "2 KB"\ncompression = "gz"\n')
    session = envfence.open_session(root=root, env="production")
    session.prepare()
    session.configure_logging(embedded=False)
    log = session.logger()
    for n in range(60):
        log.info("line {} {}", n, "x" * 80)
    fresh_loguru.remove()
    names = os.listdir(session.paths.base / "logs")
    assert "automation_production.log" in names
    assert any(n.endswith(".log.gz") for n in names), names


def test_bad_logging_settings_name_the_key(make_project, run_cli):
    root = make_project(settings='[logging]\nrotation = "sometimes"\n')
    result = run_cli("init", cwd=root)
    assert result.exit_code == 4
    assert "[logging]" in result.stderr and "sometimes" in result.stderr


def test_check_reports_an_unknown_logging_key(make_project, run_cli):
    result = run_cli("check", cwd=make_project(settings='[logging]\nrotate = "1 day"\n'))
    assert result.exit_code == 1
    assert "LOGGING_SETTINGS" in result.stdout and "logging.rotate: unknown key" in result.stdout


def test_a_local_whose_repr_fails_does_not_lose_the_record(make_project, capsys, fresh_loguru):
    class Awkward:
        def __repr__(self):
            raise RuntimeError("no repr")

    session = envfence.open_session(root=make_project())
    session.configure_logging(embedded=False)
    try:
        thing = Awkward()  # noqa: F841 - a local the detailed traceback would show
        raise KeyError("missing row")
    except KeyError:
        session.logger().exception("lookup failed")
    assert "KeyError: 'missing row'" in capsys.readouterr().err


def test_a_dry_run_session_logs_to_no_file(make_project, capsys):
    root = make_project({".env": ENV_FILE})
    session = envfence.open_session(root=root)
    strategy = session.configure_logging(embedded=False)  # not prepared: a dry run
    assert strategy.file is None
    session.logger().info("planning")
    assert "planning" in capsys.readouterr().err
    assert not (root / "var").exists()


def test_embedded_use_adds_no_sink_and_keeps_the_tools_own(make_project, fresh_loguru):
    seen: list[str] = []
    fresh_loguru.add(lambda message: seen.append(str(message)), format="{name} {message}")
    session = envfence.open_session(root=make_project({".env": ENV_FILE}))
    strategy = session.configure_logging()
    assert strategy.name == "embedded" and strategy.file is None and not strategy.console
    session.logger().info(f"from the tool with {CANARY}")
    from_envfence = compile("logger.info('internal detail')", "runner.py", "exec")
    exec(from_envfence, {"__name__": "envfence.runner", "logger": fresh_loguru})
    assert seen == [f"{__name__} from the tool with ********\n"]  # envfence's own records stay off
    fresh_loguru.enable("envfence")  # until the tool turns them on
    exec(from_envfence, {"__name__": "envfence.runner", "logger": fresh_loguru})
    assert seen[-1] == "envfence.runner internal detail\n"


def test_the_logger_configures_embedded_logging_when_nothing_did(make_project, fresh_loguru):
    session = envfence.open_session(root=make_project())
    session.logger()
    assert session.logging.name == "embedded"


def test_a_plugin_answering_first_replaces_the_strategy(make_project, envfence_plugin, fresh_loguru):
    class Custom:
        @envfence.hookimpl(tryfirst=True)
        def configure_logging(self, session, embedded):
            return "syslog"

    envfence_plugin(Custom(), "syslog")
    session = envfence.open_session(root=make_project())
    session.prepare()
    assert session.configure_logging(embedded=False) == "syslog"
    assert not (session.paths.base / "logs" / "automation_development.log").exists()


def test_importing_the_plugins_does_not_import_loguru():
    import subprocess

    code = "import sys, envfence_builtins.runs.logging_strategies, envfence.cli; print('loguru' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_development_job_writes_nothing_outside_its_tree(make_project, fresh_loguru):
    root = make_project({".env": ENV_FILE})
    envfence.open_session(root=root, env="production").prepare()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    session = envfence.open_session(root=root)
    session.prepare()
    session.configure_logging(embedded=False)
    log = session.logger(automation="import-jobs")
    paths = session.paths
    (paths.stage("incoming") / "jobs.csv").write_text("id\n1\n")
    staged = paths.move(paths.stage("incoming") / "jobs.csv", "processing")
    session.credential("AIRTABLE_API_KEY", by="import-jobs")
    log.info("processed {}", staged.name)
    paths.move(staged, "processed")
    fresh_loguru.remove()
    tree = root / "var" / "development"
    # var/ itself gains the development entry; nothing else outside the tree changes
    changed = [p for p in root.rglob("*") if before.get(p) != p.stat().st_mtime_ns and p != tree.parent]
    assert changed and all(p == tree or p.is_relative_to(tree) for p in changed), changed
    assert (tree / "logs" / "automation_development.log").exists()
