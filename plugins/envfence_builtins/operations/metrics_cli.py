"""``envfence metrics [--textfile FILE] [--push URL]``: print, write or push the environment's run metrics."""

from __future__ import annotations

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps
from envfence.errors import EnvfenceError

from envfence_builtins.operations.metrics_registry import registry_for


@examples(
    "envfence metrics",
    "envfence --env production metrics --textfile /var/lib/node_exporter/envfence.prom",
)
@click.command()
@json_option
@click.option("--textfile", type=click.Path(dir_okay=False), help="Write here (atomically) for node_exporter's textfile collector, e.g. /var/lib/node_exporter/textfile_collector/envfence_production.prom.")
@click.option("--push", "gateway", metavar="URL", help="Also push to this Prometheus Pushgateway (job envfence, grouped by environment).")
@click.option("--job", default="envfence", show_default=True, help="The Pushgateway job name.")
@pass_state
def metrics(state: State, textfile, gateway, job: str) -> None:
    """Run metrics of this environment in the Prometheus text format (stdout unless --textfile)."""
    session = state.session()
    registry = registry_for(session)  # a clear error when prometheus_client is missing
    from prometheus_client import generate_latest, push_to_gateway

    text = generate_latest(registry).decode("utf-8")
    if textfile:
        if not textfile.endswith(".prom"):
            raise click.BadParameter("node_exporter reads only files ending in .prom", param_hint="--textfile")
        from pathlib import Path

        from envfence_builtins.operations.state_files import write_outside

        # Atomic (the collector never reads half a file) and never through a link planted at the name.
        write_outside(Path(textfile).absolute(), text, session=session)
    if gateway:
        try:
            push_to_gateway(gateway, job=job, registry=registry, grouping_key={"environment": session.environment.name}, timeout=10)
        except OSError as exc:
            raise EnvfenceError(f"cannot push to the Pushgateway at {gateway} ({exc})",
                                "check the URL and that the Pushgateway is running; the metrics were not pushed") from None
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "textfile": textfile, "pushed": gateway, "metrics": text}))
    elif not textfile:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {textfile}" + (f" and pushed to {gateway}" if gateway else ""))
