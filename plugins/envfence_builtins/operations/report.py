"""``envfence report [--since 30d] [--html FILE]``: runs, failures, durations and drift across environments, with charts.

The HTML page (:mod:`envfence_builtins.operations.report_page`) is one
self-contained file (charts are SVG drawn by matplotlib, inline; no script,
no network) of a bounded size whatever the history, with:

- runs and failures per day, per environment;
- each automation's duration over time with an anomaly band (median ± k·MAD,
  ``[report] k``, default 3), runs outside it marked;
- error rates per automation, environments side by side;
- CPU time and peak memory per run;
- ``check``'s findings per environment, and configuration drift between them.

matplotlib comes with the ``report`` extra (``pip install 'envfence[report]'``).
"""

from __future__ import annotations

from envfence import hookimpl


SECTION = "report"


@hookimpl
def declare_tables():
    """The ``[report]`` table."""
    from envfence_builtins.operations.analysis import REPORT_TABLE

    return [REPORT_TABLE]


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence report``."""
    from envfence_builtins.operations.report_cli import report

    cli.add_command(report)
