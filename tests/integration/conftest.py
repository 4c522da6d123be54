"""The real bot, trained with the shipped MiniLM, served by `rasa run` with its actions."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.rasa_process import ActionServer, RasaServer, free_port, write_run_config


@pytest.fixture(scope="session")
def rasa_server(
    bot_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    """`rasa run` with the REST channel and the HTTP API, and `rasa run actions` (the
    bot's forms validate every answer there) on a fresh sample store, as `make run`."""
    workdir = tmp_path_factory.mktemp("rasa-run")
    actions_port = free_port()
    endpoints, credentials = write_run_config(workdir, actions_port)
    # No agent desk here: a hand-off says utter_handoff_unavailable. The fallback's
    # language model is not warmed up; the conversations here do not need it.
    actions = ActionServer(workdir, port=actions_port, env={"RASA_LLM_FALLBACK_WARM_UP": "0"})
    actions.start()
    try:
        with RasaServer(bot_model, workdir, credentials=credentials, endpoints=endpoints) as server:
            yield server
    finally:
        actions.stop()
