"""The suite's isolation from the machine running it, and short names for the test kit's fixtures.

Every fixture the tests use is envfence's public test kit,
:mod:`envfence.testing.pytest_plugin`, and the fakes' fixtures
(:mod:`envfence_builtins.fakes.pytest_fixtures`), opted into here as any
plugin author's suite does: the tests use what plugin authors use. The short
names (``make_project``, ``run_cli``, ``recorded``, ``audit_events``,
``fake_airtable``, ``fake_housecallpro``) are this suite's own aliases of
the ``envfence_``-prefixed fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

def _kit_registered_by_an_old_install() -> bool:
    """True in a venv installed while the kit still registered itself (``pytest11``): pytest has loaded it already."""
    from importlib.metadata import entry_points

    return any(ep.value == "envfence.testing.pytest_plugin" for ep in entry_points(group="pytest11"))


# envfence's test kit is opted into, never installed into every suite; pytester tests that kit itself.
pytest_plugins = [
    "pytester",
    *([] if _kit_registered_by_an_old_install() else ["envfence.testing.pytest_plugin"]),
    "envfence_builtins.fakes.pytest_fixtures",
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "heavy: a test of many seconds (a fleet of processes, a 100,000-run history): started before the others")


def pytest_collection_modifyitems(config, items):
    """Heavy tests first, spread over the workers, so a parallel run does not end waiting on one long test alone.

    pytest-xdist's work-stealing hands worker k the k-th of N contiguous shares
    of this list at the start (each the rest divided by the workers left), and
    later moves tests from the end of a busy worker's share to an idle one.
    So each share starts with its heavy tests: whole modules dealt out in
    turn (a module's shared set-up is then made by one worker, not waited for
    by several), the rest of the share in collection order.
    """
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    rest = [item for item in items if not item.get_closest_marker("heavy")]
    workers = max(1, getattr(config, "workerinput", {}).get("workercount", 1))
    modules: dict[str, list] = {}
    for item in heavy:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    shares: list[list] = [[] for _ in range(workers)]
    for n, module in enumerate(modules.values()):
        shares[n % workers] += module
    ordered, left = [], len(items)
    for k, share in enumerate(shares):
        size = max(len(share), left // (workers - k))
        taken, rest = rest[: size - len(share)], rest[size - len(share):]
        ordered += share + taken
        left -= len(share) + len(taken)
    items[:] = ordered + rest


def _alias(name: str):
    """A fixture ``name`` that is the test kit's ``envfence_<name>``."""

    @pytest.fixture(name=name)
    def alias(request):
        return request.getfixturevalue(f"envfence_{name}")

    alias.__doc__ = f"This suite's name for ``envfence_{name}``."
    return alias


for _name in ("make_project", "run_cli", "recorded", "audit_events", "fake_airtable", "fake_housecallpro"):
    globals()[_name] = _alias(_name)


#: Variables that would let the machine running the tests leak into them.
CONTROL_VARIABLES = (
    "ENVIRONMENT",
    "ENVFENCE_ROOT",
    "ENVFENCE_HOSTNAME",
    "ENVFENCE_PLUGINS",
    "ENVFENCE_DISABLE_PLUGINS",
    "ENVFENCE_TRACE_PLUGINS",
    "ENVFENCE_STRICT_PLUGINS",
    "ENVFENCE_PLUGIN_CACHE",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def clean_process(monkeypatch):
    """Each test starts with no environment hints and a host whose name says nothing."""
    import os

    from envfence.pipeline import reset_session
    from envfence.plugins import reset_default_managers
    from envfence.testing.project import LEAKY_NAMES, LEAKY_PREFIXES

    # The developer's shell (DEV_*, PROD_* credentials) must not reach a test's project.
    for var in CONTROL_VARIABLES + tuple(n for n in os.environ if n in LEAKY_NAMES or n.startswith(LEAKY_PREFIXES)):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "build-box-01")
    # The machine's own name would tighten every guard (a stand-in may only
    # tighten): a test's host is the one it names. Tests of the stand-in set
    # the system's name apart (the seam, or a new UTS namespace).
    import envfence.opening

    monkeypatch.setattr(envfence.opening, "system_hostname", lambda: os.environ.get("ENVFENCE_HOSTNAME") or "build-box-01")
    reset_default_managers()
    reset_session()
    yield
    reset_default_managers()
    reset_session()


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs where root may mount one; None otherwise."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # lazily: a log sink may hold a file open


