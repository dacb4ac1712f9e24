"""Mistakes an embedding program can make: `mypy --strict` reports each line marked ``# wrong``."""

from __future__ import annotations

import envfence
from envfence.models import RunRequest
from envfence.runner import RunContext, Runner


def job(ctx: RunContext) -> str:
    return ctx.credential("AIRTABLE_API_KEY") + "-suffix"  # wrong: may be None or a Secret


def main() -> None:
    envfence.open_session(env=1)  # wrong: an environment is named by text
    envfence.open_session(envirn={})  # wrong: no such argument
    session = envfence.open_session()
    session.credential("AIRTABLE_API_KEY").reveal()  # wrong: may be None
    session.config["AIRTABLE_BASE_ID"].startswith("app")  # wrong: a Secret has no startswith
    Runner(session).run("import-jobs")  # wrong: a RunRequest, not a name
    RunRequest(session.automations["import-jobs"], force="yes")  # wrong: force is a bool
    count: int = session.report.ok + session.environment.name  # wrong: bool + str
    envfence.session(hostnme="web-prod-01")  # wrong: no such argument
    print(count)
