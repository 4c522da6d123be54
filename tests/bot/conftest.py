"""The bot's own actions against a real store: a fresh SQLite file per test, a fixed day.

The day is pinned (BOT_STORE_TODAY) to a Wednesday so working-day arithmetic gives
the same answers every run; everything else goes through the production path:
``store_from_env()``, ``Tracker.from_dict`` and ``CollectingDispatcher``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.order_store import STORE_TODAY_ENV, STORE_URL_ENV, OrderStore, store_from_env

BOT = Path(__file__).resolve().parents[2] / "bot"
TODAY = date(2025, 6, 11)  # a Wednesday in June: no bank holiday, no Christmas rule
JANE, SAM = "jane.doe@example.com", "sam.lee@example.com"
# The phone numbers the sample orders were placed with (bot/store/sample_data.yml).
JANES_PHONE, SAMS_PHONE = "+447700900123", "+447700900456"
# Who placed each sample order: a look-up needs the order's email (or its SMS phone).
OWNERS = {
    **dict.fromkeys(("10023", "10024", "10027", "10028", "10030", "48213"), JANE),
    **dict.fromkeys(("10025", "10026", "10029"), SAM),
}


# Chinese (Han) characters: a Chinese text has them, an English one none.
HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    """True if ``text`` has a Chinese character."""
    return bool(HAN.search(text))


def owned(number: str, **slots: Any) -> Dict[str, Any]:
    """The slots of a look-up of ``number`` by its owner: the number and its email."""
    return {"order_number": number, "email": OWNERS.get(number, JANE), **slots}


def bot_domain() -> Dict[str, Any]:
    """The real bot's domain: the forms' required slots come from it."""
    return dict(yaml.safe_load((BOT / "domain.yml").read_text()))


def actions_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OrderStore]:
    """The store the actions will find: seeded sample data in tmp_path, on TODAY."""
    monkeypatch.setenv(STORE_URL_ENV, f"sqlite:///{tmp_path / 'northwind.db'}")
    monkeypatch.setenv(STORE_TODAY_ENV, TODAY.isoformat())
    store = store_from_env()
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def domain() -> Dict[str, Any]:
    return bot_domain()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OrderStore]:
    yield from actions_store(tmp_path, monkeypatch)


def tracker(
    slots: Dict[str, Any],
    *,
    text: str = "",
    intent: str = "inform",
    active_loop: Optional[str] = None,
    validating: Tuple[str, ...] = (),
    sender_id: str = "webchat:customer-1",
) -> Tracker:
    """A tracker as Rasa sends it; ``validating`` names the slot candidates a form
    appended at the end of the events, which is what a validation action checks.
    ``sender_id`` is the conversation id, which names its channel (``sms:+44...``)."""
    events: List[Dict[str, Any]] = [
        {"event": "action", "name": "action_listen"},
        {
            "event": "user",
            "text": text,
            "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": []},
        },
    ]
    if active_loop:
        events.append({"event": "active_loop", "name": active_loop})
        events.append({"event": "action", "name": active_loop})
    events += [{"event": "slot", "name": s, "value": slots[s]} for s in validating]
    return Tracker.from_dict(
        {
            "sender_id": sender_id,
            "slots": dict(slots),
            "latest_message": events[1]["parse_data"] | {"text": text},
            "events": events,
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action_name": active_loop or "action_listen",
        }
    )


def run_action(
    action: Action, slots: Dict[str, Any], domain: Dict[str, Any], **kwargs: Any
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(messages, events) of one run, as the action server would collect them."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker(slots, **kwargs), domain))
    for message in dispatcher.messages:
        assert_fills_its_template(message, slots, domain)
    return dispatcher.messages, events


def assert_fills_its_template(
    message: Dict[str, Any], slots: Dict[str, Any], domain: Dict[str, Any]
) -> None:
    """Every {variable} of the response in domain.yml is passed or is a slot: Rasa
    would otherwise send the customer the raw placeholder."""
    for variation in domain.get("responses", {}).get(message["response"], []):
        for variable in re.findall(r"{(\w+)}", variation.get("text", "")):
            assert message.get(variable) is not None or slots.get(variable) is not None, (
                f"{message['response']} needs {{{variable}}}, which the action did not pass"
            )


def only(messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The one message an action sent (fails if it sent none or several)."""
    assert len(messages) == 1, messages
    return messages[0]


def responses(messages: List[Dict[str, Any]]) -> List[str]:
    return [m["response"] for m in messages]
