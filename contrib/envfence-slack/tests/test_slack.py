"""envfence-slack: failures (and optionally successes) reach the webhook, redacted; posting never fails a run."""

from __future__ import annotations

import datetime as dt
import json

from envfence import hookimpl
from envfence.models import Automation, Failure, RunOutcome, RunRequest

AIRTABLE_CANARY = "patCANARYslack001.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def _failure(message: str) -> Failure:
    return Failure(error_id="E1234abcd", classification="credential", message=message, automation="sync-customers")


def _outcome(status: str) -> RunOutcome:
    now = dt.datetime.now(dt.timezone.utc)
    return RunOutcome("run-1", "sync-customers", "development", status, 0, now, now)


def _project(envfence_project, url: str, settings: str = ""):
    envfence_project.write(".env", f"DEV_SLACK_WEBHOOK_URL={url}\nDEV_AIRTABLE_API_KEY={AIRTABLE_CANARY}\n")
    envfence_project.settings(settings)
    return envfence_project


def test_a_failure_is_posted_with_secrets_redacted(envfence_project, webhook):
    session = _project(envfence_project, webhook.url).session()
    errors = session.plugins.on_error(session=session, failure=_failure(f"token {AIRTABLE_CANARY} rejected")).errors
    assert errors == ()
    [post] = webhook.posts
    assert post["path"] == "/services/T0001/B0001/hooksecretCANARY42"
    assert post["type"] == "application/json"
    text = post["body"]["text"]
    assert "*sync-customers* failed in *development* on `unclassified-host`" in text
    assert "credential error E1234abcd" in text
    assert AIRTABLE_CANARY not in text and "hooksecretCANARY42" not in text


def test_the_webhook_url_is_a_masked_secret(envfence_project, webhook):
    project = _project(envfence_project, webhook.url)
    result = project.run("--json", "config", "show")
    assert result.exit_code == 0, result.output
    entry = next(e for e in json.loads(result.stdout)["entries"] if e["key"] == "DEV_SLACK_WEBHOOK_URL")
    assert entry["secret"] is True
    assert "hooksecretCANARY42" not in result.output


def test_a_rejected_post_is_a_warning_not_an_error(envfence_project, webhook, capsys, envfence_audit_events):
    audit_events = envfence_audit_events
    webhook.status = 500
    session = _project(envfence_project, webhook.url).session()
    errors = session.plugins.on_error(session=session, failure=_failure("boom")).errors
    assert errors == ()
    err = capsys.readouterr().err
    assert "envfence-slack: warning: Slack answered HTTP 500" in err
    assert "the run's result is unchanged (check DEV_SLACK_WEBHOOK_URL)" in err
    assert "hooksecretCANARY42" not in err
    failed = [e for e in audit_events if e.event == "notification.failed"]
    assert failed[0].data["problem"] == "Slack answered HTTP 500"
    assert "hooksecretCANARY42" not in repr(audit_events)


def test_an_unreachable_webhook_is_a_warning(envfence_project, webhook, capsys):
    url = webhook.url
    webhook.close()  # nothing listens on that port any more
    session = _project(envfence_project, url, "[slack]\ntimeout = 2\n").session()
    errors = session.plugins.on_error(session=session, failure=_failure("boom")).errors
    assert errors == ()
    assert "envfence-slack: warning: could not reach Slack" in capsys.readouterr().err


def test_success_is_posted_only_when_notify_is_all(envfence_project, webhook):
    request = RunRequest(Automation("sync-customers"))
    session = _project(envfence_project, webhook.url).session()
    session.plugins.on_run_finish(session=session, request=request, outcome=_outcome("succeeded"))
    assert webhook.posts == []

    session = _project(envfence_project, webhook.url, '[slack]\nnotify = "all"\n').session()
    session.plugins.on_run_finish(session=session, request=request, outcome=_outcome("succeeded"))
    session.plugins.on_run_finish(session=session, request=request, outcome=_outcome("failed"))
    [post] = webhook.posts
    assert post["body"]["text"].startswith(":white_check_mark: *sync-customers* succeeded in *development*")


def test_without_a_webhook_nothing_is_posted_or_printed(envfence_project, webhook, capsys):
    session = envfence_project.session()
    session.plugins.on_error(session=session, failure=_failure("boom"))
    assert webhook.posts == [] and capsys.readouterr().err == ""


