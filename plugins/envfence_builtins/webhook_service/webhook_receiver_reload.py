"""Live reload for ``envfence serve`` and ``envfence worker``: watch the configuration, validate, swap or refuse.

A running receiver or worker watches the files its configuration comes
from (``envfence.toml`` and the environment's ``.env`` layers, through
symlinks to where they point) with watchfiles, and reloads on SIGHUP too.
A reload opens the session again and validates it as ``envfence check``
does; only then is it swapped in, whole (:class:`~.webhook_receiver_app.Live`):
secrets, routes, automations, and the settings the runs read (thresholds,
alerts). A change that does not validate is refused: the last good
configuration keeps serving, the refusal is audited
(``config.reload_refused``, which the alerts plugin sends to the
environment's channels) and logged. An accepted one is audited as
``config.reloaded`` with the files that changed and the secrets rotated
(names only). A rotated-out secret is still accepted for its route's
``secret_overlap``.

What a running process cannot take without a restart is refused with that
reason: another environment, another tree, another address or port.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from envfence import slotted
from envfence.errors import EnvfenceError

#: Milliseconds watchfiles groups a burst of changes over (an editor's save is several), and waits for quiet.
DEBOUNCE_MS = 1000
STEP_MS = 100
#: Settings a running receiver cannot change without a restart (it is bound to them).
BOUND_SETTINGS = ("WEBHOOK_HOST", "WEBHOOK_PORT")


@slotted.frozen
class Parts:
    """How the receiver reads a session, handed in (this module imports no other of the plugin's)."""

    providers: Callable[[Any], dict]
    routes: Callable[[Any], list]
    secrets: Callable[[Any, list], dict[str, str]] | None


class Refusal(Exception):
    """A configuration change that is not swapped in; the message says why (no secret value)."""


def watched_files(session) -> list[Path]:
    """The files the session's configuration comes from: the settings file and every file layer (present or not)."""
    found = [Path(session.settings.path)] if getattr(session.settings, "path", None) else []
    found += [Path(layer.path) for layer in session.config.layers if layer.path is not None]
    return list(dict.fromkeys(found))


def watched_directories(files: list[Path]) -> list[Path]:
    """The directories to watch for ``files``: each one's own, and those of each symlink on the way to its target.

    Watching a directory (not the file) sees an editor's save by rename and a
    symlink swapped to another target (a Kubernetes ConfigMap's ``..data``).
    """
    found: list[Path] = []
    for path in files:
        found.append(path.parent)
        hop, seen = path, 0
        while hop.is_symlink() and seen < 40:
            hop = hop.parent / os.readlink(hop)
            found.append(hop.parent)
            seen += 1
        found.append(Path(os.path.realpath(path)).parent)
    return [d for d in dict.fromkeys(p.resolve() if p.exists() else p for p in found) if d.is_dir()]


def fingerprint(files: list[Path]) -> dict[str, str]:
    """Each file's content digest (through symlinks); ``absent`` or ``unreadable`` where it cannot be read."""
    found = {}
    for path in files:
        try:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            found[str(path)] = "absent"
        except OSError:
            found[str(path)] = "unreadable"
    return found


class Reloader:
    """Keeps a running process's configuration current: one thread reloads, one watches the files.

    :param live: the configuration the process started with (a :class:`~.webhook_receiver_app.Live`).
    :param apply: called with each accepted ``Live`` (swaps it into the receiver and the workers).
    :param what: the command (``serve``, ``worker``), for the trail and the log.
    :param parts: how the receiver reads a session: ``providers`` (by name), ``routes`` (of the settings),
        ``secrets`` (the routes' secrets; None for a worker, which does not need them).
    :param echo: where the process's own status lines go.
    """

    def __init__(self, live: Any, apply: Callable[[Any], None], what: str, parts: "Parts", *,
                 echo: Callable[[str], None]) -> None:
        self.live = live
        self.apply = apply
        self.what = what
        self.parts = parts
        self.echo = echo
        self.files = watched_files(live.session)
        #: The files' digests as last read, so a change seen twice (or a save that changed nothing) is judged once.
        self.seen = fingerprint(self.files)
        self._loaded = dict(self.seen)
        self._why: list[str] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rewatch = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: The directories the watcher watches now.
        self._watching: list[Path] = []

    def request(self, why: str) -> None:
        """Ask for a reload (safe from a signal handler: it only sets an event)."""
        self._why.append(why)
        self._wake.set()

    def start(self, watch: bool) -> None:
        """Start reloading on request, and (``watch``) on a change to a configuration file."""
        targets = [self._serve_requests] + ([self._watch] if watch else [])
        for target in targets:
            thread = threading.Thread(target=target, name=f"reload-{target.__name__.strip('_')}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop watching and reloading (a reload under way finishes first)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _serve_requests(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            why, self._why = self._why, []
            forced = "SIGHUP" in why
            try:
                self.reload("SIGHUP" if forced else "files changed", forced=forced)
            except Exception as exc:  # a reload must never stop the process that serves
                self.live.session.logger(component="reload").opt(exception=exc).error(
                    f"{self.what}: the configuration reload failed: {type(exc).__name__}: {exc}")

    def _watch(self) -> None:
        import watchfiles

        stop = _Either(self._stop, self._rewatch)
        while not self._stop.is_set():
            self._rewatch.clear()
            directories = self._watching = watched_directories(self.files)
            try:
                for _changes in watchfiles.watch(*directories, watch_filter=None, recursive=False, debounce=DEBOUNCE_MS,
                                                  step=STEP_MS, stop_event=stop, raise_interrupt=False):
                    if fingerprint(self.files) != self.seen:
                        self.request("files changed")
                    if watched_directories(self.files) != directories:
                        break  # a symlink now leads elsewhere: watch where it leads
            except Exception as exc:  # a watched directory went away (a ConfigMap's old data): watch what is there now
                self.live.session.logger(component="reload").warning(f"{self.what}: watching the configuration again ({exc})")
                if fingerprint(self.files) != self.seen:
                    self.request("files changed")
                self._stop.wait(1.0)

    def reload(self, trigger: str, forced: bool = False) -> bool:
        """Validate the configuration on disk and swap it in; returns True when it was (False: refused or unchanged)."""
        with self._lock:
            now = fingerprint(self.files)
            if not forced and now == self.seen:
                return False
            self.seen = now
            current = self.live
            changed = sorted(path for path in now if now[path] != self._loaded.get(path))
            try:
                candidate = self._candidate(current)
            except Refusal as refusal:
                self._refused(current, trigger, changed, str(refusal))
                return False
            self._swap(current, candidate, trigger, changed)
            self._loaded = now
            self.files = watched_files(candidate.session)
            if watched_directories(self.files) != self._watching:
                self._rewatch.set()  # another settings file, or a symlink leading elsewhere: watch there
            return True

    def _candidate(self, current: Any) -> Any:
        """The configuration on disk as a :class:`Live`, validated; :class:`Refusal` says why it cannot be used."""
        from envfence.runner import find_automation

        old, new = current.session, None
        try:
            new = old.reload()
            env = new.environment.name
            if env != old.environment.name:
                raise Refusal(f"it names environment {env}, not {old.environment.name}: restart the process to change it")
            new_errors = [f for f in new.report.findings if f.severity == "error"
                          and (f.code, f.key) not in {(e.code, e.key) for e in old.report.findings if e.severity == "error"}]
            if new_errors:
                raise Refusal("; ".join(f"{f.code}: {f.message}" for f in new_errors[:3]))
            declared = self.parts.routes(new.settings)
            if not declared:
                raise Refusal(f"no webhook routes are left in {new.settings.source}")
            providers = self.parts.providers(new)
            for route in declared:
                if route.provider not in providers:
                    raise Refusal(f"route {route.path}: no webhook provider named {route.provider!r}")
            automations = {r.automation: find_automation(new, r.automation) for r in declared}
            self._bound(old, new)
            secrets = self.parts.secrets(new, declared) if self.parts.secrets else {}
            new.prepare()
        except Exception as exc:  # a plugin that raises while loading is refused like any broken configuration
            if isinstance(exc, Refusal):
                reason = str(exc)
            elif isinstance(exc, EnvfenceError):
                reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            else:
                reason = f"{type(exc).__name__}: {exc}"
            # Masked with the new configuration's secrets too: the reason may quote a value only it holds.
            raise Refusal(new.redactor()(reason) if new is not None else reason) from None
        paths = {r.path: r for r in declared}
        return slotted.evolve(current, session=new, routes=paths, secrets=secrets, previous=_overlaps(current, paths, secrets),
                            automations=automations)

    def _bound(self, old, new) -> None:
        """Refuse what a running process cannot take: another tree, another address or port."""
        if (old.paths and old.paths.base) != (new.paths and new.paths.base):
            raise Refusal(f"the environment's tree moves to {new.paths.base if new.paths else 'nowhere'}: restart to move it")
        if self.what != "serve":
            return
        was, now = old.config.environment_view(), new.config.environment_view()
        for key in BOUND_SETTINGS:
            if str(was.get(key) or "") != str(now.get(key) or ""):
                raise Refusal(f"{key} changed from {was.get(key) or 'unset'} to {now.get(key) or 'unset'}: "
                              "a running receiver keeps its address; restart it to move")

    def _swap(self, current: Any, candidate: Any, trigger: str, changed: list[str]) -> None:
        session = candidate.session
        session.configure_logging(embedded=False)  # the new secrets are redacted from here on
        self.apply(candidate)
        self.live = candidate
        rotated = sorted(p for p in candidate.secrets if p in current.secrets and candidate.secrets[p] != current.secrets[p])
        added, removed = sorted(set(candidate.routes) - set(current.routes)), sorted(set(current.routes) - set(candidate.routes))
        session.audit("config.reloaded", process=self.what, trigger=trigger, files=changed, routes_added=added,
                      routes_removed=removed, secrets_rotated=rotated,
                      overlap_seconds={p: candidate.routes[p].secret_overlap for p in rotated}, pid=os.getpid())
        line = (f"{self.what}: configuration reloaded ({trigger}; " + (", ".join(Path(f).name for f in changed) or "no file changed")
                + (f"; secrets rotated on {', '.join(rotated)}" if rotated else "") + ")")
        session.logger(component="reload").info(line)
        self.echo(f"envfence: {line}")

    def _refused(self, current: Any, trigger: str, changed: list[str], reason: str) -> None:
        session = current.session
        reason = session.redactor()(reason)
        session.audit("config.reload_refused", process=self.what, trigger=trigger, files=changed, reason=reason, pid=os.getpid())
        line = f"{self.what}: configuration change refused, the last good configuration stays in use: {reason}"
        session.logger(component="reload").error(line)
        self.echo(f"envfence: {line}")


def _overlaps(current: Any, routes_now: dict, secrets: dict[str, str]) -> dict[str, tuple[tuple[str, float], ...]]:
    """The rotated-out secrets each route still accepts: the one just replaced, and earlier ones still in their overlap."""
    now = time.monotonic()
    found = {}
    for path, route in routes_now.items():
        kept = [(s, until) for s, until in current.previous.get(path, ()) if until > now and s != secrets.get(path)]
        old = current.secrets.get(path)
        if old is not None and old != secrets.get(path) and route.secret_overlap > 0:
            kept.insert(0, (old, now + route.secret_overlap))
        if kept:
            found[path] = tuple(kept)
    return found


class _Either:
    """Set when either of two events is (watchfiles' ``stop_event`` takes one)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)
