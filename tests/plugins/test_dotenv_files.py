"""envfence reads .env files as python-dotenv does, except where its documented precedence says otherwise.

Every case of python-dotenv's own parser and ``dotenv_values`` tests is an
envfence case here: the file is loaded by envfence as ``.env`` and by
``dotenv_values`` (the live reference, with the same process environment).
Where envfence decides differently, the case names why, and the test proves
the reference still disagrees, so the difference stays known.
"""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest

import envfence

# Where envfence's reading differs on purpose (docs/configuration.md).
ENVIRON_WINS = "the process environment is a higher layer than .env, so ${B} sees its value"
FINAL_VALUE = "a reference sees the key's final value, wherever it is set"
NO_EQUALS = "a key without '=' is ignored with a DOTENV_NO_VALUE warning"

# (process environment, file bytes, envfence's values, why it differs from dotenv_values or None)
CASES = [
    # python-dotenv tests/test_parser.py
    ({}, "", {}, None),
    ({}, "a=b", {"a": "b"}, None),
    ({}, "'a'=b", {"a": "b"}, None),
    ({}, "[=b", {"[": "b"}, None),
    ({}, " a = b ", {"a": "b"}, None),
    ({}, "export a=b", {"a": "b"}, None),
    ({}, " export 'a'=b", {"a": "b"}, None),
    ({}, "# a=b", {}, None),
    ({}, "a=b#c", {"a": "b#c"}, None),
    ({}, "a=b #c", {"a": "b"}, None),
    ({}, "a= #c", {"a": ""}, None),
    ({}, "a=  # comment", {"a": ""}, None),
    ({}, "a=#b", {"a": "#b"}, None),
    ({}, "a=b\t#c", {"a": "b"}, None),
    ({}, "a=b c", {"a": "b c"}, None),
    ({}, "a=b\tc", {"a": "b\tc"}, None),
    ({}, "a=b  c", {"a": "b  c"}, None),
    ({}, "a=b\u00a0 c", {"a": "b\u00a0 c"}, None),
    ({}, "a=b c ", {"a": "b c"}, None),
    ({}, "a='b c '", {"a": "b c "}, None),
    ({}, 'a="b c "', {"a": "b c "}, None),
    ({}, "export export_a=1", {"export_a": "1"}, None),
    ({}, "export port=8000", {"port": "8000"}, None),
    ({}, 'a="b\nc"', {"a": "b\nc"}, None),
    ({}, "a='b\nc'", {"a": "b\nc"}, None),
    ({}, 'a="b\\nc"', {"a": "b\nc"}, None),
    ({}, "a='b\\nc'", {"a": "b\\nc"}, None),
    ({}, 'a="b\\"c"', {"a": 'b"c'}, None),
    ({}, "a='b\\'c'", {"a": "b'c"}, None),
    ({}, "a=à", {"a": "à"}, None),
    ({}, 'a="à"', {"a": "à"}, None),
    ({}, "no_value_var", {}, NO_EQUALS),
    ({}, "a: b", {}, None),
    ({}, "a=b\nc=d", {"a": "b", "c": "d"}, None),
    ({}, "a=b\rc=d", {"a": "b", "c": "d"}, None),
    ({}, "a=b\r\nc=d", {"a": "b", "c": "d"}, None),
    ({}, "a=\nb=c", {"a": "", "b": "c"}, None),
    ({}, "\n\n", {}, None),
    ({}, "a=b\n\n", {"a": "b"}, None),
    ({}, "a=b\n\nc=d", {"a": "b", "c": "d"}, None),
    ({}, 'a="\nb=c', {"b": "c"}, None),
    ({}, '# comment\na="b\nc"\nd=e\n', {"a": "b\nc", "d": "e"}, None),
    ({}, "a=b\n# comment 1", {"a": "b"}, None),
    ({}, "# comment 1\n# comment 2", {}, None),
    ({}, 'uglyKey[%$="S3cr3t_P4ssw#rD" #\na=b', {"uglyKey[%$": "S3cr3t_P4ssw#rD", "a": "b"}, None),
    ({}, "\ufeffa=b", {"a": "b"}, None),
    ({}, "\ufeffa=b\nc=d", {"a": "b", "c": "d"}, None),
    # Line ends inside quoted values, as the loader reads a file (issue: CRLF kept its \r).
    ({}, 'A="x\r\ny"\r\n', {"A": "x\ny"}, None),
    ({}, 'A="x\ry"\rB=2\r', {"A": "x\ny", "B": "2"}, None),
    ({}, "A='x\r\ny'\r\nB=\"p\r\nq\r\nr\"\r\n", {"A": "x\ny", "B": "p\nq\nr"}, None),
    # python-dotenv tests/test_main.py, test_dotenv_values_string_io (interpolation on)
    ({"B": "c"}, "a=$B", {"a": "$B"}, None),
    ({"B": "c"}, "a=${B}", {"a": "c"}, None),
    ({"B": "c"}, "a=${B:-d}", {"a": "c"}, None),
    ({}, "b=c\na=${b}", {"a": "c", "b": "c"}, None),
    ({}, "a=${b}", {"a": ""}, None),
    ({}, "a=${b:-d}", {"a": "d"}, None),
    ({"B": "c"}, 'a="${B}"', {"a": "c"}, None),
    ({"B": "c"}, "a='${B}'", {"a": "c"}, None),
    ({"B": "c"}, "a=x${B}y", {"a": "xcy"}, None),
    ({"A": "b"}, "A=${A}", {"A": "b"}, None),
    ({}, "a=${a}", {"a": ""}, None),
    ({"A": "b"}, "A=${A:-c}", {"A": "b"}, None),
    ({}, "a=${a:-c}", {"a": "c"}, None),
    ({"B": "c"}, "a=${B}${B}", {"a": "cc"}, None),
    ({"B": "c"}, "B=d\na=${B}", {"a": "c", "B": "c"}, ENVIRON_WINS),
    ({}, "a=b\na=c\nd=${a}", {"a": "c", "d": "c"}, None),
    ({}, "a=b\nc=${a}\nd=e\nc=${d}", {"a": "b", "c": "e", "d": "e"}, None),
    ({}, "a\nb=${a}", {"b": ""}, NO_EQUALS),
    # python-dotenv tests/test_main.py, test_resolve_variables, written as files
    ({"B": "c"}, "B=d\na=${B}", {"a": "c", "B": "c"}, ENVIRON_WINS),
    ({"B": "c"}, "B=${X:-d}\na=${B}", {"a": "c", "B": "c"}, ENVIRON_WINS),
    ({"B": "c"}, "C=${B}\nB=${A}\nA=1", {"C": "c", "B": "c", "A": "1"}, ENVIRON_WINS),
    ({}, "C=${B}\nB=${A}\nA=1", {"C": "1", "B": "1", "A": "1"}, FINAL_VALUE),
    ({"B": "c"}, "B=x\nB=${B}\nB=${B}", {"B": "c"}, ENVIRON_WINS),
    ({}, "B=x\nB=${B}\nB=${B}", {"B": "x"}, None),
    ({"B": "c"}, "B=x\nB=${B}\nB=y", {"B": "c"}, ENVIRON_WINS),
    # test_resolve_variable: a value against file and process values
    ({"B": "c"}, "A=d\nV=${B}${A}", {"A": "d", "V": "cd"}, None),
    ({"B": "c"}, "B=d\nV=$B$B$B", {"B": "c", "V": "$B$B$B"}, ENVIRON_WINS),
    ({}, "B=d\nV=${B}${B}${B}", {"B": "d", "V": "ddd"}, None),
    ({"B": "c"}, "B=d\nV=${C}a${C}b${C}", {"B": "c", "V": "ab"}, ENVIRON_WINS),
    # test_load_dotenv_redefine_var_used_in_file_no_override: envfence agrees with load_dotenv
    ({"a": "c"}, 'a=b\nd="${a}"', {"a": "c", "d": "c"}, ENVIRON_WINS),
]


