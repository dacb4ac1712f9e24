"""The demo: the sample project's automation checked and run, no account, no network.

Run it with `make demo` from the repository root. Each step runs the real
`envfence` command line in this directory and prints what it printed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVFENCE = [sys.executable, "-m", "envfence"]
#: This laptop's own credentials: written beside the project, ignored by git, never committed.
LOCAL_CREDENTIALS = ".env.development.local"


def credentials(prefix: str) -> dict[str, str]:
    """The fake services' demo credentials for one environment (``DEV`` or ``PROD``).

    The tokens are the ones the emulated Airtable and HousecallPro accept; the
    webhook secret is derived from the prefix so that every run of the demo
    agrees with itself.
    """
    from envfence_builtins.fakes import airtable_emulator as airtable
    from envfence_builtins.fakes import housecallpro_emulator as hcp

    import hashlib

    dev = prefix == "DEV"
    return {
        f"{prefix}_AIRTABLE_API_KEY": airtable.DEMO_DEV_TOKEN if dev else airtable.DEMO_PROD_TOKEN,
        f"{prefix}_HOUSECALLPRO_API_KEY": hcp.DEMO_DEV_KEY if dev else hcp.DEMO_PROD_KEY,
        f"{prefix}_HOUSECALLPRO_WEBHOOK_SECRET": hashlib.sha256(f"acme-sync demo {prefix}".encode()).hexdigest()[:40],
    }


def write_local_credentials(root: Path = HERE) -> Path:
    """Put the development credentials in ``.env.development.local``, as a developer keeps them."""
    path = root / LOCAL_CREDENTIALS
    lines = "".join(f"{key}={value}\n" for key, value in credentials("DEV").items())
    path.write_text("# This laptop's development credentials (the demo's fakes accept them); ignored by git.\n" + lines)
    path.chmod(0o600)
    return path


def step(title: str, *args: str, env: dict[str, str] | None = None, expect: int = 0) -> None:
    """Run one envfence command and show it as a user would type it."""
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m== {title}\033[0m" if bold else f"\n== {title}")
    # Credentials given to a step are shown masked, as envfence shows them.
    shown = " ".join(f"{k}={'********' if k.endswith(('_KEY', '_TOKEN', '_SECRET')) else v}" for k, v in (env or {}).items())
    print(f"$ {shown + ' ' if shown else ''}envfence {shlex.join(args)}", flush=True)
    proc = subprocess.run([*ENVFENCE, *args], cwd=HERE, env={**os.environ, **(env or {})})
    if proc.returncode != expect:
        sys.exit(f"demo step failed: expected exit {expect}, got {proc.returncode}")


def emulator(service: str) -> tuple[subprocess.Popen, str]:
    """Start `envfence emulate SERVICE` on a free port; its first line holds the URL."""
    proc = subprocess.Popen([*ENVFENCE, "emulate", service, "--port", "0"], cwd=HERE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        sys.exit(f"demo step failed: the {service} emulator did not start")
    print(f"  {line.strip()}")
    return proc, line.split("listening on ")[1].split()[0]


def credential_checks() -> None:
    """`envfence check`, offline, then live against emulated Airtable and HousecallPro."""
    step("Credentials and settings checked offline", "check")
    print("\n== The services, emulated on 127.0.0.1 (no account, no network)")
    print("$ envfence emulate airtable --port 0 &  envfence emulate housecallpro --port 0 &", flush=True)
    servers = []
    try:
        airtable, airtable_url = emulator("airtable")
        servers.append(airtable)
        hcp, hcp_url = emulator("housecallpro")
        servers.append(hcp)
        urls = {"AIRTABLE_ENDPOINT_URL": airtable_url, "HOUSECALLPRO_API_URL": hcp_url}
        step("Live: the tokens are accepted, the base and its tables are there", "check", "--live", env=urls)
        # A revoked token: well-formed, so only the live check can tell.
        revoked = "patRevokedToken01." + "0123456789abcdef" * 4
        step(
            "Live, with a revoked Airtable token: the finding says what to do",
            "check", "--live", env={**urls, "DEV_AIRTABLE_API_KEY": revoked}, expect=1,
        )
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    # The demo's host pretends to be a developer's laptop, so detection and
    # the guards behave the same on every machine.
    base = {"ENVFENCE_HOSTNAME": "dev-laptop-07"}
    os.environ.update(base)
    os.environ.pop("ENVIRONMENT", None)
    write_local_credentials()
    print(f"(this laptop's development credentials are in {LOCAL_CREDENTIALS}, which git ignores; "
          "production's are given to the production steps in their environment, as a secret manager would)")
    # 1. Where am I, and what does this environment see?
    step("Which environment is this, and why?", "detect")
    step("Production, as automation reads it", "--env", "prod", "--json", "detect")
    step("The development configuration, with provenance and masked secrets", "config", "show", "--explain")
    step("The same project as production sees it", "--env", "production", "config", "show", "--explain",
         env=credentials("PROD"))
    # 2. Is it safe to run? Credentials checked offline, then live.
    credential_checks()
    # 3. Isolation: the demo starts from a fresh checkout's state (var/ is not in git).
    shutil.rmtree(HERE / "var", ignore_errors=True)
    step("Create the development tree: CSV stages, logs, backups, the audit trail", "init")
    step("Production's tree is owner-only", "--env", "prod", "init")
    # 4. The main job: the automation listed, dry-run, run, and refused where it does not belong.
    runs_demo()
    # 5. The record of what happened.
    step("The development audit trail: detection, configuration files with their hashes, the runs",
         "audit", "show", "--event", "environment.detected", "--event", "config.loaded", "--event", "run.*")
    step("The refused production run is on production's trail", "--env", "prod", "audit", "show", "--event", "run.blocked")
    step("The trail's hash chain is intact", "audit", "verify")
    step("Cleanup touches this environment's tree only", "clean", "--older-than", "30d", "--dry-run")
    step("Advice from the history and the settings, with the setting that acts", "advise", "--all-environments")
    # 6. Under the hood: every behaviour above is a plugin.
    step("Every hook, and the plugins that answer it in call order", "plugins", "--hooks")
    step("Each hook call traced: plugins, timings, who answered", "-q", "detect", env={"ENVFENCE_TRACE_PLUGINS": "1"})
    print("\ndemo finished")


def runs_demo() -> None:
    """The sample automation: listed, dry-run, run against the emulated Airtable, refused in production."""
    from envfence_builtins.fakes.airtable_emulator import DEMO_DEV_BASE, DEMO_PROD_BASE, FakeAirtable
    from envfence_builtins.operations.airtable_status import STATUS_FIELDS

    with FakeAirtable() as airtable:
        for base in (DEMO_DEV_BASE, DEMO_PROD_BASE):
            airtable.add_table(base, "Runs", STATUS_FIELDS)
        os.environ["AIRTABLE_ENDPOINT_URL"] = airtable.url
        print(f"\n(the emulated Airtable listens on {airtable.url}; AIRTABLE_ENDPOINT_URL points there)")
        step("The automations, where they may run, and when they run next", "-v", "list")
        step("A dry run: the plan, and nothing written", "run", "import-jobs", "--dry-run")
        step("The real run in development: the CSV goes through its stages into the sandbox base", "run", "import-jobs")
        step("Run it again: an upsert on Name updates the same records, it adds no copies", "run", "import-jobs")
        jobs = [r["fields"]["Name"] for r in airtable.records(DEMO_DEV_BASE, "Jobs")]
        print(f"(the emulated sandbox base now holds Jobs {', '.join(jobs)}; the live base was not touched: "
              f"{len(airtable.records(DEMO_PROD_BASE, 'Jobs'))} records)")
        step("Production on this developer laptop is refused, with the reason and the way to override",
             "--env", "production", "run", "import-jobs", env=credentials("PROD"), expect=3)
        step("The run history of development: what each run did (records synced) and where its time went",
             "-v", "status")
        runs = airtable.records(DEMO_DEV_BASE, "Runs")
        print(f"(and the status table in the sandbox base holds {len(runs)} run record(s))")


if __name__ == "__main__":
    main()
