"""A function automation run in a child Python process (``isolation = "process"``).

The parent (:func:`envfence.runs.execute.run_in_child`) starts
``python -m envfence.runs.child FD`` as it starts a command automation: in its
own process group, under the run's lock, with this environment's variables
only (:func:`envfence.runs.execute.subprocess_environment`: its credentials
under their plain names, nothing of another environment), its output streamed
back through the redactor. The child opens the project's session for that
environment, holding every audit event in memory, keeps of its configuration
only what the environment may read, imports the function by reference and
calls it with a :class:`~envfence.runs.context.RunContext`.

When the function returns, the child writes one JSON document to file
descriptor ``FD``: the exit code its result stands for, the exception's class
(module and name) and redacted message and traceback when it raised, what
the job reported (``ctx.metric``, ``ctx.step``, retries) and the audit events
it caused (``credential.accessed`` ...), which the parent records in its own trail. Lock, history and audit stay the parent's.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

#: Variables the parent sets for the child, beside the environment's own.
AUTOMATION_VARIABLE = "ENVFENCE_AUTOMATION"
TARGET_VARIABLE = "ENVFENCE_FUNCTION"
FORCED_VARIABLE = "ENVFENCE_FORCED"
REASON_VARIABLE = "ENVFENCE_REASON"
#: The runtime overrides (``--set``) of the parent's session, as JSON.
OVERRIDES_VARIABLE = "ENVFENCE_CHILD_OVERRIDES"
#: The webhook event's fields but its body (which is in ``ENVFENCE_EVENT_FILE``), as JSON.
EVENT_VARIABLE = "ENVFENCE_CHILD_EVENT"
#: "1" when the parent installed no log sink of its own (a library's run): the child adds none either.
EMBEDDED_VARIABLE = "ENVFENCE_CHILD_EMBEDDED"


class ChildEvent:
    """``ctx.event`` in the child: the parent's event's fields, its body read from the event file."""

    def __init__(self, fields: dict[str, Any], body: bytes) -> None:
        self.__dict__.update(fields)
        self.body = body

    @property
    def payload(self) -> Any:
        """The JSON body, parsed."""
        return json.loads(self.body)


def event_fields(event: Any) -> dict[str, str]:
    """The variable that carries ``event``'s fields (not its body) to the child; none without an event."""
    if event is None:
        return {}
    from .. import slotted

    fields = slotted.asdict(event) if slotted.has(type(event)) else dict(vars(event))
    fields.pop("body", None)
    return {EVENT_VARIABLE: json.dumps({k: v for k, v in fields.items()}, default=str)}


def inherited(session: Any) -> dict[str, str]:
    """What the parent's session got from its process and its command line, that the child's must get too.

    Only keys the environment may read: ``DEV_X`` exported in the shell under
    its own name, and the ``--set`` overrides as :data:`OVERRIDES_VARIABLE`.
    """
    from ..models import reveal

    own = session.config.own_view()
    given = {k: str(reveal(e.value)) for k, e in own.entries.items() if e.source == "process environment"}
    overrides = {k: str(reveal(e.value)) for k, e in own.entries.items() if e.source == "runtime override"}
    disabled = sorted(name for name, record in session.plugins.records.items() if record.status == "disabled")
    return {
        **given, **({OVERRIDES_VARIABLE: json.dumps(overrides)} if overrides else {}),
        # The child loads the plugins the parent loaded: one disabled here is disabled there.
        **({"ENVFENCE_DISABLE_PLUGINS": ",".join(disabled)} if disabled else {}),
        EMBEDDED_VARIABLE: "1" if session.log_file is None else "0",
    }


def import_target(reference: str) -> Any:
    """The function ``module:qualified.name`` names, imported from the project root first."""
    import importlib

    module_name, _, qualname = reference.partition(":")
    root = os.environ.get("ENVFENCE_ROOT", "")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _session() -> Any:
    """The environment's session, holding its audit events, its configuration cut to what the environment may read."""
    from ..pipeline import Session

    overrides = json.loads(os.environ.pop(OVERRIDES_VARIABLE, "{}"))
    session = Session.open(root=os.environ["ENVFENCE_ROOT"], env=os.environ["ENVFENCE_ENVIRONMENT"], overrides=overrides, dry_run=True)
    session.config = session.config.own_view()
    session.audit_log.release()  # the opening's own events are the parent's to tell
    return session


def _context(session: Any, run_id: str) -> Any:
    from ..automations import find
    from .context import RunContext

    automation = find(session, os.environ[AUTOMATION_VARIABLE])
    event = None
    if os.environ.get("ENVFENCE_EVENT_FILE"):
        with open(os.environ["ENVFENCE_EVENT_FILE"], "rb") as handle:
            event = ChildEvent(json.loads(os.environ.pop(EVENT_VARIABLE, "{}")), handle.read())
    return RunContext(
        session=session, automation=automation, run_id=run_id, dry_run=False,
        forced=os.environ.get(FORCED_VARIABLE) == "1", reason=os.environ.get(REASON_VARIABLE) or None,
        paths=session.paths, logger=_logger(session, run_id, automation.name), echo=_say, event=event,
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _logger(session: Any, run_id: str, name: str) -> Any:
    """The run's logger, with the environment's own sinks (its log file; its console, which the parent streams):
    a production console shows no traceback, here as in-process."""
    session.prepared = True  # the parent prepared the tree: the logging strategy may open its file
    session.configure_logging(embedded=os.environ.pop(EMBEDDED_VARIABLE, "0") == "1")
    return session.logger(run_id=run_id, automation=name)


def run(run_id: str) -> dict[str, Any]:
    """Call the function; return what the parent needs: code, exception, audit events."""
    from .execute import exit_code

    session = _session()
    ctx = _context(session, run_id)
    function = import_target(os.environ[TARGET_VARIABLE])
    result: dict[str, Any] = {"code": 0, "exception": None}
    try:
        result["code"] = exit_code(function(ctx))
    except SystemExit as exc:
        result["code"] = exit_code(exc.code)
    except BaseException as exc:  # the job's own failure, whatever it is, goes back to the runner
        redact = session.redactor()
        # KeyError("x") shows as "'x'": its own argument is the message rebuilt in the parent.
        message = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
        result["code"] = 1
        result["exception"] = {
            "module": type(exc).__module__, "name": type(exc).__qualname__, "message": redact(message),
            "traceback": redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
        }
    sys.stdout.flush()
    sys.stderr.flush()
    measures = ctx.measures
    result["measures"] = {"metrics": measures.metrics, "steps": measures.steps, "retries": measures.retries}
    result["audit"] = [{"event": e.event, "data": dict(e.data)} for e in session.audit_log.release()]
    return result


def main(argv: list[str]) -> int:
    """``python -m envfence.runs.child FD``: run the job, write the result to ``FD``."""
    fd = int(argv[1])
    try:
        result = run(os.environ.get("ENVFENCE_RUN_ID", ""))
    except BaseException as exc:  # the child could not even start the job: say so, never with a value
        result = {"code": 1, "exception": {"module": "envfence.errors", "name": "ConfigurationError",
                                           "message": f"the child process could not start the job: {type(exc).__name__}",
                                           "traceback": ""}, "audit": []}
        if hasattr(exc, "message"):
            result["exception"]["message"] += f": {exc.message}"
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(result, out, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
