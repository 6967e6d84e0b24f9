"""A throwaway PostgreSQL server for tests and benchmarks (no mocks: the real ``postgres``).

:class:`PostgresServer` runs Debian's ``initdb`` into a temporary directory and starts
``postgres`` on a free loopback port, with its unix socket directory inside that temporary
directory too; ``stop()`` shuts it down and removes the directory. The binaries are found in
``$QUOTEGATE_PG_BIN``, ``/usr/lib/postgresql/<newest>/bin`` or ``PATH``.

PostgreSQL refuses to run as root. When this process is root, the cluster is created and run
as the ``postgres`` system user (Debian's package creates it) through ``runuser``; the
temporary directory is handed to that user first.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from loadtest.redis_server import free_port, stop_process

DB_USER = "quotegate"
DB_NAME = "quotegate"


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``."""
    env = os.environ.get("QUOTEGATE_PG_BIN")
    candidates = [Path(env)] if env else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates.extend(v / "bin" for v in reversed(versions))
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    return None


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory; ``start()`` returns its URL."""

    def __init__(self, *, start_timeout_s: float = 30.0) -> None:
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _as_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def start(self) -> str:
        """Create and start the cluster (idempotent); raises ``RuntimeError`` if PostgreSQL is
        not installed or does not come up."""
        if self._proc is not None:
            return self.url
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb/postgres found)")
        self._dir = Path(tempfile.mkdtemp(prefix="quotegate-pg-"))
        data, sock = self._dir / "data", self._dir / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                self.stop()
                raise RuntimeError("running as root but there is no 'postgres' user") from None
            for path in (self._dir, sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        init = subprocess.run(
            self._as_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    DB_USER,
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            ),
            capture_output=True,
            check=False,
        )
        if init.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-500:]}")
        self.port = free_port()
        self._proc = subprocess.Popen(
            self._as_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(sock),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_ready(bin_dir, sock)
            subprocess.run(
                self._as_user(
                    [
                        str(bin_dir / "createdb"),
                        "-h",
                        str(sock),
                        "-p",
                        str(self.port),
                        "-U",
                        DB_USER,
                        DB_NAME,
                    ]
                ),
                capture_output=True,
                check=True,
            )
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc}") from exc
        return self.url

    def _wait_ready(self, bin_dir: Path, sock: Path) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError("postgres exited at start")
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not accept connections in time")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        proc, self._proc = self._proc, None
        stop_process(proc, timeout_s=10.0)
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
