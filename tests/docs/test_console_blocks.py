"""Every ``console`` block in docs/ and the README is run, and what it shows is what the program prints.

Each ``$ `` line of a block is run by bash in a project (the demo project,
copied, unless the comment ``<!-- console: SETUP -->`` above the block names
another setup below), with ``envfence`` of this checkout first on ``PATH``,
and stand-ins for ``crontab``
and ``kubectl``. The lines after a command are its expected output (stdout
and stderr as a terminal shows them):

- volatile parts are normalised on both sides: the project's path reads
  ``/srv/sync``, times, snapshot, run and error ids, hex digests and the
  version become placeholders, runs of spaces one space;
- ``...`` inside a line stands for any text, a line of its own for any lines;
- a command's exit code is 0, or the ``exit N`` its comment states.

A block that shows no output at all (a list of commands) is run for the exit codes.

A snapshot id a block prints and a later command names (by a prefix) is
replaced by the one this run printed.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
DOC_ROOT = "/srv/sync"
BLOCK = re.compile(r"(?:<!-- console: (?P<setup>[\w-]+) -->\n)?```console\n(?P<body>.*?)```", re.S)
SNAPSHOT_ID = re.compile(r"(?<!\d)\d{8}T\d{4,}(?:\.\d+)?Z?")
VOLATILE = [
    (re.compile(r"\bd-\d{8}T\d{6}-[0-9a-f]{4}\b"), "d-<id>"),
    (re.compile(r"\b\d+\.\d+ [KMGTPE]iB\b"), "<size>"),  # a disk's free space (a whole "52 MiB" stays for "..." to match)
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z| [A-Z]{3,4})?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b"), "<time>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "<date>"),
    (re.compile(r"(?<!\d)\d{8}T\d{6}\.?\d*Z\b"), "<id>"),
    (re.compile(r"\b(run|evt|inc)-[0-9a-z-]{6,}"), "<id>"),
    (re.compile(r"\[E[0-9a-f]{8}\]"), "[<id>]"),
    (re.compile(r"\b[0-9a-f]{32,64}\b"), "<hex>"),
    (re.compile(r"\b\d+\.\d+\.\d+\b"), "<version>"),
    (re.compile(r"\b\d+\.\d+s\b"), "<seconds>"),
    (re.compile(r"[ \t]+"), " "),
]


#: Pages whose blocks have no setup yet, and what they need: each block is reported as an expected failure
#: (not run) until its page leaves this list. A page not listed here is run, block by block.
PENDING: dict[str, str] = {}


def blocks() -> list[tuple[str, str, str]]:
    """(where, setup, body) of every console block."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text[: match.start("body")].count("\n")
            found.append((f"{page.relative_to(REPO)}:{line}", match["setup"] or "demo", match["body"]))
    return found


def commands(body: str) -> list[tuple[str, list[str]]]:
    """The block's commands, each with the lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(command, trimmed(shown)) for command, shown in steps]


def trimmed(lines: list[str]) -> list[str]:
    """``lines`` without the blank lines that end them (a block's blank line between two commands)."""
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def normalise(text: str) -> str:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text.strip()


def line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in normalise(expected).split("...")) + r"\Z")


def matches(expected: list[str], actual: list[str]) -> bool:
    """``actual`` is what ``expected`` shows, with ``...`` lines standing for any lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and bool(line_pattern(expected[0]).match(actual[0])) and matches(expected[1:], actual[1:])


def stated_exit(command: str) -> int:
    stated = re.search(r"#.*\bexit (\d)\b", command)
    return int(stated[1]) if stated else 0


# --- setups: the project each block runs in ---------------------------------------------------------------

def seed_runs(root: Path, env: str, automation: str, rows: list[tuple[float, float, str, dict[str, float]]]) -> None:
    """Past runs of ``automation``: (hours ago, duration, status, job metrics), recorded as the history plugin records runs."""
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env, environ={"ENVFENCE_HOSTNAME": "web-prod-01"})
    now = _dt.datetime.now(_dt.timezone.utc)
    for n, (hours_ago, duration, status, measured) in enumerate(rows):
        started = now - _dt.timedelta(hours=hours_ago)
        outcome = RunOutcome(
            f"run-doc-{n}", automation, env, status, 0 if status == "succeeded" else 1, started,
            started + _dt.timedelta(seconds=duration), error_class=None if status == "succeeded" else "network",
            metrics={"host": "web-prod-01", "cpu_seconds": 0.1, "peak_memory_kb": 1000, **measured},
        )
        history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


def demo(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The demo project as a fresh checkout has it, on a development laptop."""
    return {}


