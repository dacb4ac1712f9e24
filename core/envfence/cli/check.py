"""``envfence check [--live]``: every finding about the configuration, grouped by severity."""

from __future__ import annotations

import click

from ..errors import EXIT_FINDINGS
from ..models import Report, SEVERITIES
from . import State, pass_state
from .examples import examples
from .output import SEVERITY_COLOURS, dumps, finding_dict, style

#: Section titles, most severe first.
TITLES = {"error": "errors", "warning": "warnings", "info": "info"}


def check_findings(session, live: bool, verdict: bool = True) -> list:
    """Loading findings plus the ``validate`` hook's, live or not, the pending migrations, then what would stop each automation's run.

    The session redacts them. ``verdict=False`` leaves out the run's verdict
    (:mod:`envfence.verdict`): the configuration alone, wherever it is checked.
    """
    found = list(session.load_findings) + session.validate(live=True) if live else list(session.report.findings)
    from ..migrations import findings as migration_findings

    found += session.redact_findings(migration_findings(session))  # CONFIG_MIGRATION_PENDING: behind the project's migrations
    if verdict:
        from ..verdict import run_verdicts

        verdicts = run_verdicts(session)
        # A guard's error replaces the validator's gentler word on the same matter (HOST_NOT_ENROLLED).
        stops = {f.code for f in verdicts if f.severity == "error"}
        found = [f for f in found if f.severity == "error" or f.code not in stops] + verdicts
    if session.profile.debug:
        found += development_findings(session)
    # A validator's error that also stops a run is one cause: said once (models.Report).
    return list(Report(tuple(found)).findings)


def development_findings(session) -> list:
    """The checks only a profile with ``debug`` (development) makes: a snapshot older than the files it saved."""
    from ..models import Finding
    from ..snapshots import changed_since_newest

    newest, changed = changed_since_newest(session)
    if newest is None or not changed:
        return []
    return [Finding(
        "SNAPSHOT_OUTDATED", "info",
        f"{', '.join(changed)} changed since the newest snapshot of {session.environment.name} ({newest.id})",
        "take one before the next change you may want to undo: envfence config snapshot --note TEXT",
    )]


def counts(findings) -> dict[str, int]:
    """How many findings of each severity."""
    return {s: sum(1 for f in findings if f.severity == s) for s in reversed(SEVERITIES)}


@examples(
    "envfence check                        # everything that would stop a run here",
    "envfence --env production check --config-only",
    "envfence check --live                 # also ask Airtable and HousecallPro",
)
@click.command()
@click.option("--live", is_flag=True, help="Also call the configured services with their credentials (each service plugin's live check).")
@click.option(
    "--config-only", is_flag=True,
    help="Check the configuration alone, not whether each automation would run on this host now (CI checking production's files).",
)
@pass_state
def check(state: State, live: bool, config_only: bool) -> None:
    """Validate the configuration and credentials; exit 1 on any error.

    Prints every finding, grouped by severity, with its code, the key it
    concerns, what is wrong and what to do, then what would stop `run` of
    each automation here (the guards, a held lock): a passing check means the
    runs pass the guards. Secrets are shown only as a
    masked fingerprint (kind and length). Production is stricter than
    development: some warnings are errors there (see docs/validation.md,
    `envfence docs validation`).
    """
    session = state.session()
    findings = _live_with_progress(state, session, config_only) if live else check_findings(session, False, verdict=not config_only)
    tally = counts(findings)
    code = EXIT_FINDINGS if tally["error"] else 0
    env = session.environment
    if state.json:
        click.echo(dumps({
            "environment": env.name,
            "decided_by": env.describe(),
            "profile": session.profile.based_on,
            "live": live,
            "ok": not tally["error"],
            "counts": tally,
            "findings": [finding_dict(f) for f in sorted(findings, key=_rank)],
        }))
        click.get_current_context().exit(code)

    verbose = state.verbose(session)
    if verbose:
        mode = "offline and live" if live else "offline (add --live to call the services)"
        click.echo(style(f"# check of {env.name} ({env.describe()}), {mode}", bold=True))
    if verbose and not findings:
        click.echo("\n  no findings")
    for severity in reversed(SEVERITIES):
        group = [f for f in findings if f.severity == severity]
        if not group or (severity == "info" and not verbose):
            continue
        colour = SEVERITY_COLOURS.get(severity)
        if verbose:
            click.echo(style(f"\n{TITLES[severity]} ({len(group)})", fg=colour, bold=True))
        for f in group:
            where = f" [{f.location}]" if f.location else ""
            if verbose:
                click.echo(f"  {style(f.code, fg=colour, bold=True)}{where}")
                click.echo(f"    {f.message}")
                if f.remediation:
                    click.echo(f"    fix: {f.remediation}")
            else:
                fix = f" | fix: {f.remediation}" if f.remediation else ""
                click.echo(f"{severity} {f.code}{where}: {f.message}{fix}")
    summary = ", ".join(f"{n} {TITLES[s] if n != 1 else s}" for s, n in tally.items())
    if verbose:
        verdict = style("failed", fg="red", bold=True) if code else style("passed", fg="green", bold=True)
        click.echo(f"\ncheck {verdict}: {summary}")
    else:
        click.echo(f"check {'failed' if code else 'passed'}: {summary}")
    click.get_current_context().exit(code)


def _live_with_progress(state: State, session, config_only: bool) -> list:
    """``check --live``'s findings, with a bar of the validators done on a terminal."""
    from ..hookcalls import plugin_done
    from .output import Progress

    with Progress(state, "live checks") as progress:
        progress.expect(len(session.plugins.implementations("validate")))
        token = plugin_done.set(("validate", progress))
        try:
            return check_findings(session, True, verdict=not config_only)
        finally:
            plugin_done.reset(token)


def _rank(finding) -> int:
    return -SEVERITIES.index(finding.severity)
