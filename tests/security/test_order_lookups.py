"""Finding 4: order status needs only a five-digit number, so orders can be enumerated.

Every look-up that reveals anything about an order needs the order's email, or the
channel identity that placed it (an SMS conversation from the order's phone number);
a wrong email and an unknown number get the same answer; repeated misses pause the
look-ups of a conversation, and of an order across conversations. The bot's real
actions and form validation run against a real SQLite store, through rasa_sdk's own
``Tracker`` and ``CollectingDispatcher`` (tests/bot/conftest.py).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from rasa_sdk import Action

from bot.actions import form_validation as fv
from bot.actions.order_actions import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionOrderStatus,
    ActionReportDeliveryProblem,
)
from bot.actions.return_and_payment_actions import (
    ActionCheckPayment,
    ActionInvoice,
    ActionRefundStatus,
    ActionStartReturn,
)
from tests.bot.conftest import actions_store, bot_domain, responses, run_action

JANE, SAM = "jane.doe@example.com", "sam.lee@example.com"
# The phone number Jane's orders were placed with (bot/store/sample_data.yml).
JANES_PHONE = "+447700900123"
ORDER_FORMS = [
    "order_status_form",
    "delivery_problem_form",
    "refund_status_form",
    "payment_problem_form",
    "invoice_form",
    "cancel_order_form",
    "change_address_form",
    "return_form",
]
# Each look-up with the other slots its form collects; all of 10023 is Jane's.
LOOK_UPS: List[Tuple[type, Dict[str, Any]]] = [
    (ActionOrderStatus, {}),
    (ActionReportDeliveryProblem, {"problem_type": "damaged"}),
    (ActionRefundStatus, {}),
    (ActionCheckPayment, {}),
    (ActionInvoice, {}),
]
CHANGES: List[Tuple[type, Dict[str, Any]]] = [
    (ActionCancelOrder, {}),
    (ActionChangeAddress, {"new_address": "7 Station Road, Salford M5 4WT"}),
    (ActionStartReturn, {"return_reason": "Too small"}),
]
# A generous bound: the limits are a handful of misses; the tests find where they are.
MANY = 40
VALIDATORS = {cls().name(): cls for cls in fv.StoreFormValidation.__subclasses__()}


@pytest.fixture(scope="module")
def domain() -> Dict[str, Any]:
    return bot_domain()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The actions' store: the sample data, seeded afresh for each test."""
    yield from actions_store(tmp_path, monkeypatch)


def said(action: Action, slots: Dict[str, Any], domain, sender: str) -> List[Dict[str, Any]]:
    return run_action(action, slots, domain, sender_id=sender)[0]