@pytest.fixture
def fill_disk():
    """``fill_disk(directory, leave=0)``: fill the disk holding ``directory``, leaving ``leave`` bytes free."""
    import errno

    def fill(directory, leave: int = 0) -> None:
        with open(directory / "filler", "wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            out.truncate(max(0, out.tell() - leave))

    return fill


@pytest.fixture
def chromium() -> str:
    """The path of a headless-capable Chromium (Debian's package), or a skip saying how to get one."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed: apt-get install -y chromium (or put google-chrome on PATH)")


#: The demo project `make demo` runs.
DEMO_PROJECT = Path(__file__).resolve().parents[1] / "contrib" / "demo-project"


@pytest.fixture(scope="session")
def demo_script():
    """``contrib/demo-project/demo.py`` as a module: the credentials it gives and how it writes them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("envfence_demo", DEMO_PROJECT / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def run_once(tmp_path_factory, worker_id):
    """``run_once(name, produce)``: what ``produce()`` returns (JSON), made by one test process of the run for all.

    pytest-xdist's workers each hold their own session; an expensive set-up
    whose result is plain data (a wheel's path, probes' answers) is made by the
    first worker that asks, under a lock, and read by the others from the
    run's shared temporary directory.
    """
    import fcntl
    import json

    def once(name: str, produce):
        if worker_id == "master":  # not distributed: this process is the only one
            return produce()
        shared = tmp_path_factory.getbasetemp().parent / f"once-{name}.json"
        with open(f"{shared}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not shared.exists():
                shared.write_text(json.dumps(produce()))
            return json.loads(shared.read_text())

    return once


@pytest.fixture(scope="session")
def envfence_wheel(tmp_path_factory, run_once) -> Path:
    """The wheel `make dist` builds, built once per test run into a folder of its own."""
    import subprocess
    import sys

    def build() -> str:
        wheels = tmp_path_factory.mktemp("wheels")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--wheel-dir", str(wheels), str(Path(__file__).resolve().parents[1])], check=True, capture_output=True)
        (built,) = wheels.glob("envfence-*.whl")
        return str(built)

    return Path(run_once("envfence-wheel", build))


@pytest.fixture(scope="session")
def demo_checkout_at(demo_script):
    """``copy(target)``: the demo project as a fresh checkout has it, at ``target``, with the laptop's credentials written."""
    import shutil

    def copy(target: Path) -> Path:
        shutil.copytree(DEMO_PROJECT, target, ignore=shutil.ignore_patterns("var", "__pycache__", ".env*.local"))
        demo_script.write_local_credentials(target)
        return target

    return copy


@pytest.fixture
def demo_checkout(tmp_path, demo_checkout_at):
    """A copy of the demo project in this test's directory (see ``demo_checkout_at``)."""
    return demo_checkout_at(tmp_path / "demo")


@pytest.fixture
def rewrite_archive():
    """Rewrite a backup archive's members in place, as someone holding the archive (but no key) could.

    ``change(name, data)`` returns ``(name, data)`` for each member, a new name to rename
    it, or ``(None, data)`` to drop it.
    """
    import io
    import tarfile

    def rewrite(archive, change):
        with tarfile.open(archive, "r:gz") as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(archive, "w:gz") as tar:
            for member, data in members:
                renamed, data = change(member.name, data)
                if renamed is None:
                    continue
                member.name, member.size = renamed, len(data)
                tar.addfile(member, io.BytesIO(data))

    return rewrite
