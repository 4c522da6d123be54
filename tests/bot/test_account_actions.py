"""Password reset, account closure and store card block, on the seeded store."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from bot.actions import store_schema as t
from bot.actions.account_actions import (
    ActionBlockCard,
    ActionCloseAccount,
    ActionSendPasswordReset,
)
from bot.actions.order_store import STORE_URL_ENV

from .conftest import responses, run_action


def test_a_reset_link_gets_the_same_answer_whether_or_not_the_account_exists(store, domain):
    for email in ("jane.doe@example.com", "nobody@example.com"):
        messages, _ = run_action(ActionSendPasswordReset(), {"email": email}, domain)
        assert responses(messages) == ["utter_password_reset_sent"]
        assert messages[0]["email"] == email
    engine = sa.create_engine(os.environ[STORE_URL_ENV], future=True)
    with engine.connect() as conn:
        query = sa.select(t.password_resets.c.email, t.password_resets.c.sent)
        sent = dict(conn.execute(query).all())
    engine.dispose()
    assert sent == {"jane.doe@example.com": True, "nobody@example.com": False}


def test_an_account_with_open_orders_is_not_closed(store, domain):
    messages, _ = run_action(ActionCloseAccount(), {"email": "jane.doe@example.com"}, domain)
    assert responses(messages) == ["utter_account_has_open_orders"]
    assert messages[0]["open_orders"] == "10023, 10024, 10028 and 10030"
    assert store.get_account("jane.doe@example.com").closure_requested_on is None


def test_an_account_with_nothing_open_is_closed(store, domain):
    messages, _ = run_action(ActionCloseAccount(), {"email": "priya.shah@example.com"}, domain)
    assert responses(messages) == ["utter_account_closure_requested"]
    assert store.get_account("priya.shah@example.com").closure_requested_on is not None


def test_a_lost_card_is_blocked_and_replaced_and_the_name_forgotten(store, domain):
    slots = {"email": "priya.shah@example.com", "full_name": "Priya Shah"}
    messages, events = run_action(ActionBlockCard(), slots, domain)
    assert responses(messages) == ["utter_card_blocked"]
    assert [(e["name"], e["value"]) for e in events] == [("full_name", None)]
    assert store.get_account("priya.shah@example.com").store_card == "blocked"
    again, _ = run_action(ActionBlockCard(), slots, domain)
    assert responses(again) == ["utter_card_already_blocked"]


@pytest.mark.parametrize(
    "email, name, response",
    [
        ("sam.lee@example.com", "Sam Lee", "utter_no_store_card"),
        ("jane.doe@example.com", "Priya Shah", "utter_name_mismatch"),
        ("nobody@example.com", "No Body", "utter_account_not_found"),
    ],
)
def test_a_card_block_that_cannot_happen_says_why(store, domain, email, name, response):
    messages, _ = run_action(ActionBlockCard(), {"email": email, "full_name": name}, domain)
    assert responses(messages) == [response]
    assert store.get_account("jane.doe@example.com").store_card == "active"
