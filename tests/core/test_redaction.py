"""The redaction engine: every form a secret takes, whole tokens only for words, streams, shapes."""

from __future__ import annotations

import io
import json
import sys
import traceback
from urllib.parse import quote, quote_plus

import pytest

from envfence import hookimpl
from envfence.models import MASK
from envfence.redaction import LineStream, Redactor, SecretShape, redirected_output

AWKWARD = "cnry\\back'quote\"Z9"  # a backslash and both quotes
PEM = "-----BEGIN CANARY KEY-----\nMIIBcanaryLine1xyz\nQk9PTWNhbmFyeQ==\nZz\n-----END CANARY KEY-----"


def _forms(value: str) -> list[str]:
    inner = repr(value)
    return [value, str(KeyError(value)), repr(KeyError(value)), repr(repr(KeyError(value))), json.dumps(value),
            json.dumps({"v": value}), json.dumps(value, ensure_ascii=False), quote(value, safe=""), quote(value),
            quote_plus(value), inner, f"{value!r}", repr([value])]


@pytest.mark.parametrize("secret", [AWKWARD, "pässwörd with space/slash", "multi\nline\nsecret\n", PEM, "tab\there&amp=1"])
def test_every_form_of_a_secret_is_masked(secret):
    redact = Redactor([secret])
    for shown in _forms(secret):
        text = redact(f"before {shown} after")
        assert text.startswith("before ") and text.endswith(" after"), text
        assert MASK in text
        for line in (secret.split("\n") if "\n" in secret else [secret]):
            if len(line) >= 4:
                assert line not in text, (shown, text)


def test_a_traceback_with_locals_holds_no_escaped_secret():
    redact = Redactor([AWKWARD])

    def fails(password):
        raise KeyError(password)

    try:
        fails(AWKWARD)
    except KeyError as exc:
        text = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert "cnry" in text and "cnry" not in redact(text)


def test_an_ordinary_word_is_masked_as_a_whole_token_never_inside_a_word():
    redact = Redactor(["short", "development", "20242024"])
    assert redact("short") == MASK
    assert redact("is shorter than 24 characters") == "is shorter than 24 characters"
    assert redact("the development environment") == f"the {MASK} environment"
    assert redact("logs/automation_development.log, developments") == "logs/automation_development.log, developments"
    assert redact(".env.development") == f".env.{MASK}"
    assert redact("pin 20242024, not 120242024") == f"pin {MASK}, not 120242024"
    assert redact(repr("x\nshort")) == f"'x\\n{MASK}'"  # an escape before it is a boundary


def test_any_other_secret_is_masked_even_glued_to_text():
    redact = Redactor(["s3cretPW"])
    assert redact("postgres://u:s3cretPW@h/db xs3cretPWy") == f"postgres://u:{MASK}@h/db x{MASK}y"


def test_overlapping_secrets_are_masked_together():
    redact = Redactor(["abcd-99zz", "abcd"])
    assert redact("abcd-99zz and abcd") == f"{MASK} and {MASK}"
    redact = Redactor(["xxabcd", "abcd-99"])
    assert redact("xxabcd-99") == MASK


def test_short_values_are_not_masked_by_value():
    redact = Redactor(["abc", "1"])
    assert redact("exit code 1, abc") == "exit code 1, abc"


def test_data_masks_every_string_inside():
    redact = Redactor(["canary-in-data"])
    assert redact.data({"a": ["x canary-in-data", 3, None], "b": ("canary-in-data",)}) == {
        "a": [f"x {MASK}", 3, None], "b": [MASK]
    }


def test_find_names_the_secret_and_the_shape():
    redact = Redactor(["canary-db-pw"], shapes=[SecretShape(r"tok_[a-z]{8}", "test token")])
    found = redact.find("a canary-db-pw b tok_abcdefgh Bearer abcdefghijklmnop")
    assert [(m.secret, m.kind) for m in found] == [("canary-db-pw", None), (None, "test token"), (None, "bearer token")]
    assert redact("Authorization: Bearer abcdefghijklmnop") == f"Authorization: Bearer {MASK}"


