"""``envfence report [--since 30d] [--html FILE]``: numbers for every environment, and a page with charts."""

from __future__ import annotations

from pathlib import Path

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps, progress_printer
from envfence.cli.params import Since

from envfence_builtins.operations import report_data as pages
from envfence_builtins.operations import report_insights, report_page


@examples(
    "envfence report",
    "envfence report --since 7d --html report.html",
)
@click.command()
@json_option
@click.option("--since", type=Since(), default="30d", show_default=True, help="Runs from this moment on: an age (7d) or an ISO date.")
@click.option("--html", "output", type=click.Path(dir_okay=False), help="Write a self-contained HTML page with charts here.")
@pass_state
def report(state: State, since, output) -> None:
    """Runs, failures, durations (with anomalies), resources, findings and drift across every environment."""
    from envfence_builtins.operations.state_files import write_outside

    session = state.session()
    sessions = {env: session if env == session.environment.name else state.session_for(env) for env in session.settings.environments}
    k = pages.k_factor(session.settings)
    data = pages.gather(sessions, since)
    numbers = pages.summary(data, k)
    found = report_insights.gather(sessions, since)
    if output:
        drawn = report_page.charts(data, k, progress_printer(state))
        page = report_page.render_html(str(session.root.path), since, data, numbers, drawn)
        write_outside(Path(output), report_insights.into_page(page, found))
    if state.json:
        click.echo(dumps({"since": since, "html": output, "k": k, "environments": numbers, "drift": data["drift"],
                          "findings": {env: len(f) for env, f in data["findings"].items()}, **found}))
        return
    for env, per in numbers.items():
        for name, item in sorted(per.items()):
            anomalies = f", {len(item['anomalies'])} anomal{'y' if len(item['anomalies']) == 1 else 'ies'}" if item["anomalies"] else ""
            click.echo(f"{env:<12} {name:<20} {item['runs']:>4} run(s) {item['failures']:>3} failed ({item['error_rate']:.0%}) "
                       f"median {item['median_duration']:.2f}s{anomalies}")
    if not any(numbers.values()):
        click.echo(f"no runs since {since:%Y-%m-%d %H:%M} UTC")
    for note in found["compare"]["notes"]:
        click.echo(f"note: {note}")
    for item in found["advice"]:
        click.echo(f"advice: {item['code']} {item['environment']} {item['automation'] or ''}: {item['message']} (do: {item['action']})")
    if output:
        click.echo(f"wrote {output}")
