"""Which ``/...`` messages Rasa may read as intent shortcuts, on Rasa's own objects."""

from __future__ import annotations

from typing import Any, List

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
from rasa.shared.core.events import BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.message import Message

from rasa_llm.server.intent_shortcuts import (
    TEXT_ONLY_KEY,
    in_rasa_shell,
    install_intent_shortcut_guard,
    offered_payloads,
    shortcut_allowed,
)


def buttons(*payloads: str) -> BotUttered:
    return BotUttered("Choose", data={"buttons": [{"title": p, "payload": p} for p in payloads]})


def tracker(*events: Any) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("rest:c", list(events))


def test_offered_payloads_are_the_current_sessions_buttons_and_quick_replies():
    events = [
        buttons("/old"),
        SessionStarted(),
        UserUttered("hi"),
        buttons("/order_status", " /return_item "),
        BotUttered("Pick", data={"quick_replies": [{"title": "Yes", "payload": "/affirm"}]}),
        BotUttered("no buttons"),
        BotUttered("broken", data={"buttons": ["not a button", {"title": "no payload"}]}),
    ]
    assert offered_payloads(events) == {"/order_status", "/return_item", "/affirm"}


@pytest.mark.parametrize(
    ("text", "channel", "allowed"),
    [
        ("where is my order", "rest", True),  # not a shortcut
        ("/order_status", "webchat", True),  # offered
        ("  /order_status ", "webchat", True),
        ('/order_status{"order_number": "1"}', "webchat", False),  # not what was offered
        ("/restart", "telegram", False),
        ("/restart", "cmdline", False),  # not rasa shell: any REST caller can say cmdline
        ("/restart", None, True),  # Rasa's HTTP API, programmatic parses
    ],
)
def test_a_shortcut_is_allowed_only_as_an_offered_button_on_a_channel(text, channel, allowed):
    conversation = tracker(UserUttered("hi"), buttons("/order_status"))
    message = UserMessage(text, sender_id="rest:c", input_channel=channel)
    assert shortcut_allowed(message, conversation) is allowed


def test_rasa_shell_may_use_shortcuts(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/venv/bin/rasa", "shell", "--debug"])
    message = UserMessage("/restart", sender_id="c", input_channel="cmdline")
    assert shortcut_allowed(message, tracker())
    assert in_rasa_shell(argv=["/venv/lib/python3.10/site-packages/rasa/__main__.py", "shell"])
    assert not in_rasa_shell(argv=["/venv/bin/rasa", "run"])
    assert not in_rasa_shell(argv=["/usr/bin/my-server", "shell"])


def test_without_a_tracker_a_channel_message_is_text():
    assert not shortcut_allowed(UserMessage("/greet", input_channel="rest"), None)


def test_the_regex_handler_leaves_marked_messages_to_nlu():
    install_intent_shortcut_guard()
    install_intent_shortcut_guard()  # idempotent
    handler = RegexMessageHandler()
    typed = Message(data={"text": "/greet", "metadata": {TEXT_ONLY_KEY: True}})
    typed.set("intent", {"name": "chitchat", "confidence": 0.7})
    pressed = Message(data={"text": "/greet", "metadata": {}})
    out: List[Message] = handler.process([typed, pressed])
    assert out[0].get("intent")["name"] == "chitchat"  # NLU's reading stands
    assert out[1].get("intent")["name"] == "greet"  # the shortcut, as Rasa reads it
