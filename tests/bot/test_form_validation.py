"""The forms' validation actions, run as the action server runs them on a real store."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from bot.actions import form_validation as fv
from bot.actions.order_store import STORE_URL_ENV

from .conftest import JANE, JANES_PHONE, SAM, SAMS_PHONE, responses, run_action

FORMS = [
    "order_status_form",
    "cancel_order_form",
    "change_address_form",
    "delivery_problem_form",
    "return_form",
    "refund_status_form",
    "payment_problem_form",
    "invoice_form",
    "reset_password_form",
    "close_account_form",
    "lost_card_form",
]
ACTIONS = {cls().name(): cls for cls in fv.StoreFormValidation.__subclasses__()}


def validate(
    form: str,
    domain: Dict[str, Any],
    candidates: Dict[str, Any],
    known: Dict[str, Any] | None = None,
    *,
    sender: str = "webchat:customer-1",
) -> Tuple[List[str], Dict[str, Any], List[Dict[str, Any]]]:
    """Validate this turn's slot ``candidates`` with ``known`` slots already filled, in
    the conversation ``sender``.

    Returns the responses uttered, the slots set, and the raw messages.
    """
    slots = {**(known or {}), **candidates}
    messages, events = run_action(
        ACTIONS[f"validate_{form}"](),
        slots,
        domain,
        active_loop=form,
        validating=tuple(candidates),
        sender_id=sender,
    )
    set_slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    return responses(messages), set_slots, messages


def test_every_form_in_the_domain_has_its_validation_action(domain):
    assert sorted(domain["forms"]) == sorted(FORMS)
    assert sorted(ACTIONS) == sorted(f"validate_{form}" for form in FORMS)


@pytest.mark.parametrize(
    "typed", ["10023", "#10023", "10 023", " #10023 ", "it's 10023", "order no. 10023 thanks"]
)
def test_an_order_number_is_cleaned_and_found(store, domain, typed):
    said, slots, _ = validate("order_status_form", domain, {"order_number": typed})
    assert said == [] and slots == {"order_number": "10023"}


@pytest.mark.parametrize("typed", ["1002", "100234", "abcde", "10O23", "it's 1234", "no idea"])
def test_an_order_number_that_is_not_5_digits_is_asked_again(store, domain, typed):
    said, slots, _ = validate("invoice_form", domain, {"order_number": typed})
    assert said == ["utter_invalid_order_number"] and slots == {"order_number": None}


def test_an_order_number_is_taken_without_saying_whether_it_exists(store, domain):
    # The email is asked next either way: only then is anything said about the order.
    for number in ("10023", "99999"):
        said, slots, _ = validate("refund_status_form", domain, {"order_number": number})
        assert said == [] and slots == {"order_number": number}


def test_an_unknown_number_and_a_wrong_email_are_one_answer_and_both_are_asked_again(store, domain):
    unknown = validate("refund_status_form", domain, {"email": JANE}, {"order_number": "99999"})
    not_hers = validate("refund_status_form", domain, {"email": JANE}, {"order_number": "10025"})
    assert unknown[0] == not_hers[0] == ["utter_order_not_matched"]
    assert unknown[1] == not_hers[1] == {"order_number": None, "email": None}
    assert unknown[2][0]["order_number"] == "99999"


def test_a_dispatched_order_is_refused_to_its_owner_before_any_confirmation(store, domain):
    # 10023 left the warehouse with DPD: too late to cancel or readdress, said as soon
    # as the email shows it is the customer's own order.
    said, slots, messages = validate(
        "cancel_order_form", domain, {"email": JANE}, {"order_number": "10023"}
    )
    assert said == ["utter_cancel_refused"] and slots == {"email": JANE, "order_number": None}
    assert messages[0]["status"] == "Dispatched"
    said, slots, _ = validate(
        "change_address_form", domain, {"order_number": "10023"}, {"email": JANE}
    )
    assert said == ["utter_address_change_refused", "utter_address_redirect_dpd"]
    assert slots == {"order_number": None}
    # Before the email nothing is said about it; still processing: accepted.
    said, slots, _ = validate("cancel_order_form", domain, {"order_number": "10023"})
    assert said == [] and slots == {"order_number": "10023"}
    said, slots, _ = validate(
        "cancel_order_form", domain, {"email": JANE}, {"order_number": "10024"}
    )
    assert said == [] and slots == {"email": JANE, "order_number": "10024"}
    # A look-up of a dispatched order is never refused.
    said, slots, _ = validate(
        "order_status_form", domain, {"email": JANE}, {"order_number": "10023"}
    )
    assert said == [] and slots == {"email": JANE, "order_number": "10023"}


def test_cancelling_needs_the_email_the_order_was_placed_with(store, domain):
    said, slots, messages = validate(
        "cancel_order_form", domain, {"email": SAM}, {"order_number": "10024"}
    )
    assert said == ["utter_order_not_matched"] and messages[0]["order_number"] == "10024"
    assert slots == {"order_number": None, "email": None}

    said, slots, _ = validate(
        "cancel_order_form", domain, {"email": " Jane.Doe@Example.com"}, {"order_number": "10024"}
    )
    assert said == [] and slots["email"] == JANE


def test_an_email_known_before_the_order_number_is_checked_against_it(store, domain):
    # "Change the address of 10028" after Sam's email was taken for another task.
    said, slots, _ = validate(
        "change_address_form", domain, {"order_number": "10028"}, {"email": SAM}
    )
    assert said == ["utter_order_not_matched"]
    assert slots == {"order_number": None, "email": None}


def test_both_given_at_once_are_checked_and_the_miss_said_once(store, domain):
    said, slots, _ = validate("return_form", domain, {"order_number": "10025", "email": JANE})
    assert said == ["utter_order_not_matched"]
    assert slots == {"order_number": None, "email": None}


def test_every_look_up_checks_the_email(store, domain):
    for form in ("order_status_form", "invoice_form", "payment_problem_form"):
        said, slots, _ = validate(form, domain, {"order_number": "10025"}, {"email": JANE})
        assert said == ["utter_order_not_matched"] and slots["order_number"] is None, form


def test_an_sms_from_the_orders_phone_is_not_asked_for_the_email(store, domain):
    said, slots, _ = validate(
        "delivery_problem_form", domain, {"order_number": "10025"}, sender=f"sms:{SAMS_PHONE}"
    )
    # The form goes on to the problem, skipping the email.
    assert said == [] and slots == {"order_number": "10025", "requested_slot": "problem_type"}
    said, slots, _ = validate(
        "delivery_problem_form", domain, {"order_number": "10025"}, sender=f"sms:{JANES_PHONE}"
    )
    assert said == [] and slots == {"order_number": "10025"}  # Rasa asks for the email
    # An SMS conversation still proves ownership with the email of an order placed
    # without a phone, and a refusal after dispatch is said as soon as it is proved.
    said, slots, _ = validate(
        "change_address_form", domain, {"order_number": "10023"}, sender=f"sms:{JANES_PHONE}"
    )
    assert said == ["utter_address_change_refused", "utter_address_redirect_dpd"]
    assert slots == {"order_number": None}


def test_a_paused_conversation_stops_the_form_without_a_word(store, domain):
    guesser = "webchat:guesser"
    limit = store.limits.per_conversation
    for attempt in range(limit):
        said, slots, _ = validate(
            "order_status_form",
            domain,
            {"email": SAM},
            {"order_number": f"2000{attempt}"},
            sender=guesser,
        )
        assert said == ["utter_order_not_matched"]
        assert ("requested_slot" in slots) == (attempt == limit - 1), attempt
    assert slots["requested_slot"] is None
    # The miss that reached the limit already stops the form (requested_slot None); the
    # action after it says why. So does the next run, whatever it is given.
    said, slots, _ = validate(
        "order_status_form", domain, {"order_number": "10023"}, sender=guesser
    )
    assert said == [] and slots == {"requested_slot": None}


@pytest.mark.parametrize(
    "typed", ["my email is Jane.Doe@example.com", "oops, try jane.doe@example.com."]
)
def test_an_email_in_a_sentence_is_found(store, domain, typed):
    said, slots, _ = validate("reset_password_form", domain, {"email": typed})
    assert said == [] and slots == {"email": "jane.doe@example.com"}


@pytest.mark.parametrize("typed", ["jane.doe", "jane@", "jane doe@example.com", "@example.com"])
def test_a_malformed_email_is_asked_again(store, domain, typed):
    said, slots, _ = validate("reset_password_form", domain, {"email": typed})
    assert said == ["utter_invalid_email"] and slots == {"email": None}


def test_a_password_reset_never_says_whether_the_account_exists(store, domain):
    for email in ("jane.doe@example.com", "nobody@example.com"):
        said, slots, _ = validate("reset_password_form", domain, {"email": email})
        assert said == [] and slots == {"email": email}


def test_closing_or_blocking_needs_an_existing_account(store, domain):
    for form in ("close_account_form", "lost_card_form"):
        said, slots, _ = validate(form, domain, {"email": "nobody@example.com"})
        assert said == ["utter_account_not_found"] and slots["email"] is None


def test_the_name_must_match_the_account_of_the_email(store, domain):
    said, slots, _ = validate(
        "lost_card_form", domain, {"email": "priya.shah@example.com"}, {"full_name": "Jane Doe"}
    )
    assert said == ["utter_name_mismatch"]
    assert slots == {"email": "priya.shah@example.com", "full_name": None}

    said, slots, _ = validate(
        "lost_card_form", domain, {"full_name": "priya  shah"}, {"email": "priya.shah@example.com"}
    )
    assert said == [] and slots == {"full_name": "priya shah"}

    said, slots, _ = validate(
        "lost_card_form", domain, {"full_name": "Sam Lee"}, {"email": "priya.shah@example.com"}
    )
    assert said == ["utter_name_mismatch"] and slots == {"full_name": None}


@pytest.mark.parametrize("typed", ["Jane", "J4ne Doe", "", "12 34"])
def test_a_name_needs_two_words_of_letters(store, domain, typed):
    said, slots, _ = validate("lost_card_form", domain, {"full_name": typed})
    assert said == ["utter_invalid_full_name"] and slots == {"full_name": None}


def test_names_with_hyphens_apostrophes_and_accents_are_names(store, domain):
    said, slots, _ = validate("lost_card_form", domain, {"full_name": "Zoë O'Neill-Brown"})
    assert said == [] and slots == {"full_name": "Zoë O'Neill-Brown"}


def test_a_new_address_needs_10_characters_and_a_number(store, domain):
    known = {"order_number": "10024", "email": "jane.doe@example.com"}
    for typed in ("Elm Road", "Flat 2", "somewhere in Leeds"):
        said, slots, _ = validate("change_address_form", domain, {"new_address": typed}, known)
        assert said == ["utter_invalid_address"] and slots["new_address"] is None
    said, slots, _ = validate(
        "change_address_form", domain, {"new_address": " 7 Station Road,\n Salford M5 4WT"}, known
    )
    assert said == [] and slots["new_address"] == "7 Station Road, Salford M5 4WT"


def test_a_return_reason_is_kept_as_typed(store, domain):
    known = {"order_number": "10025", "email": "sam.lee@example.com"}
    said, slots, _ = validate("return_form", domain, {"return_reason": "ok"}, known)
    assert said == ["utter_invalid_return_reason"] and slots["return_reason"] is None
    said, slots, _ = validate(
        "return_form", domain, {"return_reason": "It arrived damaged or faulty"}, known
    )
    assert said == [] and slots["return_reason"] == "It arrived damaged or faulty"


@pytest.mark.parametrize(
    "typed, kind",
    [
        ("damaged", "damaged"),
        ("It arrived damaged or faulty", "damaged"),
        ("the vase is smashed", "damaged"),
        ("wrong item", "wrong_item"),
        ("you sent me the wrong colour", "wrong_item"),
        ("an item is missing from the box", "wrong_item"),
        ("it says delivered but it's not here", "lost"),
        ("my parcel never arrived", "lost"),
        ("it's late", "late"),
        ("still waiting for it", "late"),
    ],
)
def test_a_described_problem_becomes_one_of_four_types(store, domain, typed, kind):
    known = {"order_number": "10030"}
    said, slots, _ = validate("delivery_problem_form", domain, {"problem_type": typed}, known)
    assert said == [] and slots["problem_type"] == kind


def test_an_unrecognised_problem_is_asked_again(store, domain):
    said, slots, _ = validate(
        "delivery_problem_form", domain, {"problem_type": "blue"}, {"order_number": "10030"}
    )
    assert said == ["utter_invalid_problem_type"] and slots["problem_type"] is None


def test_a_store_that_is_down_lets_a_well_formed_value_through(tmp_path, monkeypatch, domain):
    # The action after the form says the store is unavailable, once.
    monkeypatch.setenv(STORE_URL_ENV, f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")
    said, slots, _ = validate(
        "cancel_order_form", domain, {"order_number": "10024", "email": "sam.lee@example.com"}
    )
    assert said == []
    assert slots == {"order_number": "10024", "email": "sam.lee@example.com"}
    said, slots, _ = validate("cancel_order_form", domain, {"order_number": "1002"})
    assert said == ["utter_invalid_order_number"]
