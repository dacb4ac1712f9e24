"""The store's URL and password never reach an output, in any form a driver or a parser may give them."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest

# A password holding '%': libpq cannot read "%ar" as an escape and quotes the whole token in its message.
PASSWORD = "Can%ary-7f3e%41x-d9b2"
JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


@pytest.mark.parametrize("fallback", ["refuse", "local"])
def test_a_password_holding_a_percent_sign_is_masked_in_every_output(make_project, run_cli, fallback):
    from envfence_builtins.store.postgres_cluster import free_port

    url = f"postgresql://envfence_app:{PASSWORD}@127.0.0.1:{free_port()}/envfence"
    project = make_project({"jobs.py": JOBS, ".env": f"DEV_STORE_URL={url}\n"},
                           settings=f'[automations.ok]\nrun = "jobs:ok"\n\n[store]\nfallback = "{fallback}"\nconnect_timeout = 1\n')
    outputs = []
    for args in (("store", "check"), ("--json", "store", "check"), ("status",), ("--json", "status"), ("--json", "run", "ok"),
                 ("run", "ok"), ("-v", "audit", "verify")):
        result = run_cli(*args, cwd=project)
        assert result.exit_code in (0, 1, 4), (args, result.output)
        outputs.append(result.output)
    text = "\n".join(outputs)
    assert "postgresql://envfence_app@127.0.0.1" in text  # the store is named, without its password
    for form in {PASSWORD, unquote(PASSWORD), quote(PASSWORD, safe=""), url}:
        assert form not in text, form
    for path in (project / "var").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in {PASSWORD, unquote(PASSWORD), quote(PASSWORD, safe="")}:
                assert form.encode() not in data, (path, form)