def with_token(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """A token in the shell, as a password manager's command line leaves it."""
    return {"TOKEN": "patTokenFromTheVault.0123456789abcdef"}


def services(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The fake Airtable and HousecallPro on 127.0.0.1, where the demo's automation reaches them."""
    airtable, hcp = request.getfixturevalue("fake_airtable"), request.getfixturevalue("fake_housecallpro")
    return {"AIRTABLE_ENDPOINT_URL": airtable.url, "HOUSECALLPRO_API_URL": hcp.url}


def ten_lines(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The project of docs/index.md: its envfence.toml, a script, no configuration yet."""
    import shutil

    shutil.rmtree(root)
    root.mkdir()
    (root / "envfence.toml").write_text(
        '[automations.import-jobs]\nrun = "python import_jobs.py"\nenvironments = ["development", "production"]\n'
        'settings = ["JOBS_CSV"]\n'
    )
    (root / "import_jobs.py").write_text('import os\nprint("importing", os.environ["JOBS_CSV"])\n')
    return {}


def quickstart(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The project of docs/quickstart.md on a machine whose name tells nothing (``ENVFENCE_HOSTNAME`` unset)."""
    ten_lines(root, request)
    (root / "envfence.toml").write_text(
        '[environments.production]\naliases = ["prod", "live"]\nhostname_patterns = ["prod", "production"]\n\n'
        '[environments.staging]\nbased_on = "production"\nprefix = "STG"\naliases = ["stage"]\n'
    )
    (root / ".env").write_text("APP_NAME=sync\n")
    (root / ".env.production").write_text("AIRTABLE_BASE_ID=appLiveBase000001\n")
    return {"ENVFENCE_HOSTNAME": ""}


OPS_SETTINGS = """
[environments.development]
hostname_patterns = ["laptop"]

[environments.production]
hostname_patterns = ["prod"]

[automations.sync]
run = "jobs:sync"
environments = ["development", "production"]
schedule = { production = "0 2 * * *" }

[schedule]
image = "registry.example/sync:1.4"

[thresholds."*".production]
max_error_rate = 0.1

[thresholds.sync.production]
max_duration = 600
min_records_synced = 1
"""

OPS_JOBS = """
def sync(ctx):
    with ctx.step("fetch"):
        pass
    with ctx.step("write"):
        pass
    ctx.metric("records_synced", 412, unit="records")
    ctx.metric("rejected", 0)
"""


def ops(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """docs/operations.md's project on a production host: one automation, ``sync``, run at 02:00 in production."""
    ten_lines(root, request)
    # The machine running the tests is enrolled, as an operator enrolls a production host whose name tells nothing.
    enrolled = f'\n[hostname.production]\nhosts = ["{socket.gethostname()}"]\n'
    (root / "envfence.toml").write_text(OPS_SETTINGS + enrolled)
    (root / "jobs.py").write_text(OPS_JOBS)
    return {"ENVFENCE_HOSTNAME": "web-prod-01"}


def ops_ran(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The operations project after a run of ``sync`` in production, and a production key."""
    environ = ops(root, request)
    for command in (["run", "sync"], ["secret", "keygen"]):
        subprocess.run([sys.executable, "-m", "envfence", "--env", "production", *command], cwd=root,
                       env={**os.environ, **environ}, check=True, capture_output=True)
    return environ


def ops_missed(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The operations project whose production ``sync`` last ran 50 hours ago (so it missed a 02:00 firing)."""
    environ = ops(root, request)
    synced = {"business": {"records_synced": {"value": 412, "unit": "records"}}}
    seed_runs(root, "production", "sync", [(60.0 - n, 12.5, "failed" if n == 0 else "succeeded", synced) for n in range(10)])
    seed_runs(root, "development", "sync", [(0.5, 3.0, "succeeded", {})])
    return environ


def ops_trend(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The operations project after 30 daily runs in production: durations growing, records synced falling to 2."""
    environ = ops(root, request)
    settings = root / "envfence.toml"
    settings.write_text(settings.read_text().replace("max_duration = 600", "max_duration = 28"))
    rows = [(24.0 * (30 - d) + 1, 10.0 + 0.5 * d, "succeeded", {"business": {"records_synced": {"value": 101 if d < 26 else 2, "unit": "records"}}})
            for d in range(31)]
    seed_runs(root, "production", "sync", rows)
    return environ


def captured_delivery(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """docs/webhooks.md's own route settings, and one HousecallPro delivery captured 412 s ago in ``delivery.http``."""
    import json
    import time

    from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

    ten_lines(root, request)
    secret = "hcpDocsSecret-7f3a9c1e5b2d8f4a6c0e"
    page = (REPO / "docs" / "webhooks.md").read_text(encoding="utf-8")
    (root / "envfence.toml").write_text(next(b for b in re.findall(r"```toml\n(.*?)```", page, re.S) if "/housecallpro" in b))
    (root / "acme_sync").mkdir()
    (root / "acme_sync" / "__init__.py").write_text("")
    (root / "acme_sync" / "jobs.py").write_text("def import_job(ctx):\n    pass\n")
    body = json.dumps({"id": "hcp_2c1f9e7a", "event": "job.created", "company_id": "c_1", "job": {"id": "job_1"}}).encode()
    stamp = str(int(time.time()) - 412)
    head = (f"POST /housecallpro HTTP/1.1\r\nHost: hooks.example\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\napi-timestamp: {stamp}\r\n"
            f"api-signature: {sign_housecallpro(secret, body, stamp)}\r\n\r\n")
    (root / "delivery.http").write_bytes(head.encode() + body)
    return {"PROD_HOUSECALLPRO_WEBHOOK_SECRET": secret}


# docs/changes.md: a project on Ada's laptop (the machine's own name reads as laptop-07), whose configuration
# is carried by a migration, kept in git and deployed. Commits are dated, so their ids are the page's.
ADA = {"USER": "ada", "LOGNAME": "ada", "ENVFENCE_HOSTNAME": ""}
CHANGES_ENV = "DATABASE=db.internal/sync\nLOG_LEVEL=info\n"
UNWELL = '\n[health]\nmin_free_disk = "100000GB"   # more than any disk has: the health check is CRITICAL\n'


def changes_project(root: Path, env_file: str = CHANGES_ENV, migration: bool = True) -> None:
    """A fresh project: ``.env``, and the page's own migration ``0003_rename_hcp_token.toml`` when ``migration``."""
    import shutil

    shutil.rmtree(root)
    root.mkdir()
    (root / "envfence.toml").write_text("# the sync project's settings\n")
    (root / ".gitignore").write_text("var/\n.envfence/\n.env.*.local\n")
    (root / ".env").write_text(env_file)
    if migration:
        add_migration(root)


def add_migration(root: Path) -> None:
    """The page's own migration, ``migrations/0003_rename_hcp_token.toml``."""
    page = (REPO / "docs" / "changes.md").read_text(encoding="utf-8")
    (root / "migrations").mkdir()
    (root / "migrations" / "0003_rename_hcp_token.toml").write_text(re.findall(r"```toml\n(.*?)```", page, re.S)[0])


def git(root: Path, *args: str, day: int = 1) -> None:
    """``git ARGS`` as Ada on day ``day`` of November 2026, whatever the machine's git settings."""
    stamp = f"2026-11-{day:02d}T09:00:00+00:00"
    environ = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
               "GIT_COMMITTER_EMAIL": "ada@example.org", "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=root, env=environ, check=True, capture_output=True)


def commit(root: Path, message: str, day: int) -> None:
    """Everything committed by Ada on day ``day`` of November 2026 (a repository made first when there is none)."""
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main", ".")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message, day=day)


def envfence_as_ada(root: Path, *args: str, check: bool = True) -> None:
    """``envfence ARGS`` run by Ada in the project."""
    environ = {**{k: v for k, v in os.environ.items() if k != "ENVFENCE_HOSTNAME"}, "USER": "ada", "LOGNAME": "ada"}
    subprocess.run([sys.executable, "-m", "envfence", *args], cwd=root, env=environ, check=check, capture_output=True)


def migrations(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """A shared ``.env`` and production's token on the laptop, behind migration 0003."""
    changes_project(root)
    (root / ".env.production.local").write_text("PROD_HCP_TOKEN=hcpLiveToken0123456789abc\n")
    return dict(ADA)


def migration_clash(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """A ``.env`` that sets both the old and the new name of the key migration 0003 renames."""
    changes_project(root, "DATABASE=db.internal/sync\nHCP_TOKEN=hcpOldToken0123456789\nHCP_API_KEY=hcpNewKey0123456789ab\n")
    return dict(ADA)


def release(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The project committed and tagged ``v2.4.0``."""
    changes_project(root, migration=False)
    commit(root, "configuration", 2)
    git(root, "tag", "v2.4.0")
    return dict(ADA)


def release_unwell(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """``v2.4.0`` deployed, then a commit turning on debug logging and asking health for more disk than there is."""
    environ = release(root, request)
    envfence_as_ada(root, "deploy", "--reason", "release 2.4")
    (root / ".env").write_text(CHANGES_ENV.replace("LOG_LEVEL=info", "LOG_LEVEL=debug"))
    with (root / "envfence.toml").open("a") as settings:
        settings.write(UNWELL)
    commit(root, "debug logging", 3)
    return environ


def release_rolled_back(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The unwell commit's deployment made, failed and rolled back."""
    environ = release_unwell(root, request)
    envfence_as_ada(root, "deploy", check=False)
    return environ


def changes_over_time(root: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Configuration committed, migrated by 0003 and committed, then debug logging deployed from the working tree."""
    changes_project(root, migration=False)
    commit(root, "configuration", 2)
    add_migration(root)
    envfence_as_ada(root, "config", "migrate")
    commit(root, "migration 0003", 3)
    git(root, "tag", "v2.4.0")
    env_file = root / ".env"
    env_file.write_text(env_file.read_text().replace("LOG_LEVEL=info", "LOG_LEVEL=debug"))
    envfence_as_ada(root, "deploy", "--reason", "release 2.4")
    return dict(ADA)


SETUPS: dict[str, Callable[[Path, pytest.FixtureRequest], dict[str, str]]] = {
    "migrations": migrations, "migration-clash": migration_clash, "release": release, "release-unwell": release_unwell,
    "release-rolled-back": release_rolled_back, "changes-over-time": changes_over_time,
    "demo": demo, "with-token": with_token, "services": services, "ten-lines": ten_lines, "quickstart": quickstart,
    "ops": ops, "ops-ran": ops_ran, "ops-missed": ops_missed, "ops-trend": ops_trend,
    "captured-delivery": captured_delivery,
}


# --- running a block ---------------------------------------------------------------------------------------

@pytest.fixture
def stand_ins(tmp_path) -> Path:
    """``crontab`` keeping its table in a file, ``kubectl`` reading the manifest it is given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "crontab.txt"
    (bin_dir / "crontab").write_text(
        "#!/bin/sh\n"
        f'f={table}\n'
        'case "$1" in\n'
        '  -l) if [ -f "$f" ]; then cat "$f"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;\n'
        '  -) cat > "$f" ;;\n'
        '  *) echo "crontab stand-in: unsupported $*" >&2; exit 2 ;;\n'
        "esac\n"
    )
    # kubectl apply -f - reads a JSON List and names each object it applies; anything else is an error.
    (bin_dir / "kubectl").write_text(
        f"#!{sys.executable}\nimport json, sys\nassert sys.argv[1:] == ['apply', '-f', '-'], sys.argv\n"
        "for item in json.load(sys.stdin)['items']:\n"
        "    assert item['apiVersion'] == 'batch/v1' and item['kind'] == 'CronJob', item\n"
        "    print(f\"cronjob.batch/{item['metadata']['name']} configured\")\n"
    )
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    return bin_dir


@pytest.fixture
def pushgateway() -> Iterator[str]:
    """A Pushgateway stand-in on 127.0.0.1 that takes what is pushed (PUT or POST) and answers 200."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()

        do_POST = do_PUT

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def cases() -> list:
    """Every block as a test case; a page in :data:`PENDING` as expected failures that are not run."""
    return [
        pytest.param(*block, id=block[0], marks=[pytest.mark.xfail(run=False, reason=PENDING[page])] if page in PENDING else [])
        for block in blocks()
        for page in [block[0].rsplit(":", 1)[0]]
    ]


@pytest.mark.parametrize("where,setup,body", cases())
def test_console_block_shows_what_the_program_prints(where, setup, body, tmp_path, demo_checkout_at, stand_ins, pushgateway,
                                                      request):
    root = demo_checkout_at(tmp_path / "sync")
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"},
        "PATH": f"{stand_ins}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200", "ENVFENCE_HOSTNAME": "laptop-07",
    }
    environ.update(SETUPS[setup](root, request))
    if not environ["ENVFENCE_HOSTNAME"]:
        del environ["ENVFENCE_HOSTNAME"]
    ids: dict[str, str] = {}
    # Places outside the test's directory that the docs name stand for places inside it.
    places = {"/mnt/offsite": str(tmp_path / "offsite"), "/var/lib/node_exporter": str(tmp_path / "node_exporter"),
              "http://pushgateway:9091": pushgateway}
    steps = commands(body)
    shows_output = any(expected for _, expected in steps)
    for command, expected in steps:
        for shown, real in ids.items():
            command = SNAPSHOT_ID.sub(lambda m: real[: len(m[0])] if shown.startswith(m[0]) else m[0], command)
        for outside, inside in places.items():
            command = command.replace(outside, inside)
        proc = subprocess.run(["bash", "-c", command], cwd=root, env=environ, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        shown_text = proc.stdout
        for outside, inside in places.items():
            shown_text = shown_text.replace(inside, outside)
        shown_text = shown_text.replace(str(root), DOC_ROOT)
        if "ENVFENCE_HOSTNAME" not in environ:  # the machine's own name reads as the docs' laptop
            shown_text = re.sub(rf"(?<![\w.-]){re.escape(socket.gethostname())}(?![\w.-])", "laptop-07", shown_text)
        actual = trimmed([normalise(line) for line in shown_text.splitlines()])
        assert proc.returncode == stated_exit(command), f"{where}: `{command}` exited {proc.returncode}:\n{proc.stdout}"
        assert matches(expected, actual) or not shows_output, f"{where}: `{command}` printed:\n{shown_text}\nthe doc shows:\n" + "\n".join(expected)
        for doc_line, real_line in zip(expected, shown_text.splitlines()):
            for shown, real in zip(SNAPSHOT_ID.findall(doc_line), SNAPSHOT_ID.findall(real_line)):
                ids[shown] = real


def test_the_matcher_tells_a_different_output_apart():
    """The comparison can fail: a changed word, a missing line, an extra line."""
    assert matches(["host laptop-07 ...", "...", "root /srv/sync"], ["host laptop-07 [x]", "a", "b", "root /srv/sync"])
    assert not matches(["host laptop-07 ..."], ["host web-prod-01 [x]"])
    assert not matches(["a", "b"], ["a"])
    assert not matches(["a"], ["a", "b"])
    assert normalise("snapshot 20261206T170628534626Z at 2026-12-06T17:06:28.545886+00:00") == "snapshot <id> at <time>"


def readme_tour() -> list[str]:
    """The envfence command lines of the README's ``sh`` blocks (inside ``eval "$(...)"`` too), comments dropped."""
    import shlex

    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r'^eval "\$\((.*)\)"', r"\1", line.strip())
            if line.startswith("envfence "):
                lines.append(shlex.join(shlex.split(line, comments=True)))
    return lines


@pytest.mark.parametrize("line", readme_tour())
def test_every_command_line_the_readme_shows_is_one_envfence_takes(line, run_cli, tmp_path):
    """Each command and option of the README's tour exists (``--help`` makes the parse run nothing)."""
    import shlex

    args = shlex.split(line)[1:]
    if "--" in args:  # `exec -- CMD`: what follows belongs to the command run
        args = args[: args.index("--")]
    result = run_cli(*args, "--help", cwd=tmp_path)
    assert result.exit_code == 0, f"README: `{line}`:\n{result.output}"
    assert "Usage: " in result.output


def test_a_mistyped_readme_line_would_fail(run_cli, tmp_path):
    assert run_cli("config", "shw", "--help", cwd=tmp_path).exit_code == 2
    assert run_cli("status", "--compair", "--help", cwd=tmp_path).exit_code == 2