def test_a_multi_line_secret_printed_line_by_line_is_masked_whole():
    """Runner wiring pending: a command's output will go through LineStream (see its docstring)."""
    lines: list[str] = []
    stream = LineStream(Redactor([PEM]), lines.append)
    for line in f"key follows\n{PEM}\ndone\n{PEM.splitlines()[0]}\nnot the key".split("\n"):
        stream.feed(line)
    # Nothing is held past the point where no secret can be pending: all is out before close().
    assert lines == ["key follows", MASK, "done", MASK, "not the key"]
    stream.close()
    assert lines == ["key follows", MASK, "done", MASK, "not the key"]
    assert "Zz" not in "\n".join(lines)  # a line too short to mask alone


def test_a_line_stream_emits_at_once_when_no_secret_can_be_pending():
    lines: list[str] = []
    stream = LineStream(Redactor([PEM, "canary-plain-1"]), lines.append)
    stream.feed("progress 1 canary-plain-1")
    assert lines == [f"progress 1 {MASK}"]
    stream.feed("-----BEGIN CANARY KEY-----")
    assert len(lines) == 1  # held: the key may follow
    stream.feed("something else")
    assert lines == [f"progress 1 {MASK}", MASK, "something else"]


def test_a_line_stream_without_a_multi_line_secret_switched_off_would_leak():
    """Each line alone: the short line of the key goes out; LineStream is what catches it."""
    redact = Redactor([PEM])
    assert "Zz" in "\n".join(redact(line) for line in PEM.split("\n"))


