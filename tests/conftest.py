"""Test-wide guards: no network beyond loopback, no telemetry, no model hub."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

import pytest

# Set before Rasa or transformers are imported by any test module.
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "", None}


class OutboundNetworkError(ConnectionRefusedError):
    """A test tried to reach a host that is not on loopback."""


def _is_loopback(host: Any) -> bool:
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise OutboundNetworkError(f"tests may only connect to loopback, not {address[0]!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise OutboundNetworkError(f"tests may only connect to loopback, not {address[0]!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # Refuse at once instead of waiting for a DNS answer that never comes.
    if not _is_loopback(host):
        raise OutboundNetworkError(f"tests may only resolve loopback names, not {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_outbound_network() -> Any:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(scope="session")
def bot_model() -> Any:
    """The real bot's model, trained with the shipped MiniLM if missing or stale."""
    from tests.rasa_process import trained_bot_model

    return trained_bot_model()


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """A PostgreSQL server of the test session's own, on loopback (bench.support)."""
    from bench.support.postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Redis server of the test session's own, on loopback (bench.support)."""
    from bench.support.redis_server import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server
