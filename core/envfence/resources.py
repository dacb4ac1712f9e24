"""Resources per environment: how much memory, CPU time, priority and open files a job may take.

Settings (``[resources]`` applies to every environment, ``[resources.<environment>]``
overlays it key by key)::

    [resources]
    open_files = 1024

    [resources.production]
    memory = "1GB"        # address space of the job's process (K, M, G, T: powers of 1024, as systemd reads them)
    cpu_seconds = 600     # CPU time the job's process may use; then SIGXCPU (and SIGKILL a second later)
    cpus = 0.5            # a rate: half a core (systemd CPUQuota=, Kubernetes resources.limits.cpu)
    nice = 10             # the job's scheduling priority (absolute, as systemd's Nice=)

The runner applies them to a command automation and to a function automation
run in its own process (``isolation = "process"``): the job starts under a
small ``/bin/sh`` wrapper that sets the limits (``ulimit``) and its priority
(``nice``) and then ``exec``\\ s it, so no Python code runs between ``fork`` and
``exec`` (safe in a threaded worker) and nothing is left between envfence and
the job. A job that hits one fails as :class:`envfence.runs.execute.ResourceLimitHit`,
of its own error class ``resource_limit``. ``schedule`` writes the same table into
systemd units and Kubernetes manifests (:func:`systemd_lines`, :func:`kubernetes_resources`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from . import slotted
from .errors import ConfigurationError

SECTION = "resources"
KEYS = ("memory", "cpu_seconds", "cpus", "nice", "open_files")
# Patterns compiled by re's own cache on first use: importing this module compiles nothing.
_SIZE = r"(?i)^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: What a job prints when an allocation or an open failed against its limit (Python, C, C++, the shell, Java).
_MEMORY_SAID = r"(?i)MemoryError|Cannot allocate memory|out of memory|bad_alloc|OutOfMemoryError"
_FILES_SAID = r"Too many open files|EMFILE"
#: The exit status of a process ended by SIGXCPU (128 + 24) and by SIGKILL (128 + 9).
_SIGXCPU_EXIT, _SIGKILL_EXIT = 152, 137


@slotted.frozen
class Limits:
    """The resources one environment's jobs may take; None is no limit."""

    memory: int | None = None  #: bytes of address space
    cpu_seconds: int | None = None
    cpus: float | None = None  #: cores, a rate (for the host scheduler; a run alone cannot enforce a rate)
    nice: int | None = None
    open_files: int | None = None

    @property
    def empty(self) -> bool:
        """True when nothing is limited: the job starts as it always did, without the wrapper."""
        return all(getattr(self, key) is None for key in KEYS)

    def shown(self, key: str) -> Any:
        """The setting ``key`` as a person reads it: memory in MiB, the rest as written."""
        value = getattr(self, key)
        return f"{value / (1 << 20):g} MiB" if key == "memory" and value is not None else value

    def describe(self) -> dict[str, Any]:
        """The limits that are set, by key (for ``check``, dry runs and JSON)."""
        return {key: getattr(self, key) for key in KEYS if getattr(self, key) is not None}


def parse_size(value: Any, where: str) -> int:
    """Bytes from ``"1GB"``, ``"512M"``, ``"1GiB"`` or a number of bytes; :class:`ConfigurationError` naming ``where`` else."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    found = re.match(_SIZE, value) if isinstance(value, str) else None
    if found is None or float(found[1]) <= 0:
        raise ConfigurationError(f"{where}: {value!r} is not a size", 'write a size such as "512MB" or "1GB" (powers of 1024)')
    return int(float(found[1]) * _UNITS[found[2].upper()])


def _size_problem(value: Any) -> str | None:
    try:
        parse_size(value, "")
    except ConfigurationError:
        return 'is not a size ("512MB", "1GB": powers of 1024, or bytes)'
    return None


def _keys(table: Any) -> None:
    from .settings_kinds import either, number, text, whole

    table.add("memory", either(text(example="1GB"), whole(minimum=1, example=1 << 30)), None,
              "address space of the job's process (K, M, G, T: powers of 1024, as systemd reads them), or bytes",
              check=_size_problem)
    table.add("cpu_seconds", whole(minimum=1, example=600), None, "CPU time the job's process may use; then SIGXCPU")
    table.add("cpus", number(minimum=0.01, example=0.5), None, "a rate: cores (systemd CPUQuota=, Kubernetes limits.cpu)")
    table.add("nice", whole(minimum=-20, maximum=19, example=10), None, "the job's scheduling priority (absolute, as Nice=)")
    table.add("open_files", whole(minimum=1, example=1024), None, "the files the job may hold open")


def declare_resources(table: Any) -> None:
    """Declare the keys of the core's ``[resources]`` table, and of ``[resources.<environment>]`` over it."""
    _keys(table)
    _keys(table.add_each("", "one environment's resources, over [resources]", noun="environment name",
                         names_hint="a declared environment's name"))