def validate(form: str, candidates: Dict[str, Any], domain, sender: str, known=None):
    """One validation run of ``form``: (responses, slots set)."""
    messages, events = run_action(
        VALIDATORS[f"validate_{form}"](),
        {**(known or {}), **candidates},
        domain,
        active_loop=form,
        validating=tuple(candidates),
        sender_id=sender,
    )
    return responses(messages), {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def test_every_order_form_asks_for_the_email(domain):
    for form in ORDER_FORMS:
        assert "email" in domain["forms"][form]["required_slots"], form


@pytest.mark.parametrize(
    "action, extra", LOOK_UPS + CHANGES, ids=lambda a: getattr(a, "__name__", "")
)
def test_the_order_number_alone_reveals_nothing(store, domain, action, extra):
    messages = said(action(), {"order_number": "10023", **extra}, domain, "webchat:stranger")
    assert responses(messages) == ["utter_order_not_matched"], messages
    assert set(messages[0]) <= {
        "response",
        "order_number",
        "text",
        "buttons",
        "elements",
        "custom",
        "template",
        "image",
        "attachment",
        "json_message",
    }


@pytest.mark.parametrize(
    "action, extra", LOOK_UPS + CHANGES, ids=lambda a: getattr(a, "__name__", "")
)
def test_a_wrong_email_and_an_unknown_number_get_the_same_answer(store, domain, action, extra):
    number = "10024" if action in (ActionCancelOrder, ActionChangeAddress) else "10023"
    if action is ActionStartReturn:
        number = "10025"  # Sam's; Jane's email is the wrong one here
    wrong = JANE if number == "10025" else SAM
    someone_elses = said(
        action(), {"order_number": number, "email": wrong, **extra}, domain, "webchat:a"
    )
    unknown = said(
        action(), {"order_number": "99999", "email": wrong, **extra}, domain, "webchat:b"
    )
    assert responses(someone_elses) == responses(unknown) == ["utter_order_not_matched"]
    assert [{**m, "order_number": None} for m in someone_elses] == [
        {**m, "order_number": None} for m in unknown
    ]


@pytest.mark.parametrize("form", ORDER_FORMS)
def test_the_forms_answer_a_wrong_email_and_an_unknown_number_alike(store, domain, form):
    number = {"cancel_order_form": "10024", "change_address_form": "10024"}.get(form, "10023")
    # The number first: nothing is said about it, known or not; the email is asked next.
    for candidate in (number, "99999"):
        words, slots = validate(form, {"order_number": candidate}, domain, "webchat:c")
        assert words == [] and slots == {"order_number": candidate}, (candidate, words)
    known_wrong = validate(form, {"email": SAM}, domain, "webchat:d", {"order_number": number})
    unknown = validate(form, {"email": SAM}, domain, "webchat:e", {"order_number": "99999"})
    assert known_wrong == unknown, (known_wrong, unknown)
    assert known_wrong[0] == ["utter_order_not_matched"]


def test_repeated_misses_pause_the_look_ups_of_a_conversation(store, domain):
    guesser = "webchat:guesser"
    for attempt in range(MANY):
        number = f"{20000 + attempt}"
        answer = responses(
            said(ActionOrderStatus(), {"order_number": number, "email": SAM}, domain, guesser)
        )
        if answer == ["utter_lookups_paused"]:
            break
        assert answer == ["utter_order_not_matched"], answer
    else:
        pytest.fail(f"{MANY} misses in a row and the conversation may still guess")
    assert attempt >= 3, "a customer who mistypes once or twice must not be locked out"
    # Even the right details are refused now, with the offer of a person...
    right = {"order_number": "10023", "email": JANE}
    assert responses(said(ActionOrderStatus(), right, domain, guesser)) == ["utter_lookups_paused"]
    words, slots = validate("order_status_form", {"order_number": "10023"}, domain, guesser)
    assert slots.get("requested_slot", "asked") is None, "the paused form must stop asking"
    # ...while another conversation is not affected.
    fine = said(ActionOrderStatus(), right, domain, "webchat:jane")
    assert responses(fine) == ["utter_order_status_dispatched"]


def test_misses_on_one_order_from_many_conversations_pause_that_order(store, domain):
    for attempt in range(MANY):
        guess = {"order_number": "10023", "email": f"guess{attempt}@example.com"}
        answer = responses(said(ActionOrderStatus(), guess, domain, f"webchat:guess-{attempt}"))
        if answer == ["utter_lookups_paused"]:
            break
        assert answer == ["utter_order_not_matched"], answer
    else:
        pytest.fail(f"{MANY} conversations each guessed an email of order 10023 unchecked")
    # The order's email cannot be found by guessing further, even by a new conversation;
    # other orders are still answered there.
    right = {"order_number": "10023", "email": JANE}
    assert responses(said(ActionOrderStatus(), right, domain, "webchat:new")) == [
        "utter_lookups_paused"
    ]
    other = {"order_number": "10024", "email": JANE}
    assert responses(said(ActionOrderStatus(), other, domain, "webchat:new")) == [
        "utter_order_status_not_dispatched"
    ]


def test_an_sms_from_the_orders_phone_gets_the_status_without_an_email(store, domain):
    owner = f"sms:{JANES_PHONE}"
    # The form stops after the number: the SMS channel verified who sent it.
    words, slots = validate("order_status_form", {"order_number": "10023"}, domain, owner)
    assert words == [] and slots == {"order_number": "10023", "requested_slot": None}
    status = said(ActionOrderStatus(), {"order_number": "10023"}, domain, owner)
    assert responses(status) == ["utter_order_status_dispatched"]
    assert status[0]["tracking_url"] == "https://northwind.example/track/10023"
    # Another phone, or the same digits named by another channel, must give the email.
    for sender in ("sms:+447700900999", f"rest:{JANES_PHONE}", f"webchat:{JANES_PHONE}"):
        words, slots = validate("order_status_form", {"order_number": "10023"}, domain, sender)
        assert words == [] and slots == {"order_number": "10023"}, sender
        refused = said(ActionOrderStatus(), {"order_number": "10023"}, domain, sender)
        assert responses(refused) == ["utter_order_not_matched"], sender
