"""Finding 2, upgrade path: moving old conversations to channel-named ids hands none over.

Before the upgrade the REST channel let any caller name the conversation it wrote into,
so a stored SMS conversation (id: the customer's phone number) may hold a stranger's
REST message, possibly the latest one. The migration must give that conversation to
the channel that proves who writes (SMS: Twilio's signature), not to REST: otherwise
the caller who wrote into it would continue it, with the customer's order number and
email, under ``rest:+44...``. Run as an operator runs it: the real command on a SQLite
tracker store written by Rasa's own SQLTrackerStore.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+447700900123"
DOMAIN = Domain.from_yaml(
    'version: "3.1"\nintents: [order_status]\nslots:\n'
    "  order_number:\n    type: text\n    mappings: [{type: custom}]\n"
    "  email:\n    type: text\n    mappings: [{type: custom}]\n"
)


def said(text: str, channel: str, at: float) -> UserUttered:
    return UserUttered(text, {"name": "order_status", "confidence": 1.0},
                       input_channel=channel, timestamp=at)  # fmt: skip


def test_a_rest_message_inside_an_sms_conversation_does_not_take_it_to_rest(tmp_path: Path):
    store = SQLTrackerStore(DOMAIN, db=str(tmp_path / "rasa.db"))
    events = [
        ActionExecuted("action_session_start", timestamp=1.0),
        SessionStarted(timestamp=1.0),
        ActionExecuted("action_listen", timestamp=1.0),
        said("where is order 10023", "twilio", 2.0),
        SlotSet("order_number", "10023", timestamp=2.0),
        SlotSet("email", "ann@example.com", timestamp=2.0),
        BotUttered("It left today.", timestamp=2.0),
        ActionExecuted("action_listen", timestamp=2.0),
        # A stranger's REST post naming the customer's number, before the upgrade.
        said("what was my order number again?", "rest", 3.0),
    ]
    tracker = DialogueStateTracker.from_events(PHONE, events, slots=DOMAIN.slots)
    asyncio.run(store.save(tracker))
    (tmp_path / "endpoints.yml").write_text("tracker_store:\n  type: SQL\n  db: rasa.db\n")

    run = subprocess.run(
        [sys.executable, "-m", "channels.conversation_id_migration",
         "--endpoints", str(tmp_path / "endpoints.yml"), "--workdir", str(tmp_path), "--apply"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert PHONE not in run.stdout + run.stderr

    # The REST caller's id (what a REST post with that sender now reaches) holds nothing.
    assert asyncio.run(store.retrieve("rest:" + PHONE)) is None
    moved = asyncio.run(store.retrieve("sms:" + PHONE))
    assert moved is not None
    assert moved.get_slot("order_number") == "10023"
    assert moved.get_slot("email") == "ann@example.com"
    assert asyncio.run(store.retrieve(PHONE)) is None
