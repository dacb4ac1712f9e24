"""defaults < .env < .env.<env> < .env.local < .env.<env>.local < process environment < --set."""

from __future__ import annotations

import itertools
import json

import pytest

import envfence

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


def test_a_file_with_references_is_expanded_in_each_environment_s_own_context(make_project):
    root = make_project({
        ".env": "# base\n",
        ".env.production": "HOST=prod.example\n",
        ".env.development": "HOST=dev.example\n",
        ".env.local": "URL=https://${HOST}/api\n",
    })
    assert envfence.open_session(root, env="production", environ={}).config["URL"] == "https://prod.example/api"
    assert envfence.open_session(root, env="development", environ={}).config["URL"] == "https://dev.example/api"