def test_print_from_a_function_is_redacted():
    """Runner wiring pending: a function automation will run inside redirected_output (see its docstring)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        with redirected_output(Redactor([AWKWARD, PEM])):
            print("token", AWKWARD)
            print("split ", end="")
            sys.stdout.write(AWKWARD[:6])
            sys.stdout.write(AWKWARD[6:] + " end\n")
            print(repr(AWKWARD), file=sys.stderr)
            print(PEM)
            print("no newline at the end", end="")
    finally:
        sys.stdout, sys.stderr = saved
    assert out.getvalue() == f"token {MASK}\nsplit {MASK} end\n{MASK}\nno newline at the end\n"
    assert err.getvalue() == f"'{MASK}'\n"


def test_redirected_output_restores_the_streams_after_an_error():
    before = sys.stdout, sys.stderr
    lines: list[str] = []
    with pytest.raises(RuntimeError):
        with redirected_output(Redactor(["canary-err-9"]), stdout=lines.append):
            print("half canary-err-9")
            raise RuntimeError("boom")
    assert (sys.stdout, sys.stderr) == before
    assert lines == [f"half {MASK}"]


def test_hook_secret_shapes(envfence_project, envfence_plugin):
    class Shapes:
        @hookimpl
        def secret_shapes(self):
            return [SecretShape(r"\bacme_[a-z0-9]{10}\b", "service key")]

    envfence_plugin(Shapes())
    envfence_project.write(".env", "NOTE=rotated acme_0123456789 today\n")
    result = envfence_project.run("-q", "config", "show")
    assert "NOTE=rotated ******** today" in result.output
    result = envfence_project.run("check")
    assert "SECRET_IN_VALUE" in result.output and "looks like a service key" in result.output
    assert "acme_0123456789" not in result.output


def test_builtin_shapes_mask_tokens_the_session_does_not_know(envfence_project):
    token = "patAbcdefghijklmn." + "ab12" * 16
    hook = "whsec_" + "Q2FuYXJ5V2ViaG9va1NlY3JldA=="
    envfence_project.write(".env", f"NOTE=use {token} or {hook}\n")
    result = envfence_project.run("--json", "config", "show")
    assert token not in result.output and hook not in result.output


def test_a_short_secret_is_a_warning_in_development_and_an_error_in_production(envfence_project):
    envfence_project.write(".env", "DEV_API_TOKEN=Ab3$xy\nPROD_API_TOKEN=Zq9!\nLONG_TOKEN=long-enough-secret\n")
    for env, key, severity in (("dev", "DEV_API_TOKEN", "warning"), ("prod", "PROD_API_TOKEN", "error")):
        result = envfence_project.run("--env", env, "--json", "check")
        short = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "SECRET_TOO_SHORT"]
        assert [(f["key"], f["severity"]) for f in short] == [(key, severity)]
        assert "Ab3$xy" not in result.output and "Zq9!" not in result.output


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("value", ["q", "q7", "q7z"])
@pytest.mark.parametrize("declared", [False, True])  # a credential through its prefix, or a secret named in `secrets`
def test_a_secret_too_short_to_mask_is_an_error_in_every_environment_and_the_run_is_refused(envfence_project, env, value, declared):
    secrets = 'secrets = ["SIGNING_SALT"]\n' if declared else ""
    envfence_project.write("envfence.toml", secrets + '[automations]\nshow = "jobs:show"\n[hostname]\nallow_stand_in = true\n')
    envfence_project.write("jobs.py", "def show(ctx):\n    print('ran with', ctx.config)\n")
    prefix = {"dev": "DEV", "prod": "PROD"}[env]
    key = "SIGNING_SALT" if declared else f"{prefix}_API_TOKEN"
    envfence_project.write(".env", f"{key}={value}\nOTHER_TOKEN=long-enough-secret-1\n")
    found = json.loads(envfence_project.run("--env", env, "--json", "check").stdout)["findings"]
    assert [(f["key"], f["severity"]) for f in found if f["code"] == "SECRET_UNMASKABLE"] == [(key, "error")]
    ran = envfence_project.run("--env", env, "run", "show", env={"ENVFENCE_HOSTNAME": f"web-{env}-01"})
    assert ran.exit_code == 3 and "SECRET_UNMASKABLE" in ran.output and "ran with" not in ran.output, ran.output


def test_a_secret_inside_a_non_secret_value_names_both_keys_never_the_value(envfence_project):
    envfence_project.write(".env", "DB_PASSWORD=pw-canary-8812\nDATABASE_URL=postgres://u:pw-canary-8812@h/db\n")
    found = json.loads(envfence_project.run("--env", "prod", "--json", "check").stdout)["findings"]
    # A warning even in production: envfence masks it, and the practice is common.
    assert [f["severity"] for f in found if f["code"] == "SECRET_IN_VALUE"] == ["warning"]
    result = envfence_project.run("--env", "prod", "check")
    assert "DATABASE_URL (set in .env) is not secret but holds the value of DB_PASSWORD" in result.output
    assert "pw-canary-8812" not in result.output
    template = envfence_project.run("config", "template").output
    assert "DATABASE_URL=postgres://u:********@h/db" in template


def test_each_masks_several_texts_as_if_alone():
    redact = Redactor(["canary-each-1", "word"])
    texts = ["a canary-each-1", "", "word", "Bearer abcdefghijklmn", "swordfish"]
    assert redact.each(texts) == [redact(t) for t in texts] == ["a ********", "", "********", "Bearer ********", "swordfish"]


def test_a_command_printing_a_multi_line_secret_line_by_line_shows_none_of_it():
    """What the runner's command streaming does (tests/e2e/test_canary_sweep.py runs it through `envfence run`)."""
    import subprocess

    done = subprocess.run(["sh", "-c", 'echo "key: $(printf "%s" "$PEM_KEY" | head -n 1)"; printf "%s\\n" "$PEM_KEY"; echo end'],
                          env={"PEM_KEY": PEM, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    lines: list[str] = []
    stream = LineStream(Redactor([PEM]), lines.append)
    for line in done.stdout.splitlines():
        stream.feed(line)
    stream.close()
    assert lines == [f"key: {MASK}", MASK, "end"]


def test_a_multi_line_secret_inside_lines_with_text_around_it_and_crlf():
    lines: list[str] = []
    stream = LineStream(Redactor([PEM]), lines.append)
    body = PEM.split("\n")
    for line in [f"pem={body[0]}\r", *[b + "\r" for b in body[1:-1]], f"{body[-1]} (end)\r", "after"]:
        stream.feed(line)
    stream.close()
    assert "Zz" not in "".join(lines) and lines[-1] == "after" and lines[0].startswith("pem=")


def _more_forms(value: str) -> list[str]:
    import unicodedata

    import re

    lower_hex = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))
    return [
        lower_hex,  # %2f is as valid as %2F
        repr(value.encode()),  # repr of its bytes: \xc3\xa9
        json.dumps(json.dumps({"v": value})),  # a JSON document inside a JSON string
        unicodedata.normalize("NFD", value),  # é as e and a combining accent
        unicodedata.normalize("NFC", unicodedata.normalize("NFD", value)),
    ]


