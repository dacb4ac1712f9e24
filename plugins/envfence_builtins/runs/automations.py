"""Automations declared in the project settings, and whether they may run here.

Each key of the ``[automations]`` table is an automation's name. The short
form names what to run: ``"module:function"`` (called with a run context), a
string (a shell line, run by ``/bin/sh -c``) or a list (a program and its
arguments, run without a shell)::

    [automations]
    sync-jobs = "acme.jobs:sync"
    report = "env | sort > var/env.txt"
    backup = ["tar", "czf", "backup.tgz", "data"]

    [automations.import-csv]
    run = "python scripts/import_csv.py"
    description = "Load the day's CSV into Airtable"
    environments = ["development", "production"]
    settings = ["AIRTABLE_API_KEY", "AIRTABLE_BASE_ID"]
    schedule = { development = "*/30 * * * *", production = "0 2 * * *" }

This plugin also guards runs: an automation outside its environments, one
whose settings are missing, and any run in a strict profile whose validation
found errors are blocked. It reports schedules whose cron times collide
across environments through ``validate``, so ``envfence check`` shows them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Automation, Finding

_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ISOLATION = ("process", "in-process")
#: How a string command runs: through the shell. A list runs without one.
SHELL = ("/bin/sh", "-c")


class FunctionTarget:
    """A ``module:function`` imported from the project root when first called."""

    def __init__(self, spec: str, root, where: str) -> None:
        self.spec = spec
        self.root = root
        self.where = where

    def __call__(self, ctx: Any) -> Any:
        return self.load()(ctx)

    def load(self):
        """Import the module (the project root first on ``sys.path``) and return the function."""
        import importlib
        import sys

        module_name, _, name = self.spec.partition(":")
        root = str(Path(self.root).resolve())
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        top = module_name.split(".")[0]
        cached = sys.modules.get(top)
        if cached is not None and _in_project(self.root, top) and not str(getattr(cached, "__file__", "")).startswith(root):
            # Another project's module of the same name (a long-lived process
            # that opened several projects): this project's own must run.
            for stale in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[stale]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"{self.where}: cannot import {module_name!r} ({exc})",
                "check the module name; it is imported from the project root",
            ) from None
        finally:
            if added:
                sys.path.remove(root)
        function = getattr(module, name, None)
        if not callable(function):
            raise ConfigurationError(f"{self.where}: {module_name!r} has no function {name!r}", "check the function name")
        return function

    def __repr__(self) -> str:
        return self.spec


def _in_project(root, top: str) -> bool:
    return (Path(root) / f"{top}.py").is_file() or (Path(root) / top / "__init__.py").is_file()


def _automations_table():
    from envfence.settings_kinds import either, mapping, text, texts
    from envfence.settings_tables import Table

    table = Table("automations", "the project's automations, one per name")
    one = table.add_each("", "an automation: what it runs, where and when", names=r"[\s\S]+",
                         # The one naming rule (automations.name_problem) judges the name when the automations are collected.
                         names_hint="a name", shorthand="run")
    one.add("run", either(text(example="acme.jobs:sync"), texts(example="tar")), None,
            '"module:function", a shell line, or ["program", "arg"]', required=True)
    one.add("description", text(empty=True, example="Load the day's CSV"), "", "what it does, for list and reports")
    one.add("environments", texts(example="production"), [], "the environments it may run in (default: all)")
    one.add("settings", texts(example="AIRTABLE_API_KEY"), [], "the settings it needs (a run is blocked while one is missing)")
    one.add("schedule", either(text(example="0 2 * * *"), mapping(text(), example={"production": "0 2 * * *"})), None,
            "a cron expression, or one per environment")
    one.add("isolation", text(choices=_ISOLATION), None, "process: a child process; in-process: envfence's own (say why)")
    one.add("isolation_reason", text(example="holds a GUI session"), "", "why it must share envfence's process",
            requires={"isolation": "in-process"})
    return table


#: ``[automations]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _automations_table()


@hookimpl
def declare_tables():
    """The ``[automations]`` table."""
    return [TABLE]


def parse_automations(settings) -> list[Automation]:
    """The automations of the ``[automations]`` table; :class:`ConfigurationError` names a bad key."""
    declared = TABLE.read_strict(settings)
    return [_automation(settings, name, body) for name, body in declared.each("").items()]


def _automation(settings, name: str, body) -> Automation:
    """One ``[automations.NAME]`` table, its kinds already checked."""
    where = f"{settings.source}: automations.{name}"
    command, function = _target(body["run"], where, settings)
    environments = []
    for env in body["environments"]:
        resolved = settings.resolve(env)
        if resolved is None:
            raise ConfigurationError(f"{where}.environments: {env!r} is no declared environment",
                                     f"use one of: {', '.join(settings.environments)}")
        environments.append(resolved)
    schedule = body["schedule"]
    isolation, reason = _isolation(body.raw, where, command is not None)
    return Automation(
        name=name,
        description=body["description"],
        environments=tuple(environments),
        settings=tuple(s.strip() for s in body["settings"]),
        schedule=_schedule(schedule, where, settings) if schedule is not None else None,
        function=function,
        command=command,
        plugin="automations",
        isolation=isolation,
        isolation_reason=reason,
    )


def _target(run, where: str, settings) -> tuple[tuple[str, ...] | None, FunctionTarget | None]:
    """``(command, function)``: a list is a program and its arguments, a ``module:function`` a function, other text a shell line."""
    if isinstance(run, list):
        if not run:
            raise ConfigurationError(f"{where}.run: missing or empty",
                                     'say what to run: run = "module:function", run = "a shell line" or run = ["program", "arg"]')
        return tuple(run), None
    if _FUNCTION.match(run.strip()):
        return None, FunctionTarget(run.strip(), settings.path.parent if settings.path else ".", where)
    # A string is a shell line, as in cron and CI: $VARS, pipes and quotes mean what they mean there.
    return SHELL + (run,), None


def _isolation(body: Mapping[str, Any], where: str, is_command: bool) -> tuple[str | None, str]:
    """``isolation`` and its reason: ``in-process`` opts out of a strict profile's child process, and says why."""
    isolation, reason = body.get("isolation"), body.get("isolation_reason", "")
    if isolation is not None and isolation not in _ISOLATION:
        raise ConfigurationError(f"{where}.isolation: must be one of {', '.join(_ISOLATION)}, not {isolation!r}",
                                 'write isolation = "process" (a child process) or "in-process" with isolation_reason')
    if is_command and isolation is not None:
        raise ConfigurationError(f"{where}.isolation: a command already runs in a process of its own", "remove it")
    if not isinstance(reason, str) or (isolation == "in-process") != bool(reason.strip()):
        raise ConfigurationError(
            f"{where}.isolation_reason: " + ("needed with isolation = \"in-process\"" if isolation == "in-process"
                                              else "goes with isolation = \"in-process\" only"),
            'say why the job must share envfence\'s process, e.g. isolation_reason = "holds a GUI session"',
        )
    return isolation, reason.strip()