def _envfence_values(root, environ):
    session = envfence.open_session(root, env="development", environ=environ)
    return {key: session.config[key] for key in session.config}


@pytest.mark.parametrize(("environ", "text", "expected", "differs"), CASES, ids=[repr(c[1])[:40] for c in CASES])
def test_dotenv_case_against_python_dotenv(make_project, environ, text, expected, differs):
    from dotenv import dotenv_values

    root = make_project({".env": text.encode("utf-8")})
    with mock.patch.dict(os.environ, environ, clear=True):
        reference = dict(dotenv_values(root / ".env"))
    ours = _envfence_values(root, dict(environ))
    assert ours == expected
    if differs is None:
        assert reference == expected
    else:
        assert reference != expected, f"python-dotenv now agrees; drop the note {differs!r}"


def test_exported_value_is_what_a_reference_sees(make_project, run_cli):
    """The issue's case: HOST exported as db.prod wins over .env, and so does URL's view of it."""
    root = make_project({".env": "HOST=localhost\nURL=http://${HOST}/\n"})
    result = run_cli("--json", "config", "show", cwd=root, env={"HOST": "db.prod"})
    assert json.loads(result.stdout)["values"] == {"HOST": "db.prod", "URL": "http://db.prod/"}


def test_a_lower_file_sees_the_final_value_set_in_a_higher_one(make_project, run_cli):
    root = make_project({
        ".env": "URL=https://${HOST}/api\nHOST=localhost\nPATH_LIST=/a\n",
        ".env.local": "HOST=db.internal\nPATH_LIST=${PATH_LIST}:/b\n",
    })
    values = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)["values"]
    assert values == {"URL": "https://db.internal/api", "HOST": "db.internal", "PATH_LIST": "/a:/b"}


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_is_refused_without_blocking(make_project, run_cli, kind):
    root = make_project({".env": "A=1\n"})
    if kind == "fifo":
        os.mkfifo(root / ".env.development")  # reading it would wait for a writer forever
    else:
        os.symlink("/dev/zero", root / ".env.development")  # reading it would never end
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4
    assert ".env.development: is not a regular file" in result.stderr
    assert "Traceback" not in result.output