@pytest.mark.parametrize("secret", ["caf\u00e9/s3cr3t@x", "cafe\u0301/s3cr3t\"q", "emoji\U0001F600/x1"])
def test_lower_case_hex_bytes_repr_json_twice_and_either_unicode_form_are_masked(secret):
    import unicodedata

    redact = Redactor([secret])
    for shown in _more_forms(secret):
        text = redact(f"before {shown} after")
        assert MASK in text, (shown, text)
        for variant in (secret, unicodedata.normalize("NFC", secret), unicodedata.normalize("NFD", secret), "s3cr3t"):
            assert variant not in text, (shown, text)


def test_a_secret_in_lower_case_hex_inside_a_url_is_masked_and_reported(envfence_project):
    envfence_project.write(".env", "DB_PASSWORD=p@ss/w0rd-canary\nDATABASE_URL=postgres://u:p%40ss%2fw0rd-canary@h/db\n")
    shown = envfence_project.run("config", "show").output
    assert "postgres://u:********@h/db" in shown and "canary" not in shown
    result = envfence_project.run("--json", "check")
    assert [f["key"] for f in json.loads(result.stdout)["findings"] if f["code"] == "SECRET_IN_VALUE"] == ["DATABASE_URL"]
    assert "w0rd-canary" not in result.output


def test_a_plugins_broken_shape_is_left_out_with_a_warning_and_the_commands_still_work(envfence_project, envfence_plugin):
    class Shapes:
        @hookimpl
        def secret_shapes(self):
            return [SecretShape(r"(unclosed", "broken kind"), "not a shape", SecretShape(r"x*", "empty matches"),
                    SecretShape(r"\bacme_[a-z0-9]{10}\b", "service key")]

    envfence_plugin(Shapes())
    envfence_project.write(".env", "NOTE=hello acme_0123456789 world\nA_TOKEN=abcdefgh12\n")
    result = envfence_project.run("-q", "config", "show")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "NOTE=hello ******** world" in result.stdout
    assert "'broken kind' has an invalid pattern" in result.stderr and "must be an envfence.redaction.SecretShape" in result.stderr
    check = envfence_project.run("check")
    assert check.exception is None or isinstance(check.exception, SystemExit)
    assert "SECRET_IN_VALUE" in check.output and "abcdefgh12" not in check.output


def test_secrets_equal_to_true_the_environment_or_a_key_name_keep_json_valid_and_words_whole(envfence_project):
    envfence_project.write(".env", "A_TOKEN=true\nB_TOKEN=development\nC_TOKEN=HOST_NAME\nHOST_NAME=h\nFLAG=true\n"
                                   "LOG=automation_development.log\n")
    result = envfence_project.run("--json", "config", "show")
    data = json.loads(result.stdout)  # a masked "true" never turns a JSON boolean into text
    entries = {e["key"]: e for e in data["entries"]}
    assert entries["A_TOKEN"]["secret"] is True and entries["FLAG"]["value"] == MASK
    assert entries["LOG"]["value"] == "automation_development.log"  # inside a longer word: not masked
    assert entries["HOST_NAME"]["value"] == "h"
    check = envfence_project.run("--json", "check")
    found = {f["key"] for f in json.loads(check.stdout)["findings"] if f["code"] == "SECRET_IN_VALUE"}
    assert "FLAG" in found and "LOG" not in found


def test_a_line_stream_with_many_secrets_sharing_a_first_line_masks_the_one_printed():
    keys = [f"-----BEGIN KEY-----\nbody{i:04d}xyz\n-----END KEY-----" for i in range(500)]
    out: list[str] = []
    stream = LineStream(Redactor(keys), out.append)
    for line in ["hello", "x -----BEGIN KEY-----", "body0421xyz", "-----END KEY----- y", "bye"]:
        stream.feed(line)
    stream.close()
    assert out == ["hello", f"x {MASK} y", "bye"]



