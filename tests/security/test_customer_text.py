"""Finding 3: customers could type intents; button payloads were not checked.

On the shipped assistant, a customer's message that starts with ``/`` goes through NLU
as text (the classifier ranks it, the extractors read it), on every channel, unless it
is exactly the payload of a button the bot sent in that conversation. Channel-level
checks (each channel passes the text on unchanged) are in
tests/security/test_platform_text_is_text.py.
"""

from __future__ import annotations

from typing import Any, Dict

from tests.channels import sms_support as sms
from tests.channels import telegram_payloads as tg
from tests.rasa_process import RasaServer
from tests.security.conftest import Stack, post_telegram


def last_parse(server: RasaServer, conversation: str, count: int) -> Dict[str, Any]:
    event = server.user_events(conversation, count=count)[count - 1]
    return dict(event["parse_data"])


def read_as_text(parse: Dict[str, Any]) -> bool:
    """NLU ranked the intents (a shortcut gives one at 1.0) and no entity came from the
    shortcut's JSON."""
    extractors = {entity.get("extractor") for entity in parse.get("entities") or []}
    return len(parse.get("intent_ranking") or []) > 1 and "RegexMessageHandler" not in extractors


def test_typed_intents_and_entities_are_read_as_text_over_rest(stack: Stack):
    sender = "typed-intents"
    conversation = f"rest:{sender}"
    typed = [
        "/restart",
        '/inform{"problem_type": "damaged", "order_number": "10023"}',
        '/send_attachment{"attachment_kind": "photo", "attachment_supported": true}',
        "/request_human@0.99",
    ]
    for count, text in enumerate(typed, start=1):
        assert stack.rasa.rest(sender, text).status_code == 200
        parse = last_parse(stack.rasa, conversation, count)
        assert parse["text"] == text
        assert read_as_text(parse), parse
    tracker = stack.rasa.tracker(conversation)
    # Only a button sets problem_type; the digits of 10023 any customer may type.
    assert tracker["slots"].get("problem_type") is None
    assert not any(e["event"] == "restart" for e in tracker["events"])


def test_a_payload_the_bot_offered_is_a_button_press_and_a_forged_one_is_text(stack: Stack):
    sender = "buttons"
    conversation = f"rest:{sender}"
    # Not offered yet: read as text.
    assert stack.rasa.rest(sender, "/payment_problem").status_code == 200
    assert read_as_text(last_parse(stack.rasa, conversation, 1))
    # The greeting offers four buttons; pressing one is a shortcut.
    greeting = stack.rasa.rest(sender, "hello").json()
    offered = [b["payload"] for reply in greeting for b in reply.get("buttons", [])]
    assert "/order_status" in offered
    assert stack.rasa.rest(sender, "/order_status").status_code == 200
    pressed = last_parse(stack.rasa, conversation, 3)
    assert pressed["intent"] == {"name": "order_status", "confidence": 1.0}
    assert not read_as_text(pressed)
    # A payload with entities the bot never offered: text, whatever it claims.
    forged = '/order_status{"order_number": "10023"}'
    assert stack.rasa.rest(sender, forged).status_code == 200
    assert read_as_text(last_parse(stack.rasa, conversation, 4))


def test_typed_intents_are_text_on_telegram_and_sms(stack: Stack):
    chat = tg.next_id()
    update = tg.text_message(chat, '/inform{"problem_type": "lost"}')
    assert post_telegram(stack, update).status_code == 200
    parse = last_parse(stack.rasa, f"telegram:{chat}", 1)
    assert parse["text"] == '/inform{"problem_type": "lost"}' and read_as_text(parse)
    assert stack.rasa.tracker(f"telegram:{chat}")["slots"].get("problem_type") is None

    number = sms.new_number()
    assert sms.post(stack.rasa, sms.form(number, "/request_human")).status_code == 200
    parse = last_parse(stack.rasa, f"sms:{number}", 1)
    assert parse["text"] == "/request_human" and read_as_text(parse)
