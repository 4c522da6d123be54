"""Order status, cancel, address change and delivery problems, on the seeded store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.actions.lookup_limits import Claimant
from bot.actions.order_actions import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionConfirmCancel,
    ActionOrderStatus,
    ActionReportDeliveryProblem,
)
from bot.actions.order_policy import add_working_days
from bot.actions.order_store import STORE_TODAY_ENV
from bot.actions.return_and_payment_actions import ActionStartReturn
from bot.actions.wording import Wording

from .conftest import JANE, SAM, TODAY, only, owned, responses, run_action


def test_where_is_order_10023_gives_the_carrier_dates_and_tracking_link(store, domain):
    messages, events = run_action(ActionOrderStatus(), owned("10023"), domain)
    said = only(messages)
    assert said["response"] == "utter_order_status_dispatched"
    assert said["order_number"] == "10023" and said["carrier"] == "DPD"
    assert said["dispatched_on"] == Wording().day(add_working_days(TODAY, -2)) == "Monday 9 June"
    assert said["expected_on"] == "Thursday 12 June"
    assert said["tracking_url"] == "https://northwind.example/track/10023"
    assert events == []


@pytest.mark.parametrize(
    "number, response, values",
    [
        ("10024", "utter_order_status_not_dispatched", {"status": "Processing"}),
        ("10028", "utter_order_status_not_dispatched", {"status": "Received"}),
        ("10025", "utter_order_status_delivered", {"delivered_on": "Sunday 1 June"}),
        ("10027", "utter_order_status_cancelled", {"cancelled_on": "Sunday 8 June"}),
        ("10030", "utter_order_status_late", {"carrier": "DPD"}),
    ],
)
def test_each_status_has_its_answer(store, domain, number, response, values):
    said = only(run_action(ActionOrderStatus(), owned(number), domain)[0])
    assert said["response"] == response and said["order_number"] == number
    assert values.items() <= said.items()


def test_a_parcel_past_its_expected_day_is_delayed_before_it_is_late(store, domain, monkeypatch):
    store.get_order("10023")  # seeds with TODAY's dates
    friday = TODAY + timedelta(days=2)
    monkeypatch.setenv(STORE_TODAY_ENV, friday.isoformat())
    said = only(run_action(ActionOrderStatus(), owned("10023"), domain)[0])
    assert said["response"] == "utter_order_status_delayed"
    assert said["expected_on"] == "Thursday 12 June" and said["late_after"] == "Monday 16 June"


def test_an_unknown_order_and_someone_elses_are_answered_alike(store, domain):
    unknown = only(run_action(ActionOrderStatus(), owned("12345"), domain)[0])
    assert unknown["response"] == "utter_order_not_matched" and unknown["order_number"] == "12345"
    not_yours = only(run_action(ActionOrderStatus(), owned("10025", email=JANE), domain)[0])
    assert {**not_yours, "order_number": "12345"} == unknown
    # Without an email (a forged tracker: the form asks for one) nothing is said either.
    bare = only(run_action(ActionOrderStatus(), {"order_number": "10025"}, domain)[0])
    assert bare["response"] == "utter_order_not_matched"


def test_cancel_10024_refunds_it_and_its_status_then_shows_cancelled(store, domain):
    slots = {"order_number": "10024", "email": JANE}
    said = only(run_action(ActionCancelOrder(), slots, domain)[0])
    assert said["response"] == "utter_order_cancelled"
    assert said["amount"] == "£32.00" and said["payment_method"] == "credit card"
    assert "5-10 business days" in said["refund_timing"]
    status = only(run_action(ActionOrderStatus(), slots, domain)[0])
    assert status["response"] == "utter_order_status_cancelled"
    assert status["cancelled_on"] == "Wednesday 11 June"
    again = only(run_action(ActionCancelOrder(), slots, domain)[0])
    assert again["response"] == "utter_order_status_cancelled"


def test_a_dispatched_order_cannot_be_cancelled(store, domain):
    said = only(
        run_action(ActionCancelOrder(), {"order_number": "10023", "email": JANE}, domain)[0]
    )
    assert said["response"] == "utter_cancel_refused" and said["status"] == "Dispatched"
    assert store.get_order("10023").status == "Dispatched"


def test_only_the_customer_who_ordered_can_cancel(store, domain):
    slots = {"order_number": "10024", "email": SAM}
    said = only(run_action(ActionCancelOrder(), slots, domain)[0])
    assert said["response"] == "utter_order_not_matched" and said["order_number"] == "10024"
    assert store.get_order("10024").status == "Processing"


def test_the_cancellation_is_confirmed_only_with_the_owner_and_while_it_is_possible(store, domain):
    said = only(run_action(ActionConfirmCancel(), owned("10024"), domain)[0])
    assert said["response"] == "utter_confirm_cancel" and said["order_number"] == "10024"
    refused = only(run_action(ActionConfirmCancel(), owned("10023"), domain)[0])
    assert refused["response"] == "utter_cancel_refused" and refused["status"] == "Dispatched"
    cancelled = only(run_action(ActionConfirmCancel(), owned("10027"), domain)[0])
    assert cancelled["response"] == "utter_order_status_cancelled"
    stranger = only(run_action(ActionConfirmCancel(), owned("10024", email=SAM), domain)[0])
    assert stranger["response"] == "utter_order_not_matched"


def test_an_sms_from_the_orders_phone_may_cancel_it_without_an_email(store, domain):
    slots = {"order_number": "10024"}
    said = only(run_action(ActionCancelOrder(), slots, domain, sender_id="sms:+447700900123")[0])
    assert said["response"] == "utter_order_cancelled"
    assert store.get_order("10024").status == "Cancelled"
    other = only(run_action(ActionCancelOrder(), {"order_number": "10028"}, domain)[0])
    assert other["response"] == "utter_order_not_matched"
    assert store.get_order("10028").status == "Received"


def test_the_address_of_an_undispatched_order_changes_and_the_slot_is_cleared(store, domain):
    slots = {"order_number": "10024", "email": JANE, "new_address": "7 Station Road, M5 4WT"}
    messages, events = run_action(ActionChangeAddress(), slots, domain)
    assert responses(messages) == ["utter_address_changed"]
    assert messages[0]["new_address"] == "7 Station Road, M5 4WT"
    assert store.get_order("10024").delivery_address == "7 Station Road, M5 4WT"
    assert events == [{"event": "slot", "timestamp": None, "name": "new_address", "value": None}]


def test_a_dispatched_dpd_parcel_can_only_be_redirected_by_dpd(store, domain):
    slots = {"order_number": "10023", "email": JANE, "new_address": "7 Station Road, M5 4WT"}
    messages, _ = run_action(ActionChangeAddress(), slots, domain)
    assert responses(messages) == ["utter_address_change_refused", "utter_address_redirect_dpd"]
    assert store.get_order("10023").delivery_address == "12 Elm Road, Manchester M14 5TT"


def test_a_late_parcel_gets_one_investigation(store, domain):
    slots = owned("10030", problem_type="late")
    messages, events = run_action(ActionReportDeliveryProblem(), slots, domain)
    said = only(messages)
    assert said["response"] == "utter_late_case_opened"
    assert said["case_reference"].startswith("CASE-")
    assert events[0]["name"] == "problem_type" and events[0]["value"] is None
    again = only(run_action(ActionReportDeliveryProblem(), slots, domain)[0])
    assert again["response"] == "utter_case_already_open"
    assert again["case_reference"] == said["case_reference"]


def test_a_parcel_is_not_late_before_5_working_days(store, domain):
    slots = owned("10023", problem_type="lost")
    said = only(run_action(ActionReportDeliveryProblem(), slots, domain)[0])
    assert said["response"] == "utter_parcel_not_late_yet"
    assert said["late_after"] == "Monday 16 June" and said["carrier"] == "DPD"


@pytest.mark.parametrize(
    "number, problem, response",
    [
        ("48213", "damaged", "utter_damaged_case_opened"),
        ("48213", "wrong_item", "utter_wrong_item_case_opened"),
        ("10029", "lost", "utter_missing_parcel_case_opened"),
        ("10026", "damaged", "utter_problem_report_window_passed"),
        ("10024", "damaged", "utter_problem_not_delivered_yet"),
        ("10024", "late", "utter_problem_not_delivered_yet"),
        ("10027", "late", "utter_order_status_cancelled"),
    ],
)
def test_each_delivery_problem_has_its_answer(store, domain, number, problem, response):
    slots = owned(number, problem_type=problem)
    said = only(run_action(ActionReportDeliveryProblem(), slots, domain)[0])
    assert said["response"] == response and said["order_number"] == number


def test_a_parcel_just_marked_delivered_is_looked_for_first(store, domain, monkeypatch):
    delivered = store.get_order("48213").delivered_on
    monkeypatch.setenv(STORE_TODAY_ENV, delivered.isoformat())
    slots = owned("48213", problem_type="lost")
    said = only(run_action(ActionReportDeliveryProblem(), slots, domain)[0])
    assert said["response"] == "utter_delivered_check_first"
    assert said["wait_until"] == Wording().day(add_working_days(delivered, 1))


@pytest.mark.parametrize(
    "action, slots",
    [
        (ActionOrderStatus, {}),
        (ActionConfirmCancel, {}),
        (ActionChangeAddress, {}),  # the paused form never asked for the address
        (ActionReportDeliveryProblem, {}),
        (ActionStartReturn, {}),
    ],
    ids=lambda a: getattr(a, "__name__", ""),
)
def test_a_paused_conversation_hears_why_and_its_order_slots_are_cleared(
    store, domain, action, slots
):
    guesser = "webchat:guesser"
    for attempt in range(store.limits.per_conversation):
        store.order_access(f"2000{attempt}", Claimant(guesser, SAM))
    messages, events = run_action(action(), {**owned("10024"), **slots}, domain, sender_id=guesser)
    assert responses(messages) == ["utter_lookups_paused"]
    cleared = {e["name"] for e in events if e["value"] is None}
    assert {"order_number", "email"} <= cleared
    assert store.get_order("10024").status == "Processing"