def test_a_nul_byte_is_a_finding_naming_file_and_key(make_project, run_cli, tmp_path):
    canary = "s3cr3t-canary"
    root = make_project(
        {".env": f"GOOD=1\nBAD={canary}\0tail\n".encode(), "job.sh": "#!/bin/sh\necho ran\n"},
        settings='[automations.job]\nrun = ["sh", "job.sh"]\n',
    )
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 1
    assert "DOTENV_NUL_BYTE [.env:2]" in result.stderr and "BAD" in result.stderr
    assert canary not in result.output
    shown = {line.split()[0] for line in result.stdout.splitlines()[1:]}
    assert "GOOD" in shown and "BAD" not in shown
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1 and "BAD holds a NUL byte" in check.output
    # The command automation runs without the key instead of dying on it.
    run = run_cli("run", "job", cwd=root)
    assert run.exit_code == 0, run.output
    assert "embedded null byte" not in run.output


def test_a_doubling_bomb_stops_with_a_finding_naming_file_and_key(make_project, run_cli):
    lines = ["K0=xxxxxxxxxxxxxxxx"] + [f"K{i}=${{K{i - 1}}}${{K{i - 1}}}" for i in range(1, 34)]
    text = "\n".join(lines) + "\n"
    assert len(text) < 600
    root = make_project({".env": text})
    result = run_cli("--json", "config", "show", cwd=root)
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    first = next(f for f in findings if f["code"] == "DOTENV_INTERPOLATION")
    assert (first["file"], first["key"]) == (".env", "K17")  # 16 * 2**17 characters passes 1 MiB
    assert "1,048,576 characters" in first["message"]


