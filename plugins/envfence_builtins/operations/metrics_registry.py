"""The Prometheus registry ``envfence metrics`` renders: each environment's run totals as counters and histograms.

Built from the history's totals (``totals_of``), never from every run one by
one. The command is ``metrics_cli``; :mod:`envfence_builtins.operations.metrics` registers it.
"""

from __future__ import annotations


#: Bucket bounds of the duration histogram, in seconds: jobs run for seconds to an hour.
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)


def _client():
    # Missing, the CLI names the extra that brings it (envfence.extras).
    import prometheus_client
    return prometheus_client


def registry_for(session):
    """A prometheus_client registry holding the environment's run metrics, summed from its history.

    The history sums itself (``run_totals``: SQL ``GROUP BY`` in the SQLite
    history), so a history of millions of runs is never read run by run.
    """
    prometheus_client = _client()
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    from envfence.runs.totals import TIMED, totals_of

    totals = totals_of(session, None, BUCKETS)
    env = session.environment.name

    class HistoryCollector:
        def collect(self):
            total = CounterMetricFamily("envfence_runs", "Runs recorded in the history, by status", labels=["environment", "automation", "status"])
            failures = CounterMetricFamily("envfence_run_failures", "Runs that failed", labels=["environment", "automation"])
            duration = HistogramMetricFamily("envfence_run_duration_seconds", "How long runs took", labels=["environment", "automation"])
            last_run = GaugeMetricFamily("envfence_last_run_timestamp_seconds", "When the last run started", labels=["environment", "automation"])
            last_ok = GaugeMetricFamily("envfence_last_success_timestamp_seconds", "When the last successful run finished",
                                        labels=["environment", "automation"])
            for name in totals.automations():
                groups = totals.of(name)
                statuses = totals.statuses(name)
                for status, count in sorted(statuses.items()):
                    total.add_metric([env, name, status], count)
                # An abandoned run (its process died) is a failure, as everywhere else.
                failures.add_metric([env, name], statuses.get("failed", 0) + statuses.get("abandoned", 0))
                timed = [g for g in groups if g.status in TIMED]
                within = [sum(g.within[i] for g in timed) for i in range(len(BUCKETS))]
                buckets = [(str(b), n) for b, n in zip(BUCKETS, within)] + [("+Inf", sum(g.runs for g in timed))]
                duration.add_metric([env, name], buckets, sum(g.duration_sum for g in timed))
                last_run.add_metric([env, name], max(g.last_started for g in groups).timestamp())
                succeeded = [g.last_finished for g in groups if g.status == "succeeded"]
                if succeeded:
                    last_ok.add_metric([env, name], max(succeeded).timestamp())
            yield from (total, failures, duration, last_run, last_ok)
            yield from _reported(env, totals)

    registry = prometheus_client.CollectorRegistry()
    registry.register(HistoryCollector())
    return registry


def _reported(env: str, totals):
    """What jobs reported: each business metric's last value and its sum over the history; each step's last time."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["environment", "automation", "metric", "unit"]
    last = GaugeMetricFamily("envfence_job_metric", "A business metric the job reported, in its last run that reported it", labels=labels)
    summed = CounterMetricFamily("envfence_job_metric_sum", "A business metric summed over the recorded runs", labels=labels)
    steps = GaugeMetricFamily("envfence_step_duration_seconds", "How long each step of the last run that had it took",
                              labels=["environment", "automation", "step"])
    for metric in totals.metrics:
        last.add_metric([env, metric.automation, metric.metric, metric.unit], metric.last)
        summed.add_metric([env, metric.automation, metric.metric, metric.unit], metric.total)
    for step in totals.steps:
        steps.add_metric([env, step.automation, step.step], step.seconds)
    yield from (last, summed, steps)
