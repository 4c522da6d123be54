"""A throw-away Redis server on a loopback port, from the machine's `redis-server`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from bench.support.rasa_process import free_port

INSTALL_HINT = (
    "install Redis (Debian/Ubuntu: apt-get install redis-server; `make services` does it)"
)


class RedisServer:
    """`redis-server` on 127.0.0.1 with nothing kept on disk, stopped at the end.

    Each test session gets its own server, so a test that stops it (a fault test) or
    fills it never touches a Redis the machine runs for something else.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log_path = workdir / "redis.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self, *, timeout: float = 30) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"no redis-server on PATH: {INSTALL_HINT}")
        self.process = subprocess.Popen(
            [binary, "--bind", self.host, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.log_path)],
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start:\n{self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=self.host, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
