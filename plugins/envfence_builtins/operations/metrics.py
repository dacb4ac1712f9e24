"""``envfence metrics``: run history in the Prometheus text format, for node_exporter's textfile collector or a Pushgateway.

Per environment and automation: runs by status, failures, a duration
histogram, and the time of the last run and of the last success. Rendered
with prometheus_client (the ``metrics`` extra: ``pip install envfence[metrics]``).
"""

from __future__ import annotations

from envfence import hookimpl

#: Bucket bounds of the duration histogram, in seconds: jobs run for seconds to an hour.
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
HISTORY_LIMIT = 1_000_000


def _client():
    # Missing, the CLI names the extra that brings it (envfence.extras).
    import prometheus_client
    return prometheus_client


def registry_for(session):
    """A prometheus_client registry holding the environment's run metrics, computed from its history."""
    prometheus_client = _client()
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    runs = session.plugins.run_history(session=session, automation=None, limit=HISTORY_LIMIT).first or []
    env = session.environment.name

    class HistoryCollector:
        def collect(self):
            total = CounterMetricFamily("envfence_runs", "Runs recorded in the history, by status", labels=["environment", "automation", "status"])
            failures = CounterMetricFamily("envfence_run_failures", "Runs that failed", labels=["environment", "automation"])
            duration = HistogramMetricFamily("envfence_run_duration_seconds", "How long runs took", labels=["environment", "automation"])
            last_run = GaugeMetricFamily("envfence_last_run_timestamp_seconds", "When the last run started", labels=["environment", "automation"])
            last_ok = GaugeMetricFamily("envfence_last_success_timestamp_seconds", "When the last successful run finished",
                                        labels=["environment", "automation"])
            by_automation: dict[str, list] = {}
            for run in runs:
                by_automation.setdefault(run.automation, []).append(run)
            for name, items in sorted(by_automation.items()):
                statuses: dict[str, int] = {}
                for run in items:
                    statuses[run.status] = statuses.get(run.status, 0) + 1
                for status, count in sorted(statuses.items()):
                    total.add_metric([env, name, status], count)
                # An abandoned run (its process died) is a failure, as everywhere else.
                failures.add_metric([env, name], statuses.get("failed", 0) + statuses.get("abandoned", 0))
                durations = [r.duration for r in items if r.status in ("succeeded", "failed")]
                buckets = [(str(b), sum(d <= b for d in durations)) for b in BUCKETS] + [("+Inf", len(durations))]
                duration.add_metric([env, name], buckets, sum(durations))
                last_run.add_metric([env, name], max(r.started_at for r in items).timestamp())
                succeeded = [r.finished_at for r in items if r.status == "succeeded"]
                if succeeded:
                    last_ok.add_metric([env, name], max(succeeded).timestamp())
            yield from (total, failures, duration, last_run, last_ok)
            yield from _reported(env, by_automation)

    registry = prometheus_client.CollectorRegistry()
    registry.register(HistoryCollector())
    return registry


def _reported(env: str, by_automation: dict[str, list]):
    """What jobs reported: each business metric's last value and its sum over the history; each step's last time."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["environment", "automation", "metric", "unit"]
    last = GaugeMetricFamily("envfence_job_metric", "A business metric the job reported, in its last run that reported it", labels=labels)
    summed = CounterMetricFamily("envfence_job_metric_sum", "A business metric summed over the recorded runs", labels=labels)
    steps = GaugeMetricFamily("envfence_step_duration_seconds", "How long each step of the last run that had it took",
                              labels=["environment", "automation", "step"])
    for name, items in sorted(by_automation.items()):
        seen: dict[str, tuple[float, str]] = {}
        totals: dict[str, float] = {}
        step_seen: dict[str, float] = {}
        for run in items:  # newest first: the first value met is the last one reported
            for metric, entry in (run.metrics.get("business") or {}).items():
                seen.setdefault(metric, (entry["value"], entry.get("unit") or ""))
                totals[metric] = totals.get(metric, 0.0) + entry["value"]
            for step, seconds in (run.metrics.get("steps") or {}).items():
                step_seen.setdefault(step, seconds)
        for metric, (value, unit) in sorted(seen.items()):
            last.add_metric([env, name, metric, unit], value)
            summed.add_metric([env, name, metric, unit], totals[metric])
        for step, seconds in sorted(step_seen.items()):
            steps.add_metric([env, name, step], seconds)
    yield from (last, summed, steps)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence metrics``."""
    from envfence_builtins.operations.metrics_cli import metrics

    cli.add_command(metrics)
