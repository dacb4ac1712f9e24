"""Settings tables declared once (``declare_tables``): loading, ``check``, ``config schema`` and the docs agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from envfence import hookimpl
from envfence.cli import cli
from envfence.settings_kinds import either, flag, text, toml, whole
from envfence.settings_tables import Table

jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]' brings jsonschema")


def _project(tmp_path: Path, body: str, name: str = "proj") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "envfence.toml").write_text(body, encoding="utf-8")
    return root


def _check(root: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["--root", str(root), *extra, "--json", "check"], env={"ENVIRONMENT": ""})


def _findings(result) -> list[dict[str, Any]]:
    return json.loads(result.stdout)["findings"] if result.exit_code in (0, 1) else []


def _validator(root: Path, *extra: str):
    printed = CliRunner().invoke(cli, ["--root", str(root), *extra, "config", "schema"])
    assert printed.exit_code == 0, printed.output
    schema = json.loads(printed.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=None)


class Acme:
    """A third-party plugin that declares its table and reads it back."""

    TABLE = Table("acme_sync", "the acme sync job")
    TABLE.add("batch", whole(minimum=1, example=50), 50, "rows per request")
    TABLE.add("mode", text(choices=("fast", "safe")), "safe", "how it writes")
    TABLE.add_table("retry", "how failed requests are retried").add("times", whole(minimum=0), 3, "attempts after the first")

    @hookimpl
    def declare_tables(self):
        return [self.TABLE]


def test_hook_declare_tables_feeds_check_schema_and_reading(tmp_path, envfence_plugin):
    envfence_plugin(Acme(), name="acme_sync")
    root = _project(tmp_path, '[acme_sync]\nbatch = "lots"\nmdoe = "fast"\n[acme_sync.retry]\ntimes = -1\n')
    result = _check(root)
    assert result.exit_code == 1, result.output
    found = {f["key"]: f for f in _findings(result)}
    batch = found["acme_sync.batch"]
    assert (batch["code"], batch["severity"]) == ("SETTINGS_INVALID", "error")
    assert batch["message"].startswith(f"{root / 'envfence.toml'}: acme_sync.batch: ")
    assert "must be a whole number of at least 1, not 'lots'" in batch["message"]
    assert found["acme_sync.retry.times"]["code"] == "SETTINGS_INVALID"
    typo = found["acme_sync.mdoe"]
    assert (typo["code"], typo["severity"], typo["remediation"]) == ("SETTINGS_UNKNOWN_KEY", "warning", "did you mean 'mode'?")
    # The same declaration is the schema an editor checks the file with.
    schema = _validator(root)
    assert schema.iter_errors({"acme_sync": {"batch": "lots"}}).__next__().validator == "type"
    assert schema.is_valid({"acme_sync": {"batch": 5, "retry": {"times": 0}}})


def test_reading_a_declared_table_gives_typed_values_defaults_and_clear_errors(tmp_path):
    from envfence.errors import ConfigurationError
    from envfence.settings import load_settings

    settings = load_settings(_project(tmp_path, "[acme_sync]\nbatch = 10\n"))
    values = Acme.TABLE.read(settings)
    assert (values["batch"], values["mode"], values.sub("retry")["times"]) == (10, "safe", 3)
    settings = load_settings(_project(tmp_path, '[acme_sync]\nmode = "reckless"\n', "bad"))
    with pytest.raises(ConfigurationError) as raised:
        Acme.TABLE.read(settings)["mode"]
    assert str(settings.path) in str(raised.value) and "acme_sync.mode: must be 'fast' or 'safe', not 'reckless'" in str(raised.value)


def test_a_disabled_plugin_contributes_no_table(tmp_path):
    root = _project(tmp_path, '[logging]\nfile = "jobs"\n')
    assert "logging" in json.loads(CliRunner().invoke(cli, ["--root", str(root), "config", "schema"]).stdout)["properties"]
    printed = CliRunner().invoke(cli, ["--root", str(root), "-p", "no:logging", "config", "schema"])
    assert "logging" not in json.loads(printed.stdout)["properties"]
    # A value its plugin would refuse is not judged while the plugin is disabled.
    root = _project(tmp_path, "[health]\nforecast_days = -1\n", "off")
    assert "health.forecast_days" in {f["key"] for f in _findings(_check(root))}
    assert "health.forecast_days" not in {f["key"] for f in _findings(_check(root, "-p", "no:health"))}


@pytest.mark.parametrize("body, key", [
    ('[environments."qa.eu"]\nbased_on = "production"\n', "environments.qa.eu"),
    ('[environments.qa]\nprefix = "QA"\n', "environments.qa.based_on"),
    ("timezone = 5\n", "timezone"),
    ('[environments.qa]\nbased_on = "prodution"\n', "environments.qa.based_on"),
    ("[snapshots]\nkeep = 0\n", "snapshots.keep"),
])
def test_the_schema_refuses_what_envfence_refuses(tmp_path, body, key):
    import tomllib

    root = _project(tmp_path, body)
    result = _check(root)
    assert result.exit_code == 4, result.output
    assert f"{root / 'envfence.toml'}: {key}: " in result.output
    assert "PLUGIN_ERROR" not in result.output and "Traceback" not in result.output and "AttributeError" not in result.output
    assert not _validator(tmp_path).is_valid(tomllib.loads(body))


def _declared(table: Table, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, dict[str, Any]]]:
    """``(path to the key, its declaration, the table around it with its required keys filled)`` for every key."""
    required = {k.name: k.kind.good for k in table.keys.values() if k.required}
    for key in table.keys.values():
        yield path + (key.name,), key, {**required, **key.requires}
    for name, sub in table.tables.items():
        yield from _declared(sub, path + (name,))
    for name, each in table.each.items():
        import re

        sample = "sample" if re.fullmatch(each.names, "sample") else "/sample"  # a route's name is a URL path
        yield from _declared(each.table, path + ((name,) if name else ()) + (sample,))
    if table.free is not None:
        from envfence.settings_tables import Key

        yield path + ("production",), Key("production", table.free.kind, None, table.free.description), {}


def _document(path: tuple[str, ...], value: Any, around: dict[str, Any]) -> dict[str, Any]:
    body: Any = {**around, path[-1]: value}
    for part in reversed(path[:-1]):
        body = {part: body}
    return body


def _all_keys() -> list[tuple[str, tuple[str, ...], Any, dict[str, Any]]]:
    from envfence.schema import builtin_tables
    from envfence.settings import CORE

    found = [("core", p, k, r) for p, k, r in _declared(CORE)]
    for table in builtin_tables():
        found += [(table.name, (table.name,) + p, k, r) for p, k, r in _declared(table)]
    return found


def test_every_declared_key_has_a_good_and_a_bad_example():
    for _table, path, key, _around in _all_keys():
        assert key.kind.accepts(key.kind.good), ".".join(path)
        assert key.kind.bad is None or not key.kind.accepts(key.kind.bad), ".".join(path)


def _judged_by_check(document: dict[str, Any], dotted: str, tables: list[Table]) -> bool:
    """True when ``envfence check``'s own judges refuse ``dotted`` in ``document``: the core's loader (a
    ConfigurationError, exit 4) or the tables' findings (``settings_tables.findings``, what check adds)."""
    from envfence.errors import ConfigurationError
    from envfence.settings import deferred_tables, parse_settings
    from envfence.settings_tables import findings

    try:
        settings = parse_settings(document, Path("envfence.toml"))
    except ConfigurationError as exc:
        return f": {dotted}: " in exc.message
    return any(f.severity == "error" and f.key == dotted for f in findings(settings, [*deferred_tables(), *tables]))


