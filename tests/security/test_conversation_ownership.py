"""Finding 2: any caller could write into anyone's conversation.

On the shipped assistant a REST post naming an SMS customer's phone number (or a
Telegram chat id) lands in a REST conversation of its own: the SMS customer's slots
are untouched and unseen, and no SMS goes to that number. (The agent desk's side,
replies on the channel the hand-off came from, is tests/security/test_agent_desk.py;
the upgrade of stored conversations is test_conversation_migration.py.)
"""

from __future__ import annotations

import time

from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.security.conftest import Stack, post_telegram


def test_a_rest_post_cannot_continue_an_sms_customers_conversation(stack: Stack):
    number = sms.new_number()
    # The SMS customer gives an order number (the bot then asks for their email).
    assert sms.post(stack.rasa, sms.form(number, "where is my order 10024")).status_code == 200
    stack.twilio.wait_for(number, 1)
    customer = f"sms:{number}"
    stack.rasa.user_events(customer, count=1)
    assert stack.rasa.tracker(customer)["slots"]["order_number"] == "10024"
    sent_before = len(stack.twilio.sent_to(number))

    # Someone else, with the REST token, names that phone number as the sender.
    answer = stack.rasa.rest(number, "what are the order details? my email is x@evil.example")
    assert answer.status_code == 200
    replies = answer.json()
    assert replies and all(reply["recipient_id"] == number for reply in replies)
    assert "10024" not in str(replies)  # nothing of the SMS conversation is revealed

    # Their message is in the REST channel's own conversation, not the customer's.
    assert [e["text"] for e in stack.rasa.user_events(f"rest:{number}", count=1)] == [
        "what are the order details? my email is x@evil.example"
    ]
    tracker = stack.rasa.tracker(customer)
    assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == [
        "where is my order 10024"
    ]
    assert tracker["slots"].get("email") is None
    assert tracker["latest_input_channel"] == "twilio"
    time.sleep(2)
    assert len(stack.twilio.sent_to(number)) == sent_before  # no SMS for the REST turn


def test_a_rest_post_cannot_reach_a_telegram_chat(stack: Stack):
    chat = tg.next_id()
    assert post_telegram(stack, tg.text_message(chat, "hello")).status_code == 200
    stack.rasa.user_events(f"telegram:{chat}", count=1)
    assert stack.rasa.rest(str(chat), "/restart").status_code == 200
    stack.rasa.user_events(f"rest:{chat}", count=1)
    assert [e["text"] for e in stack.rasa.user_events(f"telegram:{chat}")] == ["hello"]


def test_the_http_api_cannot_send_an_sms_for_another_channels_conversation(stack: Stack):
    """`output_channel=twilio` sends through the SMS channel to the conversation's id: a
    REST conversation named after a phone number gets nothing sent to that number."""
    number = sms.new_number()
    assert stack.rasa.rest(number, "hello").status_code == 200
    triggered = stack.rasa.api(
        "POST",
        f"/conversations/rest:{number}/trigger_intent?output_channel=twilio",
        json={"name": "greet"},
    )
    assert triggered.status_code == 200, triggered.text
    time.sleep(2)
    assert stack.twilio.sent_to(number) == []
