"""``envfence schedule``: print, install, diff and remove the environment's schedule."""

from __future__ import annotations

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps
from envfence.errors import EXIT_FINDINGS, ConfigurationError, EnvfenceError

from envfence_builtins.operations import schedule_entries as sched


def _entries_data(entries) -> list[dict]:
    return [
        {"automation": e.automation, "environment": e.environment, "declared": e.declared, "schedule": e.expression,
         "stagger_minutes": e.offset, "command": list(e.argv or ("run", e.automation))}
        for e in entries
    ]


@examples(
    "envfence schedule                     # the crontab block",
    "envfence --env production schedule --format systemd --output /etc/systemd/system",
    "envfence --env production schedule --format kubernetes > cronjobs.yaml",
)
@click.group(invoke_without_command=True)
@json_option
@click.option("--format", "form", type=click.Choice(sched.FORMATS), default=None,
              help="The host's scheduler: a crontab block, systemd timer and service units, or a Kubernetes CronJob list "
                   "(JSON, which kubectl reads as YAML). Default: [schedule] target, else crontab.")
@click.option("--output", type=click.Path(file_okay=False), help="systemd: write the unit files into this directory.")
@click.pass_context
def schedule(ctx: click.Context, form: str, output) -> None:
    """Print the environment's schedule in the form its host runs.

    Every entry runs `envfence --env NAME -q run AUTOMATION` from the project
    root; an environment with schedules also gets `envfence --env NAME -q
    health --alert` ([schedule] health_check, default every 5 minutes). Subcommands install the crontab block, show drift, or remove it.
    """
    if ctx.invoked_subcommand is not None:
        return
    state = ctx.find_object(State)
    session = state.session()
    form = form or sched.target(session)
    entries = sched.scheduled(session)
    if form == "crontab":
        artefact: object = sched.crontab_block(session)
    elif form == "systemd":
        artefact = sched.systemd_units(session)
        if output:
            _write_units(output, artefact)
    else:
        artefact = sched.cronjobs(session)
    named = sched.zone_name(session)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "format": form, "time_zone": named,
                          "entries": _entries_data(entries), "artefact": artefact}))
        return
    if form == "crontab":
        click.echo(artefact, nl=False)
    elif form == "systemd":
        if output:
            click.echo(f"wrote {len(artefact)} unit file(s) to {output}; then: systemctl --user daemon-reload "
                       f"&& systemctl --user enable --now {' '.join(n for n in artefact if n.endswith('.timer'))}")
        else:
            for name, text in artefact.items():
                click.echo(f"# --- {name}\n{text}")
    else:
        click.echo(dumps(artefact))  # JSON is YAML: `kubectl apply -f -` takes it as it is
        if not named and entries:
            click.echo(f"# no timezone is set: the CronJobs fire in UTC, the cluster's default, while envfence reads the "
                       f"schedules in {getattr(sched.zone(session), 'key', 'local time')}; set timezone in the settings "
                       "to give them spec.timeZone", err=True)
    if not entries:
        click.echo(f"# no automation is scheduled in {session.environment.name}", err=True)


def _write_units(directory: str, units: dict[str, str]) -> None:
    from pathlib import Path

    from envfence_builtins.operations.state_files import write_outside

    for name, text in units.items():
        write_outside(Path(directory) / name, text)


def _installed(session):
    """``(crontab, installed block or None, declared block, begin, end)``; the declared block fits the zone above it."""
    begin, end = sched.markers(session)
    current = sched.read_crontab(session)
    before, installed, _ = sched.split_crontab(current, begin, end)
    return current, installed, sched.crontab_block(session, sched.inherited_zone(before)), begin, end


@examples(
    "envfence --env production schedule install",
)
@schedule.command("install")
@json_option
@pass_state
def install(state: State) -> None:
    """Merge the environment's block into the user's crontab (idempotent: the rest is kept)."""
    session = state.session()
    current, installed, block, begin, end = _installed(session)
    changed = installed != block
    if changed:
        sched.write_crontab(session, sched.merged(current, block, begin, end))
        session.prepare()
        session.audit("schedule.installed", entries=len(sched.scheduled(session)), replaced=installed is not None)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "changed": changed, "entries": _entries_data(sched.scheduled(session))}))
    else:
        click.echo(f"crontab {'updated' if changed else 'already up to date'}: {len(sched.scheduled(session))} entr(y/ies) "
                   f"for {session.environment.name}")


@examples(
    "envfence --env production schedule diff   # exit 1 on drift, 4 when it cannot tell",
)
@schedule.command("diff")
@json_option
@pass_state
def diff(state: State) -> None:
    """Show drift between the installed crontab block and the declared schedule.

    Exit 0 when they match, 1 when they differ, 4 when the crontab cannot be
    read (no crontab program, or it failed), so a monitor never reads "cannot
    check" as "drift found".
    """
    import difflib

    session = state.session()
    try:
        _, installed, block, _, _ = _installed(session)
    except EnvfenceError as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"cannot check for drift: {exc.message}", exc.hint) from None
    lines = list(difflib.unified_diff((installed or "").splitlines(keepends=True), block.splitlines(keepends=True),
                                      "installed crontab", "declared schedule"))
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "installed": installed is not None, "drift": bool(lines),
                          "diff": "".join(lines)}))
    elif lines:
        click.echo("".join(lines), nl=False)
    else:
        click.echo(f"no drift: the installed crontab matches the declared schedule of {session.environment.name}")
    if lines:
        click.get_current_context().exit(EXIT_FINDINGS)


@examples(
    "envfence --env production schedule remove",
)
@schedule.command("remove")
@json_option
@pass_state
def remove(state: State) -> None:
    """Take the environment's block out of the user's crontab; the rest is kept."""
    session = state.session()
    current, installed, _, begin, end = _installed(session)
    if installed is not None:
        sched.write_crontab(session, sched.merged(current, None, begin, end))
        session.prepare()
        session.audit("schedule.removed")
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "removed": installed is not None}))
    else:
        click.echo(f"removed the {session.environment.name} block from the crontab" if installed is not None
                   else f"no {session.environment.name} block in the crontab; nothing to remove")