def limits_for(settings: Any, environment: str) -> Limits:
    """The limits of ``environment``'s jobs: ``[resources.<environment>]`` over ``[resources]``.

    :raises ConfigurationError: naming the file and the key: a value the declaration refuses, or a
        ``[resources.NAME]`` table whose name is no declared environment.
    """
    from .settings import CORE

    found = CORE.tables[SECTION].overlaid(settings, environment)
    limits = {key: value for key, (value, _) in found.items()}
    if "memory" in limits:
        limits["memory"] = parse_size(limits["memory"], f"{settings.source}: {found['memory'][1]}")
    if "cpus" in limits:
        limits["cpus"] = float(limits["cpus"])
    return Limits(**limits)


def problems(limits: Limits) -> list[str]:
    """Why this process cannot give its jobs ``limits`` (a limit above its own hard one, a priority it may not raise)."""
    import os

    try:
        import resource
    except ImportError:
        return [] if limits.empty else ["resource limits need a POSIX system"]
    said = []
    for key, which in (("memory", resource.RLIMIT_AS), ("cpu_seconds", resource.RLIMIT_CPU), ("open_files", resource.RLIMIT_NOFILE)):
        wanted, hard = getattr(limits, key), resource.getrlimit(which)[1]
        if wanted is not None and hard != resource.RLIM_INFINITY and wanted + (1 if key == "cpu_seconds" else 0) > hard:
            said.append(f"{key} = {wanted} is above this process's own hard limit ({hard})")
    if limits.nice is not None and limits.nice < os.getpriority(os.PRIO_PROCESS, 0) and os.geteuid() != 0:
        said.append(f"nice = {limits.nice} is a higher priority than this process has ({os.getpriority(os.PRIO_PROCESS, 0)}), "
                    "and only root may raise it")
    return said


def wrapped(argv: Iterable[str], limits: Limits) -> list[str]:
    """``argv`` started under its limits: ``/bin/sh -c 'ulimit …; exec nice -n N "$@"' envfence-limits ARGV…``.

    Soft limits are set before hard ones (a soft limit may never exceed its
    hard one). CPU time gets a hard limit one second above the soft one: the
    job is sent SIGXCPU, then SIGKILL if it goes on. ``nice`` is absolute: the
    increment is what takes this process's priority to it (none when it is
    already that low).
    """
    import os

    argv = list(argv)
    if limits.empty:
        return argv
    steps = []
    if limits.cpu_seconds is not None:
        steps += [f"ulimit -S -t {limits.cpu_seconds}", f"ulimit -H -t {limits.cpu_seconds + 1}"]
    if limits.memory is not None:
        kib = max(1, limits.memory // 1024)
        steps += [f"ulimit -S -v {kib}", f"ulimit -H -v {kib}"]
    if limits.open_files is not None:
        steps += [f"ulimit -S -n {limits.open_files}", f"ulimit -H -n {limits.open_files}"]
    start = 'exec "$@"'
    if limits.nice is not None:
        increment = limits.nice - os.getpriority(os.PRIO_PROCESS, 0)
        if increment > 0:
            start = f'exec nice -n {increment} -- "$@"'
    return ["/bin/sh", "-c", " && ".join([*steps, start]), "envfence-limits", *argv]


def reached(limits: Limits, code: int, cpu_used: float | None, said: Iterable[str] = (), exception: str | None = None) -> str | None:
    """Which limit ended a job that exited with ``code`` (None when none of them did).

    CPU time: the job died of SIGXCPU, or of SIGKILL after using its CPU
    seconds. Memory and open files: the job's own error (``exception``, a
    class name and message) or its last lines of output (``said``) say an
    allocation or an open failed, and that limit is set.
    """
    if not code or limits.empty:
        return None
    if limits.cpu_seconds is not None and (code == _SIGXCPU_EXIT or (
            code == _SIGKILL_EXIT and cpu_used is not None and cpu_used >= limits.cpu_seconds)):
        return "cpu_seconds"
    text = "\n".join([*said, exception or ""])
    if limits.memory is not None and re.search(_MEMORY_SAID, text):
        return "memory"
    if limits.open_files is not None and re.search(_FILES_SAID, text):
        return "open_files"
    return None


# --- what host schedulers are given -------------------------------------------------------


def systemd_lines(limits: Limits) -> list[str]:
    """``[Service]`` lines for ``limits``: ``MemoryMax=``, ``CPUQuota=``, ``Nice=``, ``LimitNOFILE=``.

    CPU seconds are left to envfence, which gives them to the job's own process
    (``LimitCPU=`` would also count envfence's own time and kill it, not the job).
    """
    lines = []
    if limits.memory is not None:
        lines.append(f"MemoryMax={limits.memory}")
    if limits.cpus is not None:
        lines.append(f"CPUQuota={round(limits.cpus * 100)}%")
    if limits.nice is not None:
        lines.append(f"Nice={limits.nice}")
    if limits.open_files is not None:
        lines.append(f"LimitNOFILE={limits.open_files}")
    return lines


def kubernetes_resources(limits: Limits) -> dict[str, Any]:
    """A container's ``resources`` for ``limits``: memory and CPU as limits and equal requests (empty when neither is set)."""
    quantities: dict[str, str] = {}
    if limits.memory is not None:
        quantities["memory"] = str(limits.memory)
    if limits.cpus is not None:
        quantities["cpu"] = f"{round(limits.cpus * 1000)}m"
    return {"limits": quantities, "requests": dict(quantities)} if quantities else {}
