"""A throw-away PostgreSQL server on a loopback port, from the machine's PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

import pytest

from bench.support.rasa_process import free_port

INSTALL_HINT = (
    "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; `make services` does it)"
)


def _pg_binary(name: str) -> Optional[str]:
    """`initdb` and `pg_ctl` are off PATH in Debian's package: look where it puts them."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    """`initdb` and `pg_ctl start` in a temporary folder, trust auth, user ``postgres``.

    A server of the test session's own (never the machine's), so a fault test may stop
    and start it. PostgreSQL refuses to run as root: under root it runs as the
    ``postgres`` user the Debian package creates, in a folder that user owns.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="rasa-llm-pg-"))
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"
        self.running = False

    def _as_owner(self, command: List[str]) -> List[str]:
        if os.geteuid() != 0:
            return command
        if shutil.which("runuser") is None:
            pytest.fail("PostgreSQL cannot run as root and there is no runuser to drop to postgres")
        return ["runuser", "-u", "postgres", "--", *command]

    def _run(self, command: List[str]) -> None:
        result = subprocess.run(
            self._as_owner(command), capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(command[:2])} failed:\n{result.stdout}\n{result.stderr}\n{self.log()}"
            )

    def start(self) -> PostgresServer:
        initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.fail(f"no initdb/pg_ctl found: {INSTALL_HINT}")
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")
        if not self.data.exists():
            # --no-sync and fsync=off: a test database need not survive a power cut.
            self._run([initdb, "-D", str(self.data), "-U", self.user, "--auth=trust",
                       "-E", "UTF8", "--no-sync"])  # fmt: skip
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again) on the same port and data."""
        pg_ctl = _pg_binary("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} -c fsync=off"
        self._run([pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log_path),
                   "-w", "-t", "60", "start"])  # fmt: skip
        self.running = True

    def pause(self) -> None:
        """Stop the server, dropping its connections, as a database outage does."""
        pg_ctl = _pg_binary("pg_ctl")
        assert pg_ctl is not None
        self._run([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
        self.running = False

    def create_database(self, name: str) -> str:
        """Create ``name`` and return its SQLAlchemy URL."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres"
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if self.running:
            self.pause()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
