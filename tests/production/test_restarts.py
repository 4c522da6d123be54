"""A Rasa server killed and started again: the conversation carries on where it was."""

from __future__ import annotations

import uuid

import pytest

from tests.production.conftest import Production
from tests.production.test_scale_out import assert_conversation, say, tracker_events

pytestmark = pytest.mark.integration


def test_a_killed_server_restarts_and_the_next_message_continues_the_conversation(
    production: Production,
):
    server = production.servers[1]
    sender = f"restart-{uuid.uuid4()}"
    say(server.url, sender, "hello")
    say(server.url, sender, "where is order 10023?")
    before = tracker_events(server.url, sender)

    assert server.process is not None
    server.process.kill()  # no clean shutdown: as a crash or an OOM kill
    server.process.wait()
    server.start()

    after_restart = tracker_events(server.url, sender)
    assert after_restart == before, "the restarted server lost or changed events"
    replies = say(server.url, sender, "thank you")
    assert replies
    assert_conversation(production.urls[0], sender, ["hello", "where is order 10023?", "thank you"])
