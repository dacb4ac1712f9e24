"""A process that opens sessions again (an embedding tool, ``session(reload_if_changed=True)``) sees every change.

Opening reuses what it parsed from bytes it has seen (``.env`` files,
envfence.toml), the host's class for those settings and the decoded process
environment; each is checked against what is read now, never against time
stamps, so an edit within the same second, of the same size, is seen.
"""

from __future__ import annotations

import os

import pytest

import envfence
from envfence.errors import UsageError


def count_parses(monkeypatch) -> list[str]:
    """Record each .env file python-dotenv's parser is run over."""
    import dotenv.parser

    seen: list[str] = []
    real = dotenv.parser.parse_stream

    def parse_stream(stream):
        seen.append(stream.getvalue().splitlines()[0])
        return real(stream)

    monkeypatch.setattr(dotenv.parser, "parse_stream", parse_stream)
    return seen


def test_a_session_parses_each_file_once_though_the_port_check_loads_every_environment(make_project, monkeypatch):
    root = make_project({".env": "# base\nWEBHOOK_PORT=8000\n", ".env.production": "# prod\nWEBHOOK_PORT=8001\n"})
    parses = count_parses(monkeypatch)
    session = envfence.open_session(root, env="development", environ={})
    assert session.config["WEBHOOK_PORT"] == "8000"
    # The port check read production's files too, and still saw the collision-free ports.
    assert "SERVICE_PORT_COLLISION" not in session.report.codes()
    assert sorted(parses) == ["# base", "# prod"]


def _rewrite_keeping_stat(path, text: str) -> None:
    """Write ``text`` (of the same size) into ``path`` in place, its modification time put back: only the bytes tell."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with open(path, "r+b") as handle:
        handle.write(text.encode())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_an_unchanged_file_is_not_parsed_again_and_an_edit_is_seen_whatever_its_time_stamps(make_project, monkeypatch):
    root = make_project({".env": "# base\nWEBHOOK_PORT=8000\nAPI_TOKEN=tok-aaaa\n"})
    parses = count_parses(monkeypatch)
    first = envfence.open_session(root, env="development", environ={})
    again = envfence.open_session(root, env="development", environ={})
    assert again.config["WEBHOOK_PORT"] == "8000" and parses == ["# base"]
    # Same size, same inode, same modification time (to the nanosecond): a cache keyed by the file's stat would miss it.
    _rewrite_keeping_stat(root / ".env", "# BASE\nWEBHOOK_PORT=9000\nAPI_TOKEN=tok-bbbb\n")
    edited = envfence.open_session(root, env="development", environ={})
    assert edited.config["WEBHOOK_PORT"] == "9000" and parses == ["# base", "# BASE"]
    assert edited.config["API_TOKEN"].reveal() == "tok-bbbb" and "tok-bbbb" in edited.secret_values()
    assert first.config["WEBHOOK_PORT"] == "8000" and first.changed_layers() == [".env"]
    # The layer's digest is the edited file's: the trail of the new session names the bytes it read.
    before, after = ({layer.source: layer.digest for layer in s.config.layers} for s in (first, edited))
    assert after[".env"] != before[".env"]


def test_an_edited_settings_file_is_seen_by_the_next_session_whatever_its_time_stamps(make_project):
    root = make_project({".env": "PROD_API_TOKEN=tok-1\n"}, settings='[environments.staging]\nbased_on = "production"\n')
    assert envfence.open_session(root, env="staging", environ={}).environment.name == "staging"
    _rewrite_keeping_stat(root / "envfence.toml", '[environments.stoging]\nbased_on = "production"\n')
    with pytest.raises(UsageError, match="unknown environment 'staging'"):
        envfence.open_session(root, env="staging", environ={})
    assert envfence.open_session(root, env="stoging", environ={}).environment.name == "stoging"


def test_an_edited_enrollment_reclassifies_the_host_in_the_next_session(make_project):
    root = make_project(settings='[hostname.production]\nhosts = ["build-7"] \n')  # as long as the edit below
    environ = {"ENVFENCE_HOSTNAME": "build-7"}
    first = envfence.open_session(root, environ=environ)
    assert first.host.enrolled and first.host.environment == "production"
    assert first.environment.name == "production" and first.environment.method == "hostname"
    _rewrite_keeping_stat(root / "envfence.toml", '[hostname.development]\nhosts = ["build-7"]\n')
    second = envfence.open_session(root, environ=environ)
    assert second.host.environment == "development" and second.environment.name == "development"
    assert first.host.environment == "production"  # the first session keeps what it saw


def test_a_variable_set_between_two_sessions_is_seen_by_the_second(make_project, monkeypatch):
    root = make_project({".env": "COLOUR=blue\n"})
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("COLOUR", raising=False)
    first = envfence.open_session(root)
    assert first.environment.name == "development" and first.config["COLOUR"] == "blue"
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COLOUR", "grün")
    second = envfence.open_session(root)
    assert second.environment.name == "production" and second.config["COLOUR"] == "grün"
    assert second.environ["COLOUR"] == "grün" and "COLOUR" not in first.environ
    monkeypatch.delenv("COLOUR")
    second.environ["ONLY_HERE"] = "1"  # a session's environment is its own copy
    third = envfence.open_session(root)
    assert "COLOUR" not in third.environ and "ONLY_HERE" not in third.environ and third.config["COLOUR"] == "blue"


def test_an_edited_plugin_table_is_judged_again_by_the_next_session(make_project):
    root = make_project(settings='[directories]\nclean = ["archive"]\n')
    assert "DIR_CLEAN_PROTECTED" not in envfence.open_session(root, environ={}).report.codes()
    # backups holds backups/config, which is never cleaned: the edit must be refused, though nothing but the bytes changed.
    _rewrite_keeping_stat(root / "envfence.toml", '[directories]\nclean = ["backups"]\n')
    [finding] = [f for f in envfence.open_session(root, environ={}).report.findings if f.code == "DIR_CLEAN_PROTECTED"]
    assert "'backups' would clean backups/config" in finding.message


class Watches:
    """A plugin noting the hooks it is asked: secret shapes (for the redactor) and the environment's tree."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @envfence.hookimpl
    def secret_shapes(self):
        self.asked.append("secret_shapes")
        return []

    @envfence.hookimpl(tryfirst=True)
    def environment_paths(self, session):
        self.asked.append("environment_paths")
        return None  # the directories plugin answers


def test_a_plain_open_builds_no_redactor_and_no_tree_until_something_needs_them(make_project):
    from envfence.plugins import PluginManager

    canary = "canary-9f3b2a7c5e1d"
    root = make_project({".env": f"API_TOKEN={canary}\nCOLOUR=blue\n"})
    watches = Watches()
    pm = PluginManager.from_entry_points()
    pm.register(watches, "watches-for-test")
    session = envfence.open_session(root, environ={}, plugins=pm)
    assert session.config["COLOUR"] == "blue" and watches.asked == []
    # The opening's own events are held, their data masked when first read.
    session.audit("test.note", said=f"the token is {canary}")
    [note] = [e for e in session.audit_log.held if e.event == "test.note"]
    assert watches.asked == []
    assert canary not in repr(dict(note.data)) and "the token is" in note.data["said"]
    assert watches.asked == ["secret_shapes"]
    session.report  # validation looks at the tree, and masks with the same redactor
    assert "environment_paths" in watches.asked and watches.asked.count("secret_shapes") == 1
