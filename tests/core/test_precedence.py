"""defaults < .env < .env.<env> < .env.local < .env.<env>.local < process environment < --set."""

from __future__ import annotations

import itertools
import json
import os

import pytest

import envfence
from envfence.errors import UsageError

FILES = [".env", ".env.production", ".env.local", ".env.production.local"]
ORDER = ["defaults", *FILES, "process environment", "runtime override"]


class Declares:
    """Declares COLOUR (so the process environment may set it), with or without a default."""

    def __init__(self, default):
        self.default = default

    @envfence.hookimpl
    def declare_settings(self):
        return [envfence.SettingSpec("COLOUR", default=self.default)]


def open_with(root, present):
    from envfence.plugins import PluginManager

    pm = PluginManager.from_entry_points()
    pm.register(Declares("from-defaults" if "defaults" in present else None), "declares-for-test")
    environ = {"ENVIRONMENT": "production"}
    if "process environment" in present:
        environ["COLOUR"] = "from-process environment"
    overrides = {"COLOUR": "from-runtime override"} if "runtime override" in present else None
    return envfence.open_session(root, overrides=overrides, environ=environ, plugins=pm)


# Every subset of the layers (2^7 = 128 cases): the highest present layer wins,
# and the lower ones are listed, in order, as overridden.
@pytest.mark.parametrize(
    "present",
    [combo for n in range(1, len(ORDER) + 1) for combo in itertools.combinations(ORDER, n)],
    ids=lambda combo: "+".join(c.replace(" ", "_") for c in combo),
)
def test_precedence_matrix(make_project, present):
    files = {f: f"COLOUR=from-{f}\n" for f in FILES if f in present}
    root = make_project(files)
    session = open_with(root, present)
    entry = session.config.entry("COLOUR")
    winner = present[-1]
    assert entry.value == f"from-{winner}"
    assert entry.source == winner
    assert [source for source, _ in entry.overridden] == list(present[:-1])


def test_environment_files_of_other_environments_are_not_read(make_project):
    root = make_project({".env": "A=base\n", ".env.development": "A=dev\nONLY_DEV=1\n"})
    session = envfence.open_session(root, env="production", environ={})
    assert session.config["A"] == "base"
    assert "ONLY_DEV" not in session.config


def test_process_environment_only_overrides_known_keys(make_project):
    root = make_project({".env": "A=file\n"})
    session = envfence.open_session(root, environ={"A": "process", "PATH": "/bin", "DEV_TOKEN": "t0k3n-value"})
    assert session.config["A"] == "process"
    assert "PATH" not in session.config
    # A prefixed credential is known by its prefix.
    assert session.config.entry("DEV_TOKEN").source == "process environment"


def test_explain_shows_the_layer_that_set_each_key_and_what_it_overrode(make_project, run_cli):
    root = make_project({".env": "A=one\nB=keep\n", ".env.development": "A=two\n", ".env.local": "A=three\n"})
    result = run_cli("--set", "A=four", "config", "show", "--explain", cwd=root)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "A  four" in out and "(runtime override)" in out
    for line in ("overrode .env.local: three", "overrode .env.development: two", "overrode .env: one"):
        assert line in out
    assert "B  keep" in out
    # Missing layers are listed as such.
    assert ".env.development.local  (missing)" in out


def test_json_explain_carries_provenance(make_project, run_cli):
    root = make_project({".env": "A=one\n", ".env.development": "A=two\n"})
    data = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)
    [entry] = [e for e in data["entries"] if e["key"] == "A"]
    assert entry["source"] == ".env.development"
    assert entry["overridden"] == [{"source": ".env", "value": "one"}]
    layers = {layer["source"]: layer["exists"] for layer in data["layers"]}
    assert layers[".env"] is True and layers[".env.local"] is False


def test_interpolation_uses_earlier_lines_and_lower_layers(make_project):
    root = make_project({".env": "HOST=db.local\nURL=postgres://${HOST}/app\n", ".env.development": "DSN=${URL}?debug=1\n"})
    config = envfence.open_session(root, environ={}).config
    assert config["URL"] == "postgres://db.local/app"
    assert config["DSN"] == "postgres://db.local/app?debug=1"


def test_set_needs_key_equals_value(make_project, run_cli):
    result = run_cli("--set", "NOPE", "config", "show", cwd=make_project())
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


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


def test_a_file_with_references_is_expanded_in_each_environment_s_own_context(make_project):
    root = make_project({
        ".env": "# base\n",
        ".env.production": "HOST=prod.example\n",
        ".env.development": "HOST=dev.example\n",
        ".env.local": "URL=https://${HOST}/api\n",
    })
    assert envfence.open_session(root, env="production", environ={}).config["URL"] == "https://prod.example/api"
    assert envfence.open_session(root, env="development", environ={}).config["URL"] == "https://dev.example/api"