def test_check_and_the_json_schema_judge_every_declared_key_alike(tmp_path):
    """For each key of the core and the built-ins: a valid value passes both, an invalid one fails both.

    The judges are the ones ``check`` calls (the CLI itself is exercised above and by
    ``test_a_sample_of_keys_is_judged_alike_through_the_command_line``), so every key costs no process.
    """
    from envfence.schema import builtin_tables

    validator, tables = _validator(tmp_path), builtin_tables()
    checked = 0
    for _table, path, key, around in _all_keys():
        dotted = ".".join(path)
        for label, value in (("good", key.kind.good), ("bad", key.kind.bad)):
            if value is None:
                continue
            document = _document(path, value, around)
            refused_by_check = _judged_by_check(document, dotted, tables)
            refused_by_schema = not validator.is_valid(document)
            assert refused_by_check == refused_by_schema == (label == "bad"), (dotted, label, document)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("dotted", ["environments.sample.aliases", "health.forecast_days", "automations.sample.isolation",
                                    "settings.sample.required"])
def test_a_sample_of_keys_is_judged_alike_through_the_command_line(tmp_path, dotted):
    validator = _validator(tmp_path)
    (_table, path, key, around), = [k for k in _all_keys() if ".".join(k[1]) == dotted]
    for label, value in (("good", key.kind.good), ("bad", key.kind.bad)):
        document = _document(path, value, around)
        root = _project(tmp_path, "".join(f"{name} = {toml(body)}\n" for name, body in document.items()), label)
        result = _check(root)
        refused_by_check = result.exit_code == 4 and f": {dotted}: " in result.output or any(
            f["severity"] == "error" and f": {dotted}: " in f["message"] for f in _findings(result))
        assert refused_by_check == (not validator.is_valid(document)) == (label == "bad"), (label, result.output)


