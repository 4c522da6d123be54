"""Returns, refund status, payment checks and invoices, on the seeded store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.actions.order_store import STORE_TODAY_ENV
from bot.actions.return_and_payment_actions import (
    ActionCheckPayment,
    ActionInvoice,
    ActionRefundStatus,
    ActionStartReturn,
)

from .conftest import SAM, TODAY, only, owned, run_action


def test_a_return_inside_30_days_gets_a_reference_and_a_label_by_email(store, domain):
    slots = {"order_number": "10025", "email": SAM, "return_reason": "Too small"}
    messages, events = run_action(ActionStartReturn(), slots, domain)
    said = only(messages)
    assert said["response"] == "utter_return_started"
    assert said["return_reference"].startswith("RET-") and said["email"] == SAM
    assert said["drop_off_by"] == "Wednesday 25 June"
    assert [(e["name"], e["value"]) for e in events] == [("return_reason", None)]
    again = only(run_action(ActionStartReturn(), slots, domain)[0])
    assert again["response"] == "utter_return_already_started"
    assert again["return_reference"] == said["return_reference"]


def test_a_return_after_30_days_is_refused_with_the_dates(store, domain):
    slots = {"order_number": "10026", "email": SAM, "return_reason": "Changed my mind"}
    said = only(run_action(ActionStartReturn(), slots, domain)[0])
    assert said["response"] == "utter_return_window_passed"
    assert said["delivered_on"] == "Sunday 27 April"
    assert said["return_deadline"] == "Tuesday 27 May"
    assert store.returns("10026") == []


@pytest.mark.parametrize(
    "number, email, response",
    [
        ("10024", "jane.doe@example.com", "utter_return_not_delivered"),
        ("10027", "jane.doe@example.com", "utter_order_status_cancelled"),
        ("10025", "jane.doe@example.com", "utter_order_not_matched"),
        ("12345", SAM, "utter_order_not_matched"),
    ],
)
def test_returns_that_cannot_start_say_why(store, domain, number, email, response):
    slots = {"order_number": number, "email": email, "return_reason": "Too small"}
    said = only(run_action(ActionStartReturn(), slots, domain)[0])
    assert said["response"] == response and said.get("order_number", number) == number


def test_the_refund_of_cancelled_10027_shows_when_and_how_it_was_issued(store, domain):
    said = only(run_action(ActionRefundStatus(), owned("10027"), domain)[0])
    assert said["response"] == "utter_refund_issued"
    assert said["amount"] == "£45.00" and said["payment_method"] == "debit card"
    assert said["issued_on"] == "Monday 9 June"
    assert "5-10 business days" in said["refund_timing"]


def test_a_refund_not_arrived_after_10_business_days_is_traced(store, domain, monkeypatch):
    store.get_order("10027")
    monkeypatch.setenv(STORE_TODAY_ENV, (TODAY + timedelta(days=21)).isoformat())
    said = only(run_action(ActionRefundStatus(), owned("10027"), domain)[0])
    assert said["response"] == "utter_refund_overdue" and said["issued_on"] == "Monday 9 June"


def test_a_refund_waits_for_the_returned_parcel(store, domain):
    store.start_return("10025", SAM, "Too small")
    said = only(run_action(ActionRefundStatus(), owned("10025"), domain)[0])
    assert said["response"] == "utter_refund_after_return"
    assert said["return_reference"].startswith("RET-")
    nothing = only(run_action(ActionRefundStatus(), owned("10023"), domain)[0])
    assert nothing["response"] == "utter_no_refund" and nothing["status"] == "Dispatched"


def test_two_completed_payments_are_passed_on_as_a_duplicate_once(store, domain):
    said = only(run_action(ActionCheckPayment(), owned("10029"), domain)[0])
    assert said["response"] == "utter_duplicate_payment_found"
    assert said["amount"] == "£56.40" and said["payment_count"] == 2
    assert said["case_reference"].startswith("CASE-")
    again = only(run_action(ActionCheckPayment(), owned("10029"), domain)[0])
    assert again["response"] == "utter_case_already_open"
    assert again["case_reference"] == said["case_reference"]


def test_one_payment_is_shown_with_its_amount_and_method(store, domain):
    said = only(run_action(ActionCheckPayment(), owned("10028"), domain)[0])
    assert said["response"] == "utter_payment_single"
    assert said["amount"] == "£18.75" and said["payment_method"] == "PayPal"
    assert said["paid_on"] == "Wednesday 11 June"


@pytest.mark.parametrize(
    "number, response",
    [
        ("10023", "utter_invoice_available"),
        ("48213", "utter_invoice_available"),
        ("10024", "utter_invoice_not_ready"),
        ("10027", "utter_invoice_order_cancelled"),
        ("12345", "utter_order_not_matched"),
    ],
)
def test_an_invoice_is_there_once_the_order_is_dispatched(store, domain, number, response):
    said = only(run_action(ActionInvoice(), owned(number), domain)[0])
    assert said["response"] == response and said["order_number"] == number
