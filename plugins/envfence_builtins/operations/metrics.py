"""``envfence metrics``: run history in the Prometheus text format, for node_exporter's textfile collector or a Pushgateway.

Per environment and automation: runs by status, failures, a duration
histogram, and the time of the last run and of the last success. Rendered
with prometheus_client (the ``metrics`` extra: ``pip install envfence[metrics]``).
"""

from __future__ import annotations

from envfence import hookimpl


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence metrics``."""
    from envfence_builtins.operations.metrics_cli import metrics

    cli.add_command(metrics)
