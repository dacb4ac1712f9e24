"""An embedding program as a tool author writes it: `mypy --strict` accepts it (tests/core/test_typed_api.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import envfence
from envfence.models import Finding, RunRequest
from envfence.runner import RunContext, Runner, find_automation


def import_jobs(ctx: RunContext) -> None:
    """A function automation: its context is typed too."""
    token = ctx.credential("AIRTABLE_API_KEY")
    if isinstance(token, envfence.Secret):
        with ctx.step("fetch"):
            fetched = ctx.retry(len, token.reveal(), idempotent=True)
        ctx.metric("records_synced", fetched, unit="records")
    ctx.say(f"{ctx.environment}: strict={ctx.profile.strict}, {len(ctx.config)} keys")


def blocking(findings: tuple[Finding, ...]) -> list[str]:
    return [f"{f.code} ({f.severity}): {f.message}" for f in findings if f.severity == "error"]


def main(root: Path) -> int:
    try:
        session = envfence.open_session(root, env="production", overrides={"A": "1"}, environ={}, hostname="web-prod-01")
    except envfence.EnvfenceError as exc:
        print(exc.message, exc.hint, file=sys.stderr)
        return exc.exit_code
    value = session.config["AIRTABLE_BASE_ID"]
    base_id: str = value.reveal() if isinstance(value, envfence.Secret) else value
    token = session.credential("AIRTABLE_API_KEY", by="my-tool")
    if token is not None:
        print(len(str(token)))
    entry = session.config.entry("AIRTABLE_BASE_ID")
    if entry is not None:
        print(entry.source, [layer for layer, _ in entry.overridden])
    print(session.environment.name, session.environment.method, session.host.describe(), base_id)
    print(blocking(tuple(session.report.findings)), session.report.ok)
    if session.paths is not None:
        print(session.paths)
    port = session.setting("WEBHOOK_PORT", 8080)
    print(port)
    automation = find_automation(session, "import-jobs")
    result = Runner(session).run(RunRequest(automation, force=True, reason="re-run after the outage"))
    if result.failure is not None:
        print(result.failure.error_id)
    same = envfence.session(root=root)
    print(same.environment.name, result.outcome.status)
    envfence.reset_session()
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
