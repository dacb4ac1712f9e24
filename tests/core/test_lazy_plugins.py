"""Plugins registered from the cached manifest: a plugin module is imported the first time one of its hooks is called."""

from __future__ import annotations

import json
import marshal
import os
import textwrap
import zlib
from pathlib import Path

import pytest

from envfence_builtins import ORDER
from fresh_process import envfence_in_new_process

SETTINGS = '[automations]\nnoop = ["true"]\n'


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("ENVFENCE_PLUGIN_CACHE", str(path))
    return path


def _envfence(root: Path, cache: Path, *args: str, extra_path: Path | None = None, env: dict | None = None):
    environ = {**os.environ, "ENVFENCE_PLUGIN_CACHE": str(cache), "ENVFENCE_HOSTNAME": "build-box-01", **(env or {})}
    if extra_path is not None:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), environ.get("PYTHONPATH", "")]))
    code, output, stderr, modules = envfence_in_new_process(root, *args, env=environ)
    return code, output, stderr, {m.removeprefix("envfence_builtins.") for m in modules if m.startswith("envfence_builtins.")}


def _plugin_modules(loaded: set[str]) -> set[str]:
    """The entry-point modules of built-ins among ``loaded``."""
    from envfence.entrypoints import entry_points

    modules = {ep.name: ep.value.removeprefix("envfence_builtins.") for ep in entry_points("envfence") if ep.name in ORDER}
    return {name for name, module in modules.items() if module in loaded}


#: Built-ins that detect and list never call: their modules must stay unimported.
NEVER_ASKED = {"advise", "backup", "report", "health", "metrics", "thresholds", "git_hygiene", "secret_hygiene", "encryption"}
#: Built-ins a run of a command never calls (a run validates, so the validators are asked).
NOT_FOR_A_RUN = {"report", "health", "metrics"}


def test_detect_list_and_run_import_only_the_plugins_whose_hooks_they_call(make_project, cache):
    root = make_project({".env": "A=1\n"}, settings=SETTINGS)
    code, cold_output, _, cold = _envfence(root, cache, "-q", "detect")  # builds the manifest: every plugin imported
    assert code == 0 and NEVER_ASKED <= _plugin_modules(cold)
    code, output, stderr, detect = _envfence(root, cache, "-q", "detect")
    assert code == 0 and output == cold_output, stderr
    assert _plugin_modules(detect) & NEVER_ASKED == set()
    assert {"project_root", "hostname", "environment_variable", "dotenv_files"} <= _plugin_modules(detect)
    code, output, stderr, listed = _envfence(root, cache, "list")
    assert code == 0 and "noop" in output, stderr
    assert _plugin_modules(listed) & NEVER_ASKED == set()
    code, output, stderr, ran = _envfence(root, cache, "run", "noop")
    assert code == 0, stderr + output
    assert {"history", "audit", "directories", "logging"} <= _plugin_modules(ran)  # a run is recorded and audited
    assert _plugin_modules(ran) & NOT_FOR_A_RUN == set()


def test_the_plugin_listing_and_the_call_order_are_the_same_from_the_cache(make_project, cache):
    root = make_project({".env": "A=1\n"})
    cold = _envfence(root, cache, "--json", "plugins", "--hooks")
    warm = _envfence(root, cache, "--json", "plugins", "--hooks")
    assert json.loads(warm[1]) == json.loads(cold[1])
    listing_cold = _envfence(root, cache, "--json", "-p", "no:airtable", "plugins", env={"ENVFENCE_PLUGIN_CACHE": "off"})
    listing_warm = _envfence(root, cache, "--json", "-p", "no:airtable", "plugins")
    assert json.loads(listing_warm[1]) == json.loads(listing_cold[1])
    assert {r["name"]: r["status"] for r in json.loads(listing_warm[1])}["airtable"] == "disabled"


def test_a_disabled_plugin_stays_unimported_from_the_cache(make_project, cache):
    root = make_project({".env": "A=1\n"}, settings=SETTINGS)
    _envfence(root, cache, "detect")
    code, _, stderr, ran = _envfence(root, cache, "run", "noop")
    assert code == 0 and "advise" in _plugin_modules(ran), stderr
    code, _, stderr, ran = _envfence(root, cache, "-p", "no:advise", "run", "noop")
    assert code == 0 and "advise" not in _plugin_modules(ran), stderr


def test_tracing_names_the_same_plugins_in_the_same_order(make_project, cache):
    root = make_project({".env": "A=1\n"})
    trace = {"ENVFENCE_TRACE_PLUGINS": "1"}

    def order(stderr: str) -> list[str]:
        lines = [line.split("]: ", 1) for line in stderr.splitlines() if line.startswith("envfence: trace: ")]
        return [line[0].split(" [")[0] + ": " + ", ".join(p.split(" ")[0] for p in line[1].split("; ")) for line in lines]

    cold = _envfence(root, cache, "detect", env=trace)
    warm = _envfence(root, cache, "detect", env=trace)
    assert order(warm[2]) == order(cold[2]) and order(warm[2])


