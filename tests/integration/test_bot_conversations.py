"""The real bot with its own action server and order store, over the REST channel.

`rasa test` checks the dialogue without running the bot's actions; here the forms'
validation and the store answers run for real: `rasa run` with the trained model,
`rasa run actions` in bot/, and a fresh SQLite store seeded with the sample data
(the `rasa_server` fixture in conftest.py). Each test uses orders no other test
changes, and its own conversations (`rest:<sender>`, through the REST channel's token).
"""

from __future__ import annotations

import uuid
from typing import List

import pytest

from tests.rasa_process import RasaServer, rest_id

pytestmark = pytest.mark.integration

JANE = "jane.doe@example.com"


class Customer:
    """One REST conversation; `say` returns the texts of the bot's replies."""

    def __init__(self, server: RasaServer) -> None:
        self.server = server
        self.sender = f"customer-{uuid.uuid4()}"

    def say(self, text: str) -> List[str]:
        replies = self.server.rest(self.sender, text)
        replies.raise_for_status()
        return [r.get("text", "") for r in replies.json()]

    def slot(self, name: str) -> object:
        return self.server.tracker(rest_id(self.sender))["slots"][name]


def joined(replies: List[str]) -> str:
    return " ".join(replies).lower()


def test_where_is_order_10023_gives_its_real_status_to_its_owner(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    asks = joined(customer.say("where is order 10023?"))
    # Nothing about the order before the email it was placed with.
    assert "what email address" in asks and "dpd" not in asks, asks
    text = joined(customer.say(JANE))
    # Sample data: 10023 left the warehouse two days ago with DPD.
    assert "10023" in text and "dispatched" in text and "dpd" in text, text


def test_a_wrong_email_is_answered_like_an_unknown_order(rasa_server: RasaServer):
    replies = {}
    for number in ("10023", "99999"):
        customer = Customer(rasa_server)
        customer.say(f"where is order {number}?")
        replies[number] = customer.say("sam.lee@example.com")
        assert customer.slot("order_number") is None and customer.slot("email") is None
    assert joined(replies["10023"]).replace("10023", "N") == joined(replies["99999"]).replace(
        "99999", "N"
    )
    assert "can't find an order" in joined(replies["10023"]), replies


def test_cancelling_an_order_changes_the_store(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    asks_email = joined(customer.say("please cancel order 10024"))
    assert "what email address" in asks_email, asks_email
    # Only the email the order was placed with may change it; both are asked again.
    mismatch = joined(customer.say("sam.lee@example.com"))
    assert "can't find an order 10024" in mismatch and customer.slot("email") is None, mismatch
    assert "order number" in mismatch, mismatch
    assert "what email address" in joined(customer.say("10024"))
    confirm = joined(customer.say(JANE))
    assert "cancel order 10024" in confirm, confirm
    done = joined(customer.say("yes"))
    assert "cancelled" in done, done
    # A new conversation of the owner sees the change: it was written to the store.
    other = Customer(rasa_server)
    other.say("where is order 10024?")
    status = joined(other.say(JANE))
    assert "cancelled" in status, status


def test_a_wrong_order_number_is_asked_again_then_accepted(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    first = joined(customer.say("track my order please"))
    assert "order number" in first, first
    again = joined(customer.say("1234"))
    assert "doesn't look like a northwind order number" in again, again
    assert customer.slot("order_number") is None
    assert "what email address" in joined(customer.say("10025"))
    found = joined(customer.say("sam.lee@example.com"))
    assert "10025" in found and "delivered" in found, found


def test_a_question_in_the_middle_of_a_form_is_answered_and_the_form_resumes(
    rasa_server: RasaServer,
):
    customer = Customer(rasa_server)
    assert "order number" in joined(customer.say("I need to change my delivery address"))
    answer = customer.say("what are your opening hours?")
    assert "0161 496 0420" in answer[0], answer
    assert "order number" in joined(answer[1:]), answer
    assert "what email address" in joined(customer.say("10028"))
    assert "new delivery address" in joined(customer.say(JANE))
    changed = joined(customer.say("Flat 3, 12 Park Road, Leeds LS6 2QT"))
    assert "ls6 2qt" in changed, changed


def test_the_order_number_and_email_carry_over_to_the_next_task(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    customer.say("what's the status of order 10025")
    assert "10025" in joined(customer.say("sam.lee@example.com"))
    # The return form already knows the order and its owner: it asks why.
    asks = joined(customer.say("I want to return it"))
    assert "why are you returning it" in asks and "order number" not in asks, asks


def test_a_dispatched_order_is_refused_before_the_customer_confirms(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    assert "what email address" in joined(customer.say("I want to cancel order 10023"))
    replies = customer.say(JANE)
    text = joined(replies)
    assert "10023 is already dispatched" in text and "can't be cancelled" in text, replies
    # No confirmation question; the form asks for another order number.
    assert "shall i cancel" not in text and "order number" in joined(replies[1:]), replies


def test_repeated_misses_pause_the_look_ups_and_offer_a_person(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    customer.say("where is my order?")
    for attempt in range(5):
        customer.say(f"{20000 + attempt}")
        last = customer.say("sam.lee@example.com")
    text = joined(last)
    assert "for your security" in text and "member of our team" in text, last
    # The next look-up, even with the right details, is refused the same way.
    again = joined(customer.say("where is order 10023?") + customer.say(JANE))
    assert "for your security" in again and "dpd" not in again, again


def test_other_messages_in_the_middle_of_a_form_never_get_the_fallback(rasa_server: RasaServer):
    customer = Customer(rasa_server)
    assert "order number" in joined(customer.say("where is my parcel"))
    thanks = customer.say("thanks")
    assert thanks[0] == "Sure." and "order number" in joined(thanks[1:]), thanks
    complaint = joined(customer.say("this is ridiculous, you people are useless"))
    assert "sorry" in complaint and "connect you" in complaint, complaint
    assert "not sure how to help" not in complaint
    # The complaint ended the order question; "no" declines the person.
    assert "anything else" in joined(customer.say("no"))
