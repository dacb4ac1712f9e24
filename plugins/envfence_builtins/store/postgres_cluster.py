"""A throwaway PostgreSQL server for tests and benchmarks, from the machine's own binaries.

:class:`TemporaryPostgres` runs ``initdb`` into a new temporary directory,
starts the server with ``pg_ctl`` on a free 127.0.0.1 port (its socket in the
same directory) and removes everything when stopped. PostgreSQL refuses to
run as root, so when the caller is root the server runs as the ``postgres``
user, and the directory is handed to that user. Authentication is
``scram-sha-256`` with a random superuser password, as a real server would ask.

Nothing here is imported by envfence itself; the test suite and ``make
bench`` use it.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: How to get the binaries, for the message of a skipped test.
HOW_TO_GET = (
    "install the PostgreSQL server binaries (Debian/Ubuntu: apt install postgresql; "
    "macOS: brew install postgresql), or set ENVFENCE_PG_BINDIR to the directory holding initdb and pg_ctl"
)


class PostgresUnavailable(RuntimeError):
    """The binaries or the user to run them as are missing."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``ENVFENCE_PG_BINDIR``, then PATH, then Debian's layout."""
    candidates = []
    if os.environ.get("ENVFENCE_PG_BINDIR"):
        candidates.append(Path(os.environ["ENVFENCE_PG_BINDIR"]))
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the server retries if it is taken meanwhile)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TemporaryPostgres:
    """One PostgreSQL cluster in a temporary directory; use as a context manager.

    :attr:`url` is the superuser's connection URL (with its password);
    :meth:`stop` and :meth:`start` stop and restart the same cluster, so a
    test can take the database away in the middle.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise PostgresUnavailable(f"initdb and pg_ctl were not found: {HOW_TO_GET}")
        self._as_user = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import pwd

            try:
                self._as_user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and PostgreSQL refuses root: create a `postgres` user (useradd -r postgres) "
                    "or run the tests as another user"
                ) from None
        self.password = secrets.token_hex(12)
        self.port = 0
        self.directory: Path | None = None

    # --- the user the server runs as ----------------------------------------------

    def _demote(self) -> None:
        user = self._as_user
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        """Run one of the binaries as the server's user; never raises for its exit status."""
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            preexec_fn=self._demote if self._as_user else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.directory,
        )

    def _checked(self, *args: str) -> subprocess.CompletedProcess:
        done = self._run(*args)
        if done.returncode != 0:
            log = self.directory / "server.log" if self.directory else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout[-2000:]}\n{tail}")
        return done

    # --- life cycle ----------------------------------------------------------------

    def _reachable_tmp(self) -> str | None:
        """The temporary directory, or /tmp when the server's user could not reach it (a root-only TMPDIR)."""
        if not self._as_user:
            return None
        path = Path(tempfile.gettempdir()).resolve()
        for part in (path, *path.parents):
            mode = part.stat().st_mode
            if part.stat().st_uid != self._as_user.pw_uid and not mode & 0o001:
                return "/tmp"
        return str(path)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        assert self.directory is not None
        return self.directory / "data"

    @property
    def url(self) -> str:
        """The superuser's URL: ``postgresql://postgres:<password>@127.0.0.1:<port>/postgres``."""
        return self.url_for("postgres", self.password, "postgres")

    def url_for(self, user: str, password: str | None, database: str) -> str:
        """A URL for ``user`` on ``database`` of this server."""
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def create(self) -> "TemporaryPostgres":
        """``initdb`` into a new temporary directory (owned by the server's user)."""
        self.directory = Path(tempfile.mkdtemp(prefix="envfence-pg-", dir=self._reachable_tmp()))
        if self._as_user:
            os.chown(self.directory, self._as_user.pw_uid, self._as_user.pw_gid)
        pwfile = self.directory / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            os.chown(pwfile, self._as_user.pw_uid, self._as_user.pw_gid)
        self._checked(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "--no-sync", "--encoding=UTF8", "--locale=C",
        )
        pwfile.unlink()
        return self

    def start(self, attempts: int = 5) -> "TemporaryPostgres":
        """Start the server on a free port (another port when the chosen one was taken meanwhile)."""
        if self.directory is None:
            self.create()
        for attempt in range(attempts):
            port = self.port or free_port()
            options = (
                f"-p {port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                             "-o", options, "-w", "-t", "30", "start")
            if done.returncode == 0:
                self.port = port
                return self
            if attempt + 1 == attempts:
                tail = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pg_ctl start failed: {done.stdout[-1000:]}\n{tail}")
            self.port = 0  # the port was taken: try another
        return self

    def stop(self) -> None:
        """Stop the server at once (its connections are cut, as when a database host goes away)."""
        if self.directory is not None and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> "TemporaryPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()

    # --- set-up helpers ------------------------------------------------------------

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser (autocommit, so CREATE DATABASE works)."""
        import psycopg

        with psycopg.connect(self.url_for("postgres", self.password, database), autocommit=True) as db:
            db.execute(sql)

    def create_database(self, name: str, owner: str, owner_password: str) -> str:
        """A database ``name`` owned by a new login role ``owner``; returns the owner's URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(owner_password)))
            db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        return self.url_for(owner, owner_password, name)