# --- the cache is keyed, checked and never trusted blindly --------------------------------------

PLUGIN = '''
from envfence import hookimpl
from envfence.models import Finding

@hookimpl(tryfirst=True)
def validate(session):
    return [Finding("LAZY_SAYS", "warning", "{word}")]
'''


def _install(site: Path, word: str) -> Path:
    site.mkdir(exist_ok=True)
    module = site / "lazy_probe_plugin.py"
    module.write_text(PLUGIN.format(word=word))
    info = site / "envfence_lazy_probe-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: envfence-lazy-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[envfence]\nlazy_probe = lazy_probe_plugin\n")
    return module


def test_a_changed_plugin_module_rebuilds_its_entry(make_project, cache, tmp_path):
    site = tmp_path / "site"
    root = make_project({".env": "A=1\n"})
    _install(site, "first words")
    assert "first words" in _envfence(root, cache, "check", extra_path=site)[1]
    assert "first words" in _envfence(root, cache, "check", extra_path=site)[1]
    module = _install(site, "other words")
    os.utime(module, ns=(0, 0))  # even with its time set back, the file is another one
    assert "other words" in _envfence(root, cache, "check", extra_path=site)[1]


def test_a_corrupt_cache_is_rebuilt(make_project, cache):
    from envfence.plugin_manifest import file_bytes, read_file

    root = make_project({".env": "A=1\n"})
    expected = _envfence(root, cache, "-q", "detect")[1]
    cache_file = next(cache.iterdir())
    good = cache_file.read_bytes()
    [name] = [n for n in read_file(good) if n.startswith("envfence ")]
    emptied = file_bytes({name: {"entry": b"", "checksum": 0}})
    not_an_entry = file_bytes({name: {"entry": marshal.dumps([1, 2]), "checksum": zlib.crc32(marshal.dumps([1, 2]))}})
    flipped = good[:-10] + bytes([good[-10] ^ 1]) + good[-9:]  # one bit: the file's CRC no longer matches
    for garbage in (b"{not json", emptied, not_an_entry, good[: len(good) // 2], b"", flipped, good.replace(b"manifest 2", b"manifest 9")):
        cache_file.write_bytes(garbage)
        code, output, stderr, _ = _envfence(root, cache, "-q", "detect")
        assert code == 0 and output == expected and "Traceback" not in stderr
        assert _envfence_entry(read_file(cache_file.read_bytes()))["plugins"]


def _without_guard(cache_file: Path) -> dict:
    """The cache's distributions with the hostname plugin's pre_run_safety removed, the checksums made to match."""
    from envfence.plugin_manifest import encode_entry, read_file

    data = read_file(cache_file.read_bytes())
    entry = _envfence_entry(data)
    hostname = entry["plugins"]["hostname"]
    hostname["hooks"] = [h for h in hostname["hooks"] if h[1] != "pre_run_safety"]
    [name] = [n for n in data if n.startswith("envfence ")]
    data[name] = encode_entry(entry)
    return data


def _envfence_entry(data: dict) -> dict:
    """The built-ins' entry of the cache's distributions, decoded."""
    from envfence.plugin_manifest import decode_entry

    [name] = [n for n in data if n.startswith("envfence ")]
    return decode_entry(data[name])


PROD_RUN = '[automations]\nnoop = ["true"]\n'


@pytest.mark.parametrize("how", ["edited without its checksum", "writable by others"])
def test_a_tampered_cache_cannot_drop_a_guard(make_project, cache, how):
    root = make_project({".env": "A=1\n"}, settings=PROD_RUN)
    _envfence(root, cache, "detect")
    cache_file = next(cache.iterdir())
    data = _without_guard(cache_file)
    from envfence.plugin_manifest import file_bytes

    if how == "edited without its checksum":
        [name] = [n for n in data if n.startswith("envfence ")]
        data[name]["checksum"] += 1
        cache_file.write_bytes(file_bytes(data))
    else:
        cache_file.write_bytes(file_bytes(data))
        cache_file.chmod(0o666)
    code, output, stderr, _ = _envfence(root, cache, "--env", "production", "run", "noop")
    assert code == 3, output + stderr  # the development box is not a production host: still refused


def test_a_plugin_whose_import_fails_after_caching_shows_as_failed(make_project, cache, tmp_path):
    site = tmp_path / "site"
    root = make_project({".env": "A=1\n"})
    _install(site, "words")
    _envfence(root, cache, "detect", extra_path=site)
    module = site / "lazy_probe_plugin.py"
    shadow = site / "lazy_probe_plugin"  # a package of the same name now wins the import and fails
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise RuntimeError('broken after caching')\n")
    assert module.exists()
    code, output, stderr, _ = _envfence(root, cache, "--json", "plugins", extra_path=site)
    record = {r["name"]: r for r in json.loads(output)}["lazy_probe"]
    assert record["status"] == "failed" and "broken after caching" in record["reason"]
    code, output, stderr, _ = _envfence(root, cache, "check", extra_path=site)
    assert "broken after caching" in output + stderr and "Traceback" not in stderr


def test_the_manifest_can_be_turned_off(make_project, tmp_path):
    root = make_project({".env": "A=1\n"})
    code, _, _, loaded = _envfence(root, Path("off"), "detect")
    assert code == 0 and NEVER_ASKED <= _plugin_modules(loaded)
    assert not (root / "off").exists()


def test_stand_ins_keep_the_argument_names_and_markers(tmp_path):
    """A wrapper, tryfirst and a specname survive the cache (pluggy sees the same hookimpls)."""
    source = textwrap.dedent('''
        from envfence import hookimpl

        @hookimpl(wrapper=True, tryfirst=True)
        def validate(session, live):
            findings = yield
            return findings

        @hookimpl(specname="secret_shapes", trylast=True)
        def shapes():
            return []
    ''')
    site = tmp_path / "site"
    site.mkdir()
    (site / "marked_plugin.py").write_text(source)
    info = site / "envfence_marked-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: envfence-marked\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[envfence]\nmarked = marked_plugin\n")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "envfence.toml").write_text("")
    cache = tmp_path / "cache"
    cold = _envfence(root, cache, "--json", "plugins", "--hooks", extra_path=site)
    warm = _envfence(root, cache, "--json", "plugins", "--hooks", extra_path=site)
    rows = {row["hook"]: row["plugins"] for row in json.loads(warm[1])}
    assert {"plugin": "marked", "order": "tryfirst", "wrapper": True} in rows["validate"]
    assert {"plugin": "marked", "order": "trylast", "wrapper": False} in rows["secret_shapes"]
    assert json.loads(warm[1]) == json.loads(cold[1])
    check = _envfence(root, cache, "check", extra_path=site)
    assert check[0] in (0, 1) and "Traceback" not in check[2]


