"""What the test bot (``bot/``) answers at the turns the channels' server tests drive,
and how such a test starts a server of it or has it speak first."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from tests.rasa_process import RasaServer

GREETING = "Hi, welcome to Northwind customer service!"
APOLOGY = "I'm really sorry about this"
OFFER = "Would you like me to connect you with a member of our team?"
# Accepting the offered person runs action_handoff on the action server: that path is
# tested end to end in tests/integration/test_handoff.py. Here the customer declines.
DECLINED = "Alright. Is there anything else I can help you with?"
WELCOME = "You're welcome!"


def rasa_with(bot_model: Path, workdir: Path, credentials: str) -> Iterator[RasaServer]:
    """A Rasa server of the bot with ``credentials`` as its credentials.yml, for a
    fixture to ``yield from``; stopped when the fixture ends."""
    path = workdir / "credentials.yml"
    path.write_text(credentials)
    rasa = RasaServer(bot_model, workdir, credentials=path).start()
    try:
        yield rasa
    finally:
        rasa.stop()


def trigger_greet(server: RasaServer, conversation: str, *, output_channel: str) -> None:
    """Rasa's HTTP API makes the bot greet ``conversation`` through ``output_channel``."""
    answer = server.api(
        "POST",
        f"/conversations/{conversation}/trigger_intent",
        params={"output_channel": output_channel},
        json={"name": "greet"},
    )
    assert answer.status_code == 200, answer.text