def test_deep_and_cyclic_references_are_findings(make_project, run_cli):
    # Each line refers to the next one, so expanding D0 nests 40 deep.
    chain = "\n".join([f"D{i}=${{D{i + 1}}}" for i in range(40)] + ["D40=end"])
    root = make_project({".env": chain + "\nA=${B}\nB=${A}\n"})
    findings = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)["findings"]
    messages = {f["key"]: f["message"] for f in findings if f["code"] == "DOTENV_INTERPOLATION"}
    assert "cycle" in messages["A"]
    assert any("deeper than 32" in m for m in messages.values())


def test_every_key_of_a_three_key_cycle_is_kept_as_written_with_a_finding(make_project, run_cli):
    root = make_project({".env": "A=${B}\nB=${C}\nC=${A}\nD=x${B}\nOK=${E:-fine}\n"})
    data = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)
    assert data["values"] == {"A": "${B}", "B": "${C}", "C": "${A}", "D": "x${B}", "OK": "fine"}
    flagged = {f["key"]: f for f in data["findings"] if f["code"] == "DOTENV_INTERPOLATION"}
    assert set(flagged) == {"A", "B", "C", "D"}
    assert all(f["file"] == ".env" and f["line"] for f in flagged.values())


def test_a_chain_past_the_depth_bound_keeps_its_head_as_written(make_project, run_cli):
    chain = "\n".join([f"D{i}=${{D{i + 1}}}" for i in range(40)] + ["D40=end"])
    data = json.loads(run_cli("--json", "config", "show", cwd=make_project({".env": chain + "\n"})).stdout)
    # D0 nests 40 deep: kept as written, not a half-expanded "${D33}".
    assert data["values"]["D0"] == "${D1}"
    assert data["values"]["D20"] == "end"  # 20 deep: within the bound


def test_a_reference_never_pulls_another_environments_credential(make_project, run_cli):
    canary = "prod-canary-9f8e7d6c"
    root = make_project({
        ".env": f"PROD_AIRTABLE_API_KEY={canary}\nCOPY_TOKEN=${{PROD_AIRTABLE_API_KEY}}\n"
                "URL=https://x/${PROD_AIRTABLE_API_KEY:-none}\nPROD_URL=https://${PROD_AIRTABLE_API_KEY}/\n",
    })
    session = envfence.open_session(root, env="development", environ={"PROD_OTHER_KEY": canary})
    assert session.config["URL"] == "https://x/none"
    assert session.config["COPY_TOKEN"].reveal() == ""
    assert session.credential("AIRTABLE_API_KEY") is None
    # Production reads its own key through its own reference.
    prod = envfence.open_session(root, env="production", environ={})
    assert prod.config["PROD_URL"].reveal() == f"https://{canary}/"
    result = run_cli("--json", "config", "show", cwd=root, env={"PROD_OTHER_KEY": canary})
    findings = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "DOTENV_FOREIGN_REFERENCE"]
    assert {f["key"] for f in findings} == {"COPY_TOKEN", "URL"}
    assert all(f["file"] == ".env" and "production" in f["message"] for f in findings)
    assert canary not in result.output
    # The process environment is no way round it.
    root2 = make_project({".env": "URL=${PROD_OTHER_KEY}\n"}, name="p2")
    assert envfence.open_session(root2, env="development", environ={"PROD_OTHER_KEY": canary}).config["URL"] == ""


