"""A throwaway envfence project for tests: files, variables, a hostname, the CLI."""

from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from click.testing import Result

    from envfence.pipeline import Session

#: Variables of the developer's shell that would change what a test sees.
LEAKY_PREFIXES = ("ENVFENCE_", "DEV_", "PROD_")
LEAKY_NAMES = ("ENVIRONMENT",)

#: A hostname none of the default patterns match, so the host has no class.
NEUTRAL_HOSTNAME = "unclassified-host"


@contextlib.contextmanager
def system_hostname_as(name: str) -> Iterator[None]:
    """Make the system's own hostname read as ``name`` while the block runs (in this process).

    A stand-in name (``ENVFENCE_HOSTNAME``) only tightens the guards: the
    system's own name applies too. A test that pretends to be on a host
    names both, so that the machine running the tests does not leak in.
    """
    from envfence import opening

    saved = opening.system_hostname
    opening.system_hostname = lambda: name
    try:
        yield
    finally:
        opening.system_hostname = saved


class Project:
    """A project directory with its own variables and hostname.

    ``environ`` and ``hostname`` apply to every :meth:`run` and
    :meth:`session`, on top of the process environment (which the pytest
    fixture has cleared of ``ENVIRONMENT``, ``ENVFENCE_*``, ``DEV_*`` and
    ``PROD_*``).
    """

    def __init__(self, path: Path, hostname: str = NEUTRAL_HOSTNAME, environ: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.hostname = hostname
        self.environ: dict[str, str] = dict(environ or {})

    def __repr__(self) -> str:
        return f"<Project {self.path} hostname={self.hostname!r}>"

    def write(self, name: str, text: str = "") -> Path:
        """Write ``text`` (dedented) to ``name`` under the project, creating folders."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def settings(self, text: str) -> Path:
        """Write the project's ``envfence.toml``."""
        return self.write("envfence.toml", text)

    def setenv(self, **values: str) -> None:
        """Set variables for the project's runs and sessions."""
        self.environ.update(values)

    def _environ(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {"ENVFENCE_HOSTNAME": self.hostname, **self.environ, **(extra or {})}

    @contextlib.contextmanager
    def _inside(self, hostname: str | None = None) -> Iterator[None]:
        from envfence.pipeline import reset_session

        previous = os.getcwd()
        os.chdir(self.path)
        reset_session()
        try:
            with system_hostname_as(hostname or self.hostname):
                yield
        finally:
            reset_session()
            os.chdir(previous)

    def run(self, *args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> "Result":
        """Run ``envfence ARGS`` in the project, in this process, and return click's result.

        The result has ``exit_code``, ``stdout``, ``stderr`` and ``output``.
        """
        from click.testing import CliRunner

        from envfence.cli import cli

        environ = self._environ(env)
        with self._inside(environ["ENVFENCE_HOSTNAME"]):
            return CliRunner().invoke(cli, list(args), env=environ, input=input, catch_exceptions=True)

    def session(self, env: str | None = None, **kwargs: Any) -> "Session":
        """Open a :class:`~envfence.Session` on the project, as the CLI would."""
        from envfence.pipeline import Session

        environ = {**os.environ, **self._environ(kwargs.pop("environ", None))}
        with self._inside(environ["ENVFENCE_HOSTNAME"]):
            return Session.open(self.path, env=env, environ=environ, **kwargs)


def on_a_terminal(
    args: list[str], cwd: Path | str, environ: Mapping[str, str], answer: str | None = None, prompt: bytes = b"to go on",
    timeout: float = 60,
) -> tuple[int, str]:
    """Run ``envfence ARGS`` with a pseudo-terminal as stdin, stdout and stderr; answer its prompt once (unless None).

    What a person at a terminal sees and does: the guards ask there, and
    never without one. Returns ``(exit code, everything the screen showed)``.
    POSIX only (``pty``).
    """
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "envfence", *args], cwd=cwd, env={**os.environ, "NO_COLOR": "1", **environ},
        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )
    os.close(slave)
    screen, answered, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if answer is not None and not answered and prompt in screen:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    return proc.wait(timeout=30), screen.decode(errors="replace")
