"""The real bot with its own action server and order store, over Rasa's REST channel.

`rasa test` checks the dialogue without running the bot's actions; here the forms'
validation and the store answers run for real: `rasa run` with the trained model,
`rasa run actions` in bot/, and a fresh SQLite store seeded with the sample data.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator, List

import pytest
import requests

from tests.rasa_process import ActionServer, RasaServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bot(bot_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    workdir = tmp_path_factory.mktemp("bot-conversations")
    actions_port = free_port()
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        "tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: rasa.db\n"
    )
    credentials = workdir / "credentials.yml"
    credentials.write_text("rest:\n")
    rasa = RasaServer(bot_model, workdir, credentials=credentials, endpoints=endpoints)
    # No desk: a hand-off would fail over to utter_handoff_unavailable; no warm-up of
    # the fallback's language model, which these conversations do not reach.
    actions = ActionServer(
        workdir, port=actions_port, env={"RASA_LLM_FALLBACK_WARM_UP": "0"}
    ).start()
    try:
        yield rasa.start()
    finally:
        rasa.stop()
        actions.stop()


class Customer:
    """One REST conversation; `say` returns the texts of the bot's replies."""

    def __init__(self, server: RasaServer) -> None:
        self.server = server
        self.sender = f"customer-{uuid.uuid4()}"

    def say(self, text: str) -> List[str]:
        replies = requests.post(
            f"{self.server.url}/webhooks/rest/webhook",
            json={"sender": self.sender, "message": text},
            timeout=120,
        )
        replies.raise_for_status()
        return [r.get("text", "") for r in replies.json()]

    def slot(self, name: str) -> object:
        tracker = requests.get(
            f"{self.server.url}/conversations/{self.sender}/tracker", timeout=30
        ).json()
        return tracker["slots"][name]


def joined(replies: List[str]) -> str:
    return " ".join(replies).lower()


def test_where_is_order_10023_gives_its_real_status(bot: RasaServer):
    replies = Customer(bot).say("where is order 10023?")
    text = joined(replies)
    # Sample data: 10023 left the warehouse two days ago with DPD.
    assert "10023" in text and "dispatched" in text and "dpd" in text, replies


def test_cancelling_an_order_changes_the_store(bot: RasaServer):
    customer = Customer(bot)
    asks_email = joined(customer.say("please cancel order 10024"))
    assert "email" in asks_email, asks_email
    # Only the email the order was placed with may change it.
    mismatch = joined(customer.say("sam.lee@example.com"))
    assert "match" in mismatch and customer.slot("email") is None, mismatch
    confirm = joined(customer.say("jane.doe@example.com"))
    assert "cancel order 10024" in confirm, confirm
    done = joined(customer.say("yes"))
    assert "cancelled" in done, done
    # A new conversation sees the change: it was written to the store.
    status = joined(Customer(bot).say("where is order 10024?"))
    assert "cancelled" in status, status


def test_a_wrong_order_number_is_asked_again_then_accepted(bot: RasaServer):
    customer = Customer(bot)
    first = joined(customer.say("track my order please"))
    assert "order number" in first, first
    again = joined(customer.say("1234"))
    assert "5" in again and customer.slot("order_number") is None, again
    unknown = joined(customer.say("99999"))
    assert "99999" in unknown and customer.slot("order_number") is None, unknown
    found = joined(customer.say("10025"))
    assert "10025" in found and "delivered" in found, found


def test_a_question_in_the_middle_of_a_form_is_answered_and_the_form_resumes(bot: RasaServer):
    customer = Customer(bot)
    assert "order number" in joined(customer.say("I need to change my delivery address"))
    answer = customer.say("what are your opening hours?")
    assert "0161 496 0420" in answer[0], answer
    assert "order number" in joined(answer[1:]), answer
    assert "email" in joined(customer.say("10024"))
    assert "address" in joined(customer.say("jane.doe@example.com"))
    changed = joined(customer.say("Flat 3, 12 Park Road, Leeds LS6 2QT"))
    assert "ls6 2qt" in changed, changed


def test_the_order_number_carries_over_to_the_next_task(bot: RasaServer):
    customer = Customer(bot)
    assert "10025" in joined(customer.say("what's the status of order 10025"))
    # The return form already knows the order; it asks for the email next.
    asks = joined(customer.say("I want to return it"))
    assert "email" in asks and "order number" not in asks, asks
