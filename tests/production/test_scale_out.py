"""Several workers and servers on one PostgreSQL tracker store and one Redis lock store.

Every message of a conversation goes to another server than the one before, many
conversations at once; and one conversation gets messages through both servers at
the same moment. What must hold: no message lost or doubled, each message's replies
recorded before the next message is handled, the same tracker whichever server reads it.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import psycopg2
import pytest
import requests
import yaml

from tests.production.conftest import PRODUCTION_ENDPOINTS, Production
from tests.rasa_process import api_headers, rest_headers, rest_id

pytestmark = pytest.mark.integration

CONVERSATION = ["hello", "where is order 10023?", "thank you", "are you a bot?", "goodbye"]


def say(url: str, sender: str, text: str) -> List[Dict[str, Any]]:
    response = requests.post(
        f"{url}/webhooks/rest/webhook",
        json={"sender": sender, "message": text},
        headers=rest_headers(),
        timeout=180,
    )
    response.raise_for_status()
    return list(response.json())


def tracker_events(url: str, sender: str) -> List[Dict[str, Any]]:
    """The events of REST ``sender``'s conversation."""
    response = requests.get(
        f"{url}/conversations/{rest_id(sender)}/tracker", headers=api_headers(), timeout=60
    )
    response.raise_for_status()
    return list(response.json()["events"])


def turns(events: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """The events from each user message up to the next one."""
    result: List[List[Dict[str, Any]]] = []
    for event in events:
        if event["event"] == "user":
            result.append([event])
        elif result:
            result[-1].append(event)
    return result


def assert_handled_in_turn(events: List[Dict[str, Any]]) -> None:
    """Each message was answered and the bot listened again before the next one came in:
    two servers handling one conversation at once would interleave or drop events."""
    for turn in turns(events):
        kinds = [e["event"] for e in turn]
        assert "bot" in kinds, f"no reply recorded for {turn[0]['text']!r}: {kinds}"
        listens = [e for e in turn if e["event"] == "action" and e["name"] == "action_listen"]
        assert len(listens) == 1 and turn[-1] is listens[0], (turn[0]["text"], kinds)


def assert_conversation(url: str, sender: str, texts: List[str]) -> None:
    """The stored conversation holds ``texts`` once each, in order, each answered in turn."""
    events = tracker_events(url, sender)
    assert [e["text"] for e in events if e["event"] == "user"] == texts
    assert_handled_in_turn(events)


def test_production_endpoints_use_postgresql_and_redis():
    endpoints = yaml.safe_load(PRODUCTION_ENDPOINTS.read_text())
    assert endpoints["tracker_store"]["dialect"] == "postgresql"
    assert endpoints["tracker_store"]["type"].endswith("ResilientSQLTrackerStore")
    assert endpoints["lock_store"]["type"].endswith("ConcurrentRedisLockStore")


def test_conversations_moving_between_servers_stay_whole_and_in_order(production: Production):
    def converse(index: int) -> str:
        sender = f"scale-{index}-{uuid.uuid4()}"
        for number, text in enumerate(CONVERSATION):
            replies = say(production.urls[(index + number) % 2], sender, text)
            assert replies, f"no reply to {text!r} in conversation {index}"
        return sender

    with ThreadPoolExecutor(12) as pool:
        senders = list(pool.map(converse, range(12)))

    for sender in senders:
        seen = [tracker_events(url, sender) for url in production.urls]
        assert seen[0] == seen[1], "the two servers read different trackers"
        assert [e["text"] for e in seen[0] if e["event"] == "user"] == CONVERSATION
        assert_handled_in_turn(seen[0])
        # The order question reached the action server through whichever server took it.
        order_turn = turns(seen[0])[1]
        assert any("10023" in (e.get("text") or "") for e in order_turn if e["event"] == "bot")

    # The events are in PostgreSQL, not in either server's memory, under the REST
    # channel's conversation ids.
    conversations = [rest_id(sender) for sender in senders]
    with psycopg2.connect(production.database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT sender_id, COUNT(*) FROM events WHERE type_name = 'user' "
            "AND sender_id = ANY(%s) GROUP BY sender_id",
            (conversations,),
        )
        counts = dict(cursor.fetchall())
    assert counts == {conversation: len(CONVERSATION) for conversation in conversations}


def test_one_conversation_hit_through_both_servers_at_once_is_handled_one_message_at_a_time(
    production: Production,
):
    sender = f"same-moment-{uuid.uuid4()}"
    texts = ["hello", "hi there", "good morning", "hey", "thank you", "thanks a lot"]
    say(production.urls[0], sender, "hello")  # the conversation exists before the burst

    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(
            pool.map(
                lambda item: say(production.urls[item[0] % 2], sender, item[1]), enumerate(texts)
            )
        )

    assert all(answers), "every message must get its reply"
    events = tracker_events(production.urls[1], sender)
    user_texts = [e["text"] for e in events if e["event"] == "user"]
    assert sorted(user_texts) == sorted(["hello", *texts]), user_texts
    assert_handled_in_turn(events)