def test_a_value_built_from_a_secret_is_secret(make_project, run_cli):
    root = make_project({
        ".env": "DB_PASSWORD=development\nPIN_TOKEN=abc\nURL=pg://u:${DB_PASSWORD}x@h/db\n"
                "SHORT=${PIN_TOKEN}\nTWICE=${URL}\nEXT=${HOOK_SECRET}\nPLAIN=${HOST}\nHOST=h\n",
    })
    result = run_cli("--json", "config", "show", cwd=root, env={"HOOK_SECRET": "from-the-process-1"})
    entries = {e["key"]: e for e in json.loads(result.stdout)["entries"]}
    for key in ("URL", "SHORT", "TWICE", "EXT"):
        assert entries[key]["secret"] and entries[key]["value"] == "********", key
    assert entries["PLAIN"] == {**entries["PLAIN"], "secret": False, "value": "h"}
    plain = run_cli("config", "show", cwd=root, env={"HOOK_SECRET": "from-the-process-1"}).stdout
    assert "developmentx" not in plain and "=abc" not in plain and "from-the-process-1" not in plain


def test_a_token_pasted_on_a_line_of_its_own_is_never_echoed(make_project, run_cli):
    tokens = ["ghp_16C7e42F292c6912E7710c838347Ae178B4a", "sk_live_51Hxyz1234abcd", "a1b2c3d4e5f6a7b8c9d0", "patAbc.def123456"]
    root = make_project({".env": "A=1\n" + "\n".join(tokens) + "\nDEBUG\n"})
    result = run_cli("--json", "config", "show", cwd=root)
    findings = json.loads(result.stdout)["findings"]
    assert [(f["code"], f["line"]) for f in findings if f["code"] == "DOTENV_PARSE_ERROR"] == [("DOTENV_PARSE_ERROR", n) for n in (2, 3, 4, 5)]
    assert [f["key"] for f in findings if f["code"] == "DOTENV_NO_VALUE"] == ["DEBUG"]
    for token in tokens:
        assert token not in result.output


def test_a_nested_default_is_taken_as_python_dotenv_takes_it_with_a_warning(make_project, run_cli):
    root = make_project({".env": "B=b\nA=${MISSING:-${B}}\nC=${B:-x}\n"})
    data = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)
    assert data["values"] == {"B": "b", "A": "${B}", "C": "b"}  # as dotenv_values gives it
    nested = [f for f in data["findings"] if f["code"] == "DOTENV_NESTED_DEFAULT"]
    assert [(f["key"], f["line"], f["severity"]) for f in nested] == [("A", 2, "warning")]


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", ".hidden", "sp ace", "x.local"])
def test_an_environment_name_that_would_name_a_file_elsewhere_is_refused(make_project, run_cli, name):
    # Its layer would be `.env.<name>`, its key `.envfence/keys/<name>.key`: a name with a
    # slash, a dot or a space could read or write outside the project.
    root = make_project(settings=f'[environments."{name}"]\nprefix = "EV"\nbased_on = "development"\n')
    result = run_cli("--env", name, "config", "show", cwd=root)
    assert result.exit_code == 4, result.output
    assert f"environments.{name}" in result.stderr and "letters, digits" in result.stderr


def test_config_template_reads_back_as_the_values_it_shows(make_project, run_cli, tmp_path):
    root = make_project({
        ".env": 'HASH="a # b"\nMULTI="line1\nline2"\nQUOTES="say \\"hi\\" \\\\o/"\nLEAD=" padded "\n'
                "STARTQ=\"'x\"\nPLAIN=https://h/p?a=1&b=2\nTAB=\"a\\tb\"\n",
    })
    original = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)["values"]
    template = run_cli("config", "template", cwd=root).stdout
    copy = make_project({".env": template}, name="copy")
    again = json.loads(run_cli("--json", "config", "show", cwd=copy).stdout)
    assert not [f for f in again["findings"] if f["code"] == "DOTENV_PARSE_ERROR"]
    assert {k: again["values"][k] for k in original} == original
    assert "PLAIN=https://h/p?a=1&b=2" in template  # a value that needs no quotes is shown as it is