def test_detect_never_builds_the_automaton_and_audit_data_is_still_masked_when_read(envfence_project, monkeypatch):
    """The automaton's cost grows with the secrets: a command that masks nothing must not pay it."""
    import envfence.redaction as redaction

    envfence_project.write(".env", "DEV_API_TOKEN=canary-detect-88fQ/Zx\n")
    build = redaction._build

    def refuse(secrets):
        raise AssertionError("the redaction automaton was built")

    monkeypatch.setattr(redaction, "_build", refuse)
    result = envfence_project.run("detect")
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(redaction, "_build", build)
    session = envfence_project.session()
    session.audit("note.kept", text="token canary-detect-88fQ/Zx")
    (event,) = [e for e in session.audit_log.held if e.event == "note.kept"]
    assert dict(event.data) == {"text": f"token {MASK}"}


def test_threads_capturing_side_by_side_each_keep_their_own_output(capsys):
    """Webhook workers run function automations in threads: one's capture must not end or take another's."""
    import threading

    from envfence.redaction import redirected_output

    got: dict[str, list[str]] = {"a": [], "b": []}
    inside = threading.Barrier(2)

    def work(name: str, secret: str) -> None:
        with redirected_output(Redactor([secret]), stdout=got[name].append):
            inside.wait()
            print(f"{name} says {secret}")
            inside.wait()  # both capture until both printed
            print(f"{name} again {secret}")

    threads = [threading.Thread(target=work, args=("a", "canary-thread-a1")),
               threading.Thread(target=work, args=("b", "canary-thread-b2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("after both")
    assert got == {"a": [f"a says {MASK}", f"a again {MASK}"], "b": [f"b says {MASK}", f"b again {MASK}"]}
    out = capsys.readouterr().out
    assert out == "after both\n"


def test_a_run_that_cannot_open_its_session_hands_on_error_no_secret_shape(envfence_project, envfence_plugin):
    """The failure reaches trackers before any session (or its secrets) exists: shapes still mask it."""
    from envfence import hookimpl

    token = "patOpenFails00001." + "d00d" * 16  # Airtable-shaped, known to no configuration
    messages = []

    class Tracker:
        @hookimpl
        def on_error(self, session, failure):
            messages.append(failure.message)

    envfence_plugin(Tracker(), "tracker")
    result = envfence_project.run("--env", token, "run", "anything")
    assert result.exit_code != 0 and messages, result.output
    assert all(token not in m and "patOpenFails00001" not in m for m in messages), messages
    # Masked by its shape, or (a value not shaped like an environment name) never echoed at all.
    assert any(MASK in m or "not shown" in m for m in messages), messages


def test_a_thread_a_function_automation_starts_prints_masked(make_project, run_cli):
    secret = "canary-thread-Zp41xQ"
    jobs = (
        "import sys, threading\n"
        "def leak(ctx):\n"
        "    value = ctx.config.credential('API_TOKEN').reveal()\n"
        "    threads = [threading.Thread(target=print, args=('from a thread', value)),\n"
        "               threading.Thread(target=lambda: sys.stderr.write('to stderr ' + value + '\\n'))]\n"
        "    for t in threads:\n"
        "        t.start()\n"
        "    for t in threads:\n"
        "        t.join()\n"
    )
    root = make_project({"jobs.py": jobs, ".env": f"DEV_API_TOKEN={secret}\n"}, settings='[automations]\nleak = "jobs:leak"\n')
    ran = run_cli("run", "leak", cwd=root)
    assert ran.exit_code == 0, ran.output
    assert f"from a thread {MASK}" in ran.output and f"to stderr {MASK}" in ran.output
    assert secret not in ran.output
    logs = "".join(p.read_text() for p in (root / "var").rglob("*.log"))
    assert secret not in logs


def test_a_url_secret_masks_its_password_alone_as_written_and_decoded():
    from envfence.redaction import Redactor

    redact = Redactor(["postgresql://app:Pa%zz-w0rd%41@db.internal/envfence"])
    text = 'invalid percent-encoded token: "Pa%zz-w0rd%41"; decoded Pa%zz-w0rdA; encoded Pa%25zz-w0rd%2541'
    assert redact(text) == 'invalid percent-encoded token: "********"; decoded ********; encoded ********'
