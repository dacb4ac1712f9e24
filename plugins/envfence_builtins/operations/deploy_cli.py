"""``envfence deploy`` and ``envfence deployments``: the commands of the ``deploy`` plugin."""

from __future__ import annotations

import click

from envfence.cli import State, pass_state
from envfence.cli.examples import examples
from envfence.cli.output import dumps, echo_findings, finding_dict, style
from envfence.errors import EXIT_FINDINGS

from envfence_builtins.operations.deploy_records import deploy as deploy_environment, listing


@examples(
    "envfence --env production deploy --reason \"release 2.4\"",
    "envfence deploy --allow-warnings",
)
@click.command("deploy")
@click.option("--reason", help="Why (recorded with the deployment).")
@click.option("--allow-warnings", is_flag=True, help="Let warnings of the check pass (errors still stop the deployment).")
@pass_state
def deploy(state: State, reason: str | None, allow_warnings: bool) -> None:
    """Deploy this environment: strict check, snapshot, a record, health; rolled back and alerted when unwell.

    \b
    Exit 0 when deployed, 1 when refused by the check or a pre_deploy step,
    or when the health check after it failed (the configuration is then put
    back as the previous successful deployment left it).
    """
    session = state.session()
    record = deploy_environment(session, reason, allow_warnings)
    findings = record.pop("findings")
    ok = record["status"] == "succeeded"
    if state.json:
        click.echo(dumps({**record, "findings": [finding_dict(f) for f in findings]}))
        click.get_current_context().exit(0 if ok else EXIT_FINDINGS)
    env = record["environment"]
    if record["status"] == "refused":
        click.echo(f"envfence: {env} not deployed: the check found what must be fixed first", err=True)
    else:
        click.echo(f"deployment {record['id']} of {env}: code {record['code_version']}, "
                   f"configuration {record['config_version']} (snapshot {record['snapshot']})")
    if findings:
        echo_findings(findings, err=True)
    if ok:
        click.echo(style(f"deployed {env}", fg="green", bold=True) + f" as {record['id']}")
    elif record["status"] == "rolled_back":
        click.echo(f"envfence: deployment {record['id']} failed its checks; the configuration is back to deployment "
                   f"{record['rolled_back_to']} ({record['restored_version']})", err=True)
    elif record["status"] == "failed":
        click.echo(f"envfence: deployment {record['id']} failed its checks; no earlier deployment to go back to, "
                   "the configuration is left as it is", err=True)
    click.get_current_context().exit(0 if ok else EXIT_FINDINGS)


@examples(
    "envfence deployments",
    "envfence --env production --json deployments",
)
@click.command("deployments")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many, newest first.")
@pass_state
def deployments(state: State, limit: int) -> None:
    """List this environment's deployments, newest first: status, code and configuration versions, who and where."""
    session = state.session()
    found = listing(session)[:limit]
    if state.json:
        click.echo(dumps(found))
        return
    if not found:
        click.echo(f"no deployments of {session.environment.name} yet (`envfence deploy`)")
    for r in found:
        back = f"  -> back to {r['rolled_back_to']}" if r.get("rolled_back_to") else ""
        click.echo(f"{r['id']}  {r.get('status', '?'):<11} {r.get('started', '')[:19]}  code {r.get('code_version')}  "
                   f"config {r.get('config_version')}  by {r.get('user')}@{r.get('host')}{back}")
