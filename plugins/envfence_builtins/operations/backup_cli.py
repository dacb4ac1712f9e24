"""``envfence backup`` and ``envfence restore ARCHIVE``: progress on a terminal, quiet without one."""

from __future__ import annotations

from pathlib import Path

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import Progress, dumps, progress_printer

from envfence_builtins.operations import backup_create as archives, backup_restore as restoring


@examples(
    "envfence --env production backup",
    "envfence --env production backup --output /srv/backups --keep 14",
)
@click.group(invoke_without_command=True)
@json_option
@click.option("--output", type=click.Path(file_okay=False),
              help="Write the archive here (default: [backup] directory, else <tree>/backups/archives).")
@click.option("--include-key", is_flag=True, help="Also archive the environment's encryption key (keep such an archive as safe as the key).")
@click.option("--keep", type=click.IntRange(min=1), help="Archives to keep in that directory, the oldest removed first (default: [backup] keep, 7).")
@click.pass_context
def backup(ctx: click.Context, output, include_key: bool, keep) -> None:
    """Archive this environment's state: history, audit trail, config snapshots ([backup] include: CSV, logs); checksummed."""
    if ctx.invoked_subcommand is not None:
        return  # `backup verify`: no archive is made
    state = ctx.find_object(State)
    session = state.session()
    configured = archives.settings_of(session)
    count = keep or configured.keep
    session.prepare()
    directory = Path(output) if output else configured.directory
    manifest = archives.create(session, directory, include_key, progress_printer(state))
    archive = Path(manifest["archive"])
    removed = archives.prune(session, archive.parent, count, archive)
    session.audit("backup.created", archive=str(archive), files=len(manifest["files"]), includes_key=include_key,
                  removed=[p.name for p in removed])
    if state.json:
        click.echo(dumps({**manifest, "removed": [str(p) for p in removed]}))
        return
    if state.verbosity < 0:
        return  # `-q`, as the host scheduler runs it: only a failure makes output (and cron mail)
    click.echo(f"wrote {archive} ({len(manifest['files'])} file(s){', with the key' if include_key else ''})")
    if removed:
        click.echo(f"removed {len(removed)} older archive(s), keeping {count}")


@examples(
    "envfence --env production backup verify var/production/backups/archives/envfence_production_20261206T020000.000000Z.tar.gz",
)
@backup.command("verify")
@json_option
@click.argument("archive", type=click.Path(dir_okay=False))
@pass_state
def verify_cmd(state: State, archive: str) -> None:
    """Restore ARCHIVE into a temporary directory and check it (checksums, MAC, trail, databases, snapshots); exit 1 if damaged."""
    session = state.session()
    result = restoring.verify_archive(session, Path(archive))
    session.audit("backup.verified", archive=str(archive), ok=result["ok"], problems=result["problems"])
    if state.json:
        click.echo(dumps(result))
    else:
        signed = "manifest MAC verified" if result["signature"] == "signed" else "unsigned (this environment has no audit key)"
        trail = "no audit trail checked (the audit plugin is not loaded)" if result["audit_records"] is None \
            else f"audit trail of {result['audit_records']} record(s)"
        click.echo(f"{archive}: {result['files']} file(s), checksums verified, {signed}; restored into a temporary directory: {trail}")
        for problem in result["problems"]:
            click.echo(f"  DAMAGED {problem}")
        click.echo("archive verified: it restores whole" if result["ok"] else "archive damaged: do not count on it")
    if not result["ok"]:
        raise SystemExit(1)


@examples(
    "envfence --env production restore var/production/backups/production-20261206T020000Z.tar.gz --dry-run",
)
@click.command("restore")
@json_option
@click.argument("archive", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Verify the archive and show what would be restored; write nothing.")
@pass_state
def restore_cmd(state: State, archive: str, dry_run: bool) -> None:
    """Verify ARCHIVE and restore it into this environment's empty tree (never across environments)."""
    session = state.session()
    with Progress(state, "restoring") as progress:
        result = restoring.restore(session, Path(archive), dry_run, progress if progress.shown else None)
    if not dry_run:
        trail = restoring.restored_trail(session, session.paths, None)
        result["audit"] = {"records": trail["records"], "ok": trail["problem"] is None, "broken": trail["problem"]}
        session.prepare()
        session.audit("backup.restored", archive=str(archive), files=len(result["written"]), created_at=result["created_at"])
    if state.json:
        click.echo(dumps(result))
        return
    verb = "would restore" if dry_run else "restored"
    signed = "manifest MAC verified" if result["signature"] == "signed" else "unsigned (this environment has no audit key)"
    click.echo(f"{archive}: checksums verified, {signed}; {verb} {len(result['files'])} file(s) into {session.paths.base}")
    if result["project"] != str(session.root.path):
        click.echo(f"note: the archive was made in {result['project']}")
    if not dry_run:
        audit = result["audit"]
        if audit["records"] is None and audit["ok"]:
            click.echo("audit trail: not checked (the audit plugin is not loaded)")
        else:
            click.echo(f"audit trail: {audit['records']} record(s), chain {'intact' if audit['ok'] else 'BROKEN: ' + audit['broken']['reason']}")
