"""``--json`` output written as it is produced: the same document, secrets masked, nothing held whole."""

from __future__ import annotations

import json

CANARY = "canary-json-Zq8\"\\x"


def test_config_show_json_is_the_indented_document_with_every_key_and_secrets_masked(make_project, run_cli):
    env = "".join(f"SETTING_{i:03d}=value {i}\n" for i in range(300))
    env += 'QUOTED="a \\"quoted\\" value with a \\\\ backslash"\nDEV_API_TOKEN="' + CANARY.replace("\\", "\\\\").replace('"', '\\"') + '"\n'
    root = make_project({".env": env, ".env.local": "SETTING_001=local\n"})
    result = run_cli("--json", "config", "show", cwd=root)
    assert result.exit_code == 0, result.output
    assert CANARY not in result.stdout and "canary-json" not in result.stdout
    data = json.loads(result.stdout)
    # Byte for byte what json.dumps(indent=2) makes of the same data: tools that diff the output see no change.
    assert result.stdout == json.dumps(data, indent=2) + "\n"
    assert data["values"]["DEV_API_TOKEN"] == "********"
    assert data["values"]["SETTING_001"] == "local" and data["values"]["QUOTED"] == 'a "quoted" value with a \\ backslash'
    assert [e["key"] for e in data["entries"]] == sorted(data["values"]) and len(data["entries"]) >= 302
    overridden = next(e for e in data["entries"] if e["key"] == "SETTING_001")["overridden"]
    assert overridden == [{"source": ".env", "value": "value 1"}]


def test_echo_json_writes_iterators_and_pairs_as_lists_and_objects(capsys):
    from envfence.cli.output import Pairs, dumps, echo_json
    from envfence.models import Secret

    data = {"a": iter([1, {"x": [2, "two\nlines"]}]), "b": Pairs((k, v) for k, v in [("s", Secret(CANARY)), ("n", None)]),
            "empty": iter([]), "none": Pairs(iter([]))}
    echo_json(data)
    out = capsys.readouterr().out
    assert CANARY not in out
    assert out == dumps({"a": [1, {"x": [2, "two\nlines"]}], "b": {"s": "********", "n": None}, "empty": [], "none": {}}) + "\n"


def test_a_bad_option_value_of_a_plugin_command_is_json_under_json(make_project, run_cli, envfence_plugin):
    import click

    import envfence

    class Commands:
        @envfence.hookimpl
        def register_commands(self, cli):
            @cli.group("frob")
            def frob():
                """A plugin's group."""

            @frob.command("twist")
            @click.option("--times", type=click.IntRange(1, 5), default=1)
            def twist(times):
                """A plugin's command."""

    envfence_plugin(Commands(), "frobber")
    root = make_project({}, settings="")
    for args in (("--json", "frob", "twist", "--times", "9"), ("frob", "twist", "--times", "x", "--json")):
        result = run_cli(*args, cwd=root)
        error = json.loads(result.stdout)
        assert result.exit_code == 2 and error["exit_code"] == 2 and "--times" in error["error"], result.output
        assert error["hint"] == "envfence frob twist --help"