def test_each_environment_posts_to_its_own_webhook(envfence_project, webhook):
    envfence_project.write(".env", f"PROD_SLACK_WEBHOOK_URL={webhook.url}\n")
    session = envfence_project.session()  # development: the production URL is not read
    session.plugins.on_error(session=session, failure=_failure("boom"))
    assert webhook.posts == []
    session = envfence_project.session(env="production")
    session.plugins.on_error(session=session, failure=_failure("boom"))
    assert "failed in *production*" in webhook.posts[0]["body"]["text"]


def test_bad_settings_are_findings_naming_the_key(envfence_project):
    envfence_project.write(".env", "DEV_SLACK_WEBHOOK_URL=hooks.slack.com/services/x\n")
    envfence_project.settings('[slack]\nnotify = "sometimes"\ntimeout = 0\n')
    findings = {(f.code, f.key) for f in envfence_project.session().report.findings}
    assert ("SETTINGS_INVALID", "slack.notify") in findings
    assert ("SETTINGS_INVALID", "slack.timeout") in findings
    assert ("SLACK_WEBHOOK_URL_FORMAT", "DEV_SLACK_WEBHOOK_URL") in findings


class Jobs:
    """Two automations for `envfence run`: one fails with a secret in its message."""

    @hookimpl
    def register_automations(self, register):
        register(Automation("sync-customers", "fails", function=self.fail))
        register(Automation("nightly", "succeeds", function=lambda ctx: None))

    @staticmethod
    def fail(ctx):
        raise RuntimeError(f"Airtable refused token {AIRTABLE_CANARY}")


def test_a_failed_run_is_posted_and_keeps_its_exit_code(envfence_project, envfence_plugin, webhook):
    envfence_plugin(Jobs(), "jobs")
    project = _project(envfence_project, webhook.url)
    result = project.run("run", "sync-customers")
    assert result.exit_code == 1
    [post] = webhook.posts
    text = post["body"]["text"]
    assert "*sync-customers* failed in *development*" in text and "Airtable refused token" in text
    assert AIRTABLE_CANARY not in text and AIRTABLE_CANARY not in result.output


def test_a_slack_outage_never_fails_a_run(envfence_project, envfence_plugin, webhook):
    envfence_plugin(Jobs(), "jobs")
    webhook.status = 503
    project = _project(envfence_project, webhook.url, '[slack]\nnotify = "all"\n')
    result = project.run("run", "nightly")
    assert result.exit_code == 0, result.output
    assert "envfence-slack: warning: Slack answered HTTP 503" in result.stderr
    assert "hooksecretCANARY42" not in result.output
    assert project.run("run", "sync-customers").exit_code == 1  # its own failure, not Slack's


#: An automation whose every run crosses its memory threshold, escalated to Slack.
ALERTING = """
[automations.sync-customers]
run = "jobs:ok"
[thresholds.sync-customers]
max_memory = "1KB"
[alerts.escalation]
development = ["slack"]
"""


def test_hook_alert_slack_posts_one_alert_per_incident_then_its_recovery(envfence_project, webhook):
    project = _project(envfence_project, webhook.url, ALERTING)
    project.write("jobs.py", "def ok(ctx):\n    pass\n")
    assert project.run("run", "sync-customers").exit_code == 0
    [post] = webhook.posts
    text = post["body"]["text"]
    assert "*sync-customers* in *development*: max_memory firing (warning), run run-" in text
    assert "hooksecretCANARY42" not in text
    assert project.run("run", "sync-customers").exit_code == 0
    assert len(webhook.posts) == 1  # the same incident: no second alert
    project.settings(ALERTING.replace('"1KB"', '"64GB"'))
    assert project.run("run", "sync-customers").exit_code == 0
    assert len(webhook.posts) == 2 and "max_memory recovered" in webhook.posts[1]["body"]["text"]


def test_hook_alert_slack_refusal_keeps_the_alert_for_the_next_try(envfence_project, webhook):
    import json as _json

    project = _project(envfence_project, webhook.url, ALERTING)
    project.write("jobs.py", "def ok(ctx):\n    pass\n")
    webhook.status = 500
    ran = project.run("run", "sync-customers")
    assert ran.exit_code == 0  # an alert that cannot be delivered never changes the run's result
    assert "kept and retried" in ran.stderr
    shown = _json.loads(project.run("alerts", "show", "--json").stdout)
    assert [p["channels"] for p in shown["pending"]] == [["slack"]]
    webhook.status = 200
    retried = project.run("alerts", "retry")
    assert retried.exit_code == 0 and "1 delivered, 0 still kept" in retried.stdout
    assert "max_memory firing" in webhook.posts[-1]["body"]["text"]
