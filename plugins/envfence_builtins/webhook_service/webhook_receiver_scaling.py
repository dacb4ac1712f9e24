"""Scaling per environment: how many receivers and workers each environment runs, and when to add workers.

Declared in ``envfence.toml``, one table per environment (an alias names its environment)::

    [scaling.production]
    receivers = 1        # replicas of the receiver (envfence serve) Deployment
    workers = 2          # envfence worker processes: the worker Deployment's replicas, systemd worker@1..2
    max_workers = 8      # with cpu or queue_depth: a HorizontalPodAutoscaler keeps workers..max_workers
    cpu = 70             # target average CPU use of the worker pods, percent of their CPU request
    cpu_request = "250m" # the worker container's CPU request, which cpu is a percentage of
    queue_depth = 20     # target pending webhook events per worker pod (an External metric)
    queue_metric = "envfence_webhook_queue_pending"   # that metric's name in the cluster's external metrics API

An environment without a table runs one receiver and one worker. The
emitted manifests and units read it (:mod:`.webhook_deploy`); ``envfence
check`` reports a table that cannot be used as ``SCALING_INVALID``.
"""

from __future__ import annotations

import re
from typing import Any

from envfence import slotted
from envfence.errors import ConfigurationError

SECTION = "scaling"
DEFAULT_QUEUE_METRIC = "envfence_webhook_queue_pending"
DEFAULT_CPU_REQUEST = "250m"
#: Kubernetes' CPU quantity: whole or decimal cores, or millicores.
_CPU_QUANTITY = re.compile(r"(\d+(\.\d+)?|\d+m)")
#: A metric name as Prometheus and the external metrics API take it.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_COUNTS = {"receivers": 1, "workers": 1, "max_workers": None, "cpu": None, "queue_depth": None}
_KEYS = (*_COUNTS, "cpu_request", "queue_metric")


@slotted.frozen
class Scaling:
    """One environment's ``[scaling.<environment>]``."""

    receivers: int = 1
    workers: int = 1
    max_workers: int | None = None  #: set: the workers are autoscaled up to it (from :attr:`workers`)
    cpu: int | None = None  #: target average CPU utilisation, percent of :attr:`cpu_request`
    cpu_request: str = DEFAULT_CPU_REQUEST
    queue_depth: int | None = None  #: target pending events per worker pod
    queue_metric: str = DEFAULT_QUEUE_METRIC

    @property
    def autoscaled(self) -> bool:
        """True when a HorizontalPodAutoscaler is emitted for the workers."""
        return self.max_workers is not None


def _scaling_table() -> Any:
    from envfence.settings_kinds import text, whole
    from envfence.settings_tables import Table

    table = Table(SECTION, "receivers and workers per environment (an alias names its environment)")
    one = table.add_each("", "one environment's receivers and workers", noun="environment name",
                         names_hint="a declared environment's name or alias")
    one.add("receivers", whole(minimum=1, example=1), 1, "replicas of the receiver (envfence serve) Deployment")
    one.add("workers", whole(minimum=1, example=2), 1, "envfence worker processes (Deployment replicas, systemd worker@1..N)")
    one.add("max_workers", whole(minimum=1, example=8), None, "with cpu or queue_depth: the autoscaler keeps workers..max_workers")
    one.add("cpu", whole(minimum=1, example=70), None, "target average CPU use of the worker pods, percent of cpu_request")
    one.add("cpu_request", text(pattern=_CPU_QUANTITY.pattern, example=DEFAULT_CPU_REQUEST), DEFAULT_CPU_REQUEST,
            "the worker container's CPU request (cores, or millicores as 250m)")
    one.add("queue_depth", whole(minimum=1, example=20), None, "target pending webhook events per worker pod (an External metric)")
    one.add("queue_metric", text(pattern=_METRIC_NAME.pattern, example=DEFAULT_QUEUE_METRIC), DEFAULT_QUEUE_METRIC,
            "that metric's name in the cluster's external metrics API")
    return table


#: ``[scaling]``, declared once: loading, ``check``, ``config schema`` and the docs read it.
TABLE = _scaling_table()


def scaling_for(settings, environment: str) -> Scaling:
    """Environment ``environment``'s scaling (defaults where it has no table).

    :raises ConfigurationError: the table (or another environment's) names the file and key that cannot be used.
    """
    tables = _tables(settings)
    return tables.get(environment, Scaling())


def _tables(settings) -> dict[str, Scaling]:
    """Every environment's table: each is what the manifests of every environment are emitted from."""
    values = TABLE.read_strict(settings)
    found = {}
    for name, body in values.each("").items():
        environment = settings.resolve(name)
        if environment is None:
            raise ConfigurationError(f"{settings.source}: {SECTION}.{name}: {name!r} is no declared environment",
                                     f"use one of: {', '.join(settings.environments)}")
        found[environment] = _one(body, f"{settings.source}: {SECTION}.{name}")
    return found


def _one(body: Any, here: str) -> Scaling:
    """One table, read through the declaration, with the rules that tie its keys together."""
    values = {key: body[key] for key in TABLE.each[""].table.keys}
    scaling = Scaling(**values)
    targets = scaling.cpu is not None or scaling.queue_depth is not None
    if scaling.autoscaled and not targets:
        raise ConfigurationError(f"{here}: max_workers needs a target to scale on", "add cpu = 70 or queue_depth = 20")
    if targets and not scaling.autoscaled:
        raise ConfigurationError(f"{here}: cpu and queue_depth scale the workers up to max_workers, which is not set",
                                 f"add max_workers = {max(scaling.workers * 4, 2)}")
    if scaling.autoscaled and scaling.max_workers < scaling.workers:
        raise ConfigurationError(f"{here}: max_workers ({scaling.max_workers}) is below workers ({scaling.workers})",
                                 "workers is the least the autoscaler keeps; max_workers the most")
    return scaling


def problems(settings) -> list[ConfigurationError]:
    """What ``envfence check`` reports of the ``[scaling]`` tables beyond the declaration (the first problem).

    A value the declaration refuses is ``check``'s own ``SETTINGS_INVALID``: said once, not here again.
    """
    if any(not p.unknown for p in TABLE.problems(settings.raw.get(SECTION), SECTION)):
        return []
    try:
        _tables(settings)
    except ConfigurationError as exc:
        return [exc]
    return []