def _schedule(value: Any, where: str, settings) -> str | dict[str, str]:
    from envfence.cron import CronError, parse

    items = value.items() if isinstance(value, Mapping) else [(None, value)]
    result: dict[str, str] = {}
    for env, expression in items:
        key = f"{where}.schedule" + (f".{env}" if env else "")
        if env is not None and settings.resolve(env) is None:
            raise ConfigurationError(f"{key}: {env!r} is no declared environment", f"use one of: {', '.join(settings.environments)}")
        try:
            parse(expression)
        except CronError as exc:
            raise ConfigurationError(f"{key}: {exc}", "write five fields, e.g. '0 2 * * *' for 02:00 every day") from None
        result[settings.resolve(env) if env else ""] = expression.strip()
    return result[""] if "" in result else result


@hookimpl
def declare_settings(settings) -> list:
    """The settings automations name are known keys, so the process environment may set them."""
    from envfence.models import SettingSpec

    try:
        automations = parse_automations(settings)
    except ConfigurationError:
        return []  # validate reports the broken table as AUTOMATION_INVALID
    names = sorted({name for a in automations for name in a.settings})
    return [SettingSpec(name, f"needed by automation {', '.join(a.name for a in automations if name in a.settings)}",
                        plugin="automations") for name in names]


@hookimpl
def register_automations(session, register) -> None:
    """Register the automations of the project settings."""
    for automation in parse_automations(session.settings):
        register(automation)