def test_a_table_the_project_holds_is_judged_from_a_warm_cache(make_project, cache):
    """Only plugins whose cached tables the project holds are imported to judge envfence.toml, and they are."""
    root = make_project({".env": "A=1\n"}, settings=SETTINGS + '[health]\nforecast_days = "soon"\n')
    _envfence(root, cache, "-q", "detect")  # builds the manifest
    code, output, stderr, checked = _envfence(root, cache, "--json", "check")
    assert "health" in _plugin_modules(checked) and "report" not in _plugin_modules(checked)
    findings = [f for f in json.loads(output)["findings"] if f["code"] == "SETTINGS_INVALID"]
    assert findings and "health.forecast_days" in findings[0]["message"], output
    code, output, stderr, ran = _envfence(root, cache, "run", "noop")
    assert code == 0, stderr  # development runs despite the finding; the table was judged by its plugin
    assert "health" in _plugin_modules(ran) and "report" not in _plugin_modules(ran)



#: The code a run validates without: the schedules' (nothing is scheduled), the archive's and the analyses' (no job of a
#: run needs them), and the checks of tables the project does not hold ([advise], [backup] rules, [scaling]).
NOT_LOADED_TO_VALIDATE = {
    "envfence_builtins.operations.schedule_entries", "envfence_builtins.operations.schedule_collisions",
    "envfence_builtins.operations.schedule_dialects", "cronsim", "envfence_builtins.operations.backup_create",
    "envfence_builtins.operations.backup_archive", "envfence_builtins.operations.advise_rules",
    "envfence_builtins.operations.analysis", "envfence.stats", "envfence_builtins.webhook_service.webhook_receiver_scaling",
    "envfence_builtins.webhook_service.webhook_signatures",
}


def test_a_run_validates_without_the_code_of_what_the_project_does_not_use(make_project, cache):
    root = make_project({".env": "A=1\n"}, settings=SETTINGS)
    environ = {**os.environ, "ENVFENCE_PLUGIN_CACHE": str(cache), "ENVFENCE_HOSTNAME": "build-box-01"}
    envfence_in_new_process(root, "-q", "detect", env=environ)  # builds the manifest
    code, output, stderr, modules = envfence_in_new_process(root, "run", "noop", env=environ)
    assert code == 0, stderr + output
    assert {"envfence_builtins.operations.schedule", "envfence_builtins.operations.backup"} <= modules  # their validators ran
    assert modules & NOT_LOADED_TO_VALIDATE == set()
    # A project that schedules an automation has its schedules judged by a run, as before.
    (root / "envfence.toml").write_text(SETTINGS + '[automations.nightly]\nrun = ["true"]\nschedule = "0 3 * * *"\n')
    code, output, stderr, modules = envfence_in_new_process(root, "run", "noop", env=environ)
    assert code == 0, stderr + output
    assert {"envfence_builtins.operations.schedule_entries", "cronsim"} <= modules
