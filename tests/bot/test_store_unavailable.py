"""Every action answers utter_store_unavailable when the store is down, and logs no
customer data."""

from __future__ import annotations

import logging

import pytest

from bot.actions.account_actions import ActionBlockCard, ActionCloseAccount, ActionSendPasswordReset
from bot.actions.order_actions import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionOrderStatus,
    ActionReportDeliveryProblem,
)
from bot.actions.order_store import STORE_URL_ENV
from bot.actions.return_and_payment_actions import (
    ActionCheckPayment,
    ActionInvoice,
    ActionRefundStatus,
    ActionStartReturn,
)

from .conftest import responses, run_action

SLOTS = {
    "order_number": "10024",
    "email": "jane.doe@example.com",
    "new_address": "7 Station Road, Salford M5 4WT",
    "return_reason": "Too small",
    "problem_type": "late",
    "full_name": "Jane Doe",
}
ACTIONS = [
    (ActionOrderStatus, []),
    (ActionCancelOrder, []),
    (ActionChangeAddress, ["new_address"]),
    (ActionReportDeliveryProblem, ["problem_type"]),
    (ActionStartReturn, ["return_reason"]),
    (ActionRefundStatus, []),
    (ActionCheckPayment, []),
    (ActionInvoice, []),
    (ActionSendPasswordReset, []),
    (ActionCloseAccount, []),
    (ActionBlockCard, ["full_name"]),
]


@pytest.fixture(params=["missing folder", "not a database"])
def broken_store(request, tmp_path, monkeypatch):
    if request.param == "missing folder":
        url = f"sqlite:///{tmp_path / 'gone' / 'northwind.db'}"
    else:
        garbage = tmp_path / "northwind.db"
        garbage.write_bytes(b"this is not an SQLite file" * 100)
        url = f"sqlite:///{garbage}"
    monkeypatch.setenv(STORE_URL_ENV, url)


@pytest.mark.parametrize("action, cleared", ACTIONS, ids=lambda a: getattr(a, "__name__", ""))
def test_a_store_failure_is_said_not_crashed_on(broken_store, domain, caplog, action, cleared):
    caplog.set_level(logging.INFO)
    messages, events = run_action(action(), SLOTS, domain)
    said = responses(messages)
    assert said[0] == "utter_store_unavailable"
    # A lost card cannot wait: the customer also hears about the 24/7 card line.
    assert said[1:] == (["utter_block_card_by_phone"] if action is ActionBlockCard else [])
    assert [(e["name"], e["value"]) for e in events] == [(slot, None) for slot in cleared]
    logged = caplog.text
    assert action().name() in logged
    for private in ("10024", "jane", "Station Road", "Too small", "Jane Doe"):
        assert private not in logged
