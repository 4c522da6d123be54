"""The real bot with its own action server and order store, over Rasa's REST channel.

`rasa test` checks the dialogue without running the bot's actions; here the forms'
validation and the store answers run for real: `rasa run` with the trained model,
`rasa run actions` in bot/, and a fresh SQLite store seeded with the sample data
(the `rasa_server` fixture in conftest.py). Each test uses orders no other test changes.
"""

from __future__ import annotations

import uuid
from typing import List

import pytest
import requests

pytestmark = pytest.mark.integration


class Customer:
    """One REST conversation; `say` returns the texts of the bot's replies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sender = f"customer-{uuid.uuid4()}"

    def say(self, text: str) -> List[str]:
        replies = requests.post(
            f"{self.url}/webhooks/rest/webhook",
            json={"sender": self.sender, "message": text},
            timeout=120,
        )
        replies.raise_for_status()
        return [r.get("text", "") for r in replies.json()]

    def slot(self, name: str) -> object:
        tracker = requests.get(f"{self.url}/conversations/{self.sender}/tracker", timeout=30).json()
        return tracker["slots"][name]


def joined(replies: List[str]) -> str:
    return " ".join(replies).lower()


def test_where_is_order_10023_gives_its_real_status(rasa_server: str):
    replies = Customer(rasa_server).say("where is order 10023?")
    text = joined(replies)
    # Sample data: 10023 left the warehouse two days ago with DPD.
    assert "10023" in text and "dispatched" in text and "dpd" in text, replies


def test_cancelling_an_order_changes_the_store(rasa_server: str):
    customer = Customer(rasa_server)
    asks_email = joined(customer.say("please cancel order 10024"))
    assert "what email address" in asks_email, asks_email
    # Only the email the order was placed with may change it.
    mismatch = joined(customer.say("sam.lee@example.com"))
    assert "isn't the one order 10024" in mismatch and customer.slot("email") is None, mismatch
    confirm = joined(customer.say("jane.doe@example.com"))
    assert "cancel order 10024" in confirm, confirm
    done = joined(customer.say("yes"))
    assert "cancelled" in done, done
    # A new conversation sees the change: it was written to the store.
    status = joined(Customer(rasa_server).say("where is order 10024?"))
    assert "cancelled" in status, status


def test_a_wrong_order_number_is_asked_again_then_accepted(rasa_server: str):
    customer = Customer(rasa_server)
    first = joined(customer.say("track my order please"))
    assert "order number" in first, first
    again = joined(customer.say("1234"))
    assert "doesn't look like a northwind order number" in again, again
    assert customer.slot("order_number") is None
    unknown = joined(customer.say("99999"))
    assert "99999" in unknown and customer.slot("order_number") is None, unknown
    found = joined(customer.say("10025"))
    assert "10025" in found and "delivered" in found, found


def test_a_question_in_the_middle_of_a_form_is_answered_and_the_form_resumes(rasa_server: str):
    customer = Customer(rasa_server)
    assert "order number" in joined(customer.say("I need to change my delivery address"))
    answer = customer.say("what are your opening hours?")
    assert "0161 496 0420" in answer[0], answer
    assert "order number" in joined(answer[1:]), answer
    assert "what email address" in joined(customer.say("10028"))
    assert "new delivery address" in joined(customer.say("jane.doe@example.com"))
    changed = joined(customer.say("Flat 3, 12 Park Road, Leeds LS6 2QT"))
    assert "ls6 2qt" in changed, changed


def test_the_order_number_carries_over_to_the_next_task(rasa_server: str):
    customer = Customer(rasa_server)
    assert "10025" in joined(customer.say("what's the status of order 10025"))
    # The return form already knows the order; it asks for the email next.
    asks = joined(customer.say("I want to return it"))
    assert "what email address" in asks and "order number" not in asks, asks


def test_a_dispatched_order_is_refused_before_the_customer_confirms(rasa_server: str):
    customer = Customer(rasa_server)
    replies = customer.say("I want to cancel order 10023")
    text = joined(replies)
    assert "10023 is already dispatched" in text and "can't be cancelled" in text, replies
    # No confirmation question; the form asks for another order number.
    assert "shall i cancel" not in text and "order number" in joined(replies[1:]), replies


def test_other_messages_in_the_middle_of_a_form_never_get_the_fallback(rasa_server: str):
    customer = Customer(rasa_server)
    assert "order number" in joined(customer.say("where is my parcel"))
    thanks = customer.say("thanks")
    assert thanks[0] == "Sure." and "order number" in joined(thanks[1:]), thanks
    complaint = joined(customer.say("this is ridiculous, you people are useless"))
    assert "sorry" in complaint and "connect you" in complaint, complaint
    assert "not sure how to help" not in complaint
    # The complaint ended the order question; "no" declines the person.
    assert "anything else" in joined(customer.say("no"))