@hookimpl
def validate(session) -> list[Finding]:
    """Report a broken ``[automations]`` table, and cron times that collide across environments."""
    try:
        automations = session.automations
    except ConfigurationError as exc:
        return [
            Finding(
                code="AUTOMATION_INVALID",
                severity="error",
                message=exc.message,
                remediation=exc.hint,
                plugin="automations",
                file=str(session.settings.path) if session.settings.path else None,
            )
        ]
    from envfence.cron import CronError, named_zone

    try:
        named_zone(session.environ, session.settings.timezone)
    except CronError as exc:
        return [Finding("AUTOMATION_INVALID", "error", str(exc), "set timezone to a name from the time zone database",
                        key="timezone", plugin="automations")]
    return _resources(session, automations.values())


def _resources(session, automations) -> list[Finding]:
    """A bad ``[resources]`` table (an error: no job would start), and function automations its limits cannot reach."""
    from envfence.resources import limits_for, problems

    env = session.environment.name
    try:
        limits = limits_for(session.settings, env)
    except ConfigurationError as exc:
        from envfence.settings import CORE

        if any(not p.unknown for p in CORE.tables["resources"].problems_here(session.settings.raw.get("resources"), env)):
            return []  # a value the declaration refuses: check's own SETTINGS_INVALID names it, once
        return [Finding("RESOURCES_INVALID", "error", exc.message, exc.hint, key="resources", plugin="automations")]
    said = problems(limits)
    if said:
        return [Finding("RESOURCES_INVALID", "error", f"[resources] for {env}: {said[0]}",
                        "lower the setting, or raise the limit of the service that starts envfence", key="resources", plugin="automations")]
    if limits.empty:
        return []
    return [Finding("RESOURCES_NOT_APPLIED", "warning",
                    f"{a.name} runs in envfence's own process in {env}: its [resources] limits cannot apply to it",
                    'set isolation = "process" on it (limits apply to a function run in its own process, and to commands)',
                    key=f"automations.{a.name}", plugin="automations")
            for a in automations if a.command is None and a.allows(env) and not a.isolated(session.profile.strict)]


def _malformed_credentials(session) -> list[Finding]:
    """``CREDENTIAL_INVALID`` when validation found an error in the value of a credential that is set (a malformed token).

    Confirmable: a person at a development terminal is asked; cron and CI
    (no terminal) are refused unless forced with a reason.
    """
    # Malformed: the value itself is wrong. The CREDENTIAL_* rules are about isolation between environments.
    bad = [f for f in session.report.errors if session.config.holds_credential(f.key) and not f.code.startswith("CREDENTIAL_")]
    if not bad:
        return []
    keys = ", ".join(dict.fromkeys(f.key for f in bad))
    return [
        Finding(
            code="CREDENTIAL_INVALID",
            severity="error",
            message=f"{keys} in {session.environment.name} failed validation, first: {bad[0].code}: {bad[0].message}",
            remediation="fix them (see `envfence check`); a malformed credential would fail the job half-way",
            key=bad[0].key,
            plugin="automations",
            confirmable=True,
        )
    ]


# trylast: where the run is (host, environment) is said before what the job lacks.
@hookimpl(trylast=True)
def pre_run_safety(session, request) -> list[Finding]:
    """Block an automation outside its environments, with missing settings, malformed credentials, or strict validation errors."""
    automation, env = request.automation, session.environment.name
    findings: list[Finding] = []
    if not automation.allows(env):
        findings.append(
            Finding(
                code="AUTOMATION_NOT_ALLOWED",
                severity="error",
                message=f"{automation.name} may run in {', '.join(automation.environments)}, not in {env}",
                remediation=f"run it with --env {automation.environments[0]}, or add {env!r} to its environments",
                plugin="automations",
            )
        )
    config = session.config
    missing = [
        name for name in automation.settings if config.credential_key(name) is None and name not in config
    ]
    if missing:
        findings.append(
            Finding(
                code="AUTOMATION_SETTING_MISSING",
                severity="error",
                message=f"{automation.name} needs {', '.join(missing)}, not set in {env}",
                remediation=f"set them in .env.{env} (credentials as {config.key_for('NAME')}) or pass --set KEY=VALUE",
                key=missing[0],
                plugin="automations",
            )
        )
    if not session.profile.strict:
        findings += _malformed_credentials(session)
    elif session.report.errors:
        first = session.report.errors[0]
        findings.append(
            Finding(
                code="VALIDATION_FAILED_STRICT",
                severity="error",
                message=f"{env} is strict and validation found {len(session.report.errors)} error(s), "
                f"first: {first.code}: {first.message}",
                remediation="fix them (see `envfence check`)",
                plugin="automations",
            )
        )
    return findings