def test_the_shipped_schema_and_the_settings_reference_are_the_generated_ones():
    from envfence.schema import SHIPPED, reference, render

    assert SHIPPED.read_text() == render(), "regenerate: python -m envfence.schema"
    # The docs' page is rendered from the same declarations at every build (docs/_hooks/reference.py).
    page = reference()
    for heading in ("## Top level", "## [environments.NAME]", "## [settings.NAME]", "## [health]"):
        assert heading in page
    assert "| `forecast_days` | a number of at least 0 | `7` | a forecast crossing this close is a WARNING |" in page


def test_an_either_kind_refuses_only_what_every_choice_refuses():
    kind = either(flag(), whole())
    assert kind.accepts(True) and kind.accepts(3) and not kind.accepts("x")
    assert "true or false or a whole number" in kind.problem("x")


def test_a_key_that_could_forge_a_line_of_output_is_quoted(tmp_path):
    root = _project(tmp_path, '[health]\n"keep\\nSETTINGS_OK: all fine" = 1\n[environments."qa\\nfake"]\nbased_on = "production"\n')
    result = CliRunner().invoke(cli, ["--root", str(root), "check"], env={"ENVIRONMENT": ""})
    assert result.exit_code == 4
    assert "environments.'qa\\nfake': is not a valid environment name" in result.output
    assert "\nfake" not in result.output
    root = _project(tmp_path, '[health]\n"keep\\nSETTINGS_OK: all fine" = 1\n', "key")
    said = [f for f in _findings(_check(root)) if f["code"] == "SETTINGS_UNKNOWN_KEY"]
    assert said and all("\n" not in f["message"] for f in said), said
    assert "health.'keep\\nSETTINGS_OK: all fine': unknown key" in said[0]["message"]


def test_a_value_read_is_the_callers_own_copy(tmp_path):
    from envfence.settings import load_settings

    table = Table("acme_lists", "lists")
    table.add("names", whole(), None, "unused")
    table.add("dirs", either(flag(), whole()), None, "unused")
    from envfence.settings_kinds import texts

    table.add("items", texts(), ["a"], "a list with a default")
    settings = load_settings(_project(tmp_path, '[acme_lists]\n'))
    table.read(settings)["items"].append("b")
    assert table.read(settings)["items"] == ["a"]
    settings = load_settings(_project(tmp_path, '[acme_lists]\nitems = ["x"]\n', "set"))
    table.read(settings)["items"].append("y")
    assert table.read(settings)["items"] == ["x"] and settings.raw["acme_lists"]["items"] == ["x"]
