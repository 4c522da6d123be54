"""The real bot, trained with the shipped MiniLM, served by `rasa run`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.rasa_process import RasaServer


@pytest.fixture(scope="session")
def rasa_server(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rasa run` with the REST channel and the HTTP API, on a free loopback port."""
    with RasaServer(bot_model, tmp_path_factory.mktemp("rasa-run")) as server:
        yield server.url
