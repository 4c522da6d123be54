"""The action server killed mid-conversation, and the fallback's model hanging.

A customer always gets an answer: the scripted `utter_action_failed` while the action
server is gone (rasa_llm/server/action_failure_reply.py), the scripted or verbatim fallback
when the language model does not answer in time; the conversation goes on afterwards.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Dict, List

import pytest
import requests
import yaml

from tests.production.conftest import FALLBACK_DEADLINE_S, Production
from tests.production.test_scale_out import assert_conversation, say
from tests.rasa_process import BOT, api_headers

pytestmark = pytest.mark.integration

DOMAIN = yaml.safe_load((BOT / "domain.yml").read_text())


def response_text(name: str) -> str:
    return str(DOMAIN["responses"][name][0]["text"])


def texts(replies: List[Dict[str, Any]]) -> List[str]:
    return [str(reply.get("text")) for reply in replies]


def failures_counted(url: str) -> float:
    metrics = requests.get(
        f"{url}/webhooks/monitoring/metrics", headers=api_headers(), timeout=30
    ).text
    found = re.findall(r'^rasa_llm_action_failures_total\{action="[^"]+"\} (\S+)$', metrics, re.M)
    return sum(float(value) for value in found)


def test_the_customer_is_answered_while_the_action_server_is_down_and_served_after(
    production: Production,
):
    sorry = response_text("utter_action_failed")
    senders = [f"actions-down-{i}-{uuid.uuid4()}" for i in range(2)]
    for url, sender in zip(production.urls, senders, strict=True):
        say(url, sender, "hello")
    counted_before = [failures_counted(url) for url in production.urls]

    actions = production.actions
    assert actions.process is not None
    actions.process.kill()  # as a crash: no goodbye to the Rasa servers
    actions.process.wait()
    try:
        # Both servers (the first with two workers): each gets the scripted answer at
        # once instead of silence, and the conversation is kept.
        for url, sender in zip(production.urls, senders, strict=True):
            started = time.monotonic()
            replies = say(url, sender, "where is order 10023?")
            assert sorry in texts(replies), replies
            assert time.monotonic() - started < 30
    finally:
        actions.start()

    for url, sender, before in zip(production.urls, senders, counted_before, strict=True):
        assert failures_counted(url) > before
        # Back: the same question now reaches the order store.
        replies = say(url, sender, "where is order 10023?")
        assert any("10023" in text for text in texts(replies)), replies
        assert sorry not in texts(replies)
        assert_conversation(
            url, sender, ["hello", "where is order 10023?", "where is order 10023?"]
        )


def test_a_hanging_language_model_gives_the_scripted_answer_by_the_deadline(
    production: Production,
):
    model = production.model
    knowledge = " ".join(p.read_text() for p in (BOT / "knowledge" / "en").glob("*.md"))
    # No intent covers gift cards: out of scope, and the knowledge base answers it.
    question = "how long is a gift card valid for?"
    sender = f"model-hangs-{uuid.uuid4()}"

    # Answering: the customer gets the model's (checked) reply.
    model.answering("A Northwind gift card is valid for 24 months from purchase.")
    replies = say(production.urls[1], sender, question)
    assert texts(replies) == [model.answer], replies

    model.hanging()
    asked = len(model.requests)
    try:
        started = time.monotonic()
        replies = say(production.urls[0], f"{sender}-2", question)
        waited = time.monotonic() - started
    finally:
        model.answering(model.answer)
    assert len(model.requests) == asked + 1, "the model was not asked"
    (reply,) = texts(replies)
    # Without the model: a passage of the knowledge base word for word when one is close
    # enough, else the scripted reply; never silence, never a half-written reply.
    assert reply == response_text("utter_cannot_answer") or reply in knowledge, reply
    assert FALLBACK_DEADLINE_S <= waited < FALLBACK_DEADLINE_S + 10, waited
