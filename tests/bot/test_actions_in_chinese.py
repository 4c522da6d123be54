"""The bot's own actions in a Chinese conversation, on the seeded store.

Each action runs as the action server runs it, with ``language: zh`` among the slots;
its messages are then rendered as Rasa renders them (``TemplatedNaturalLanguageGenerator``
with the conversation's slots and the action's values), and the reply must read as
Chinese all through: dates, statuses, payment methods, the refund sentence, lists.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

import pytest
import sqlalchemy as sa
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain

from bot.actions import store_schema as t
from bot.actions.account_actions import ActionCloseAccount
from bot.actions.order_actions import ActionCancelOrder, ActionOrderStatus
from bot.actions.order_store import STORE_URL_ENV
from bot.actions.return_and_payment_actions import (
    ActionCheckPayment,
    ActionInvoice,
    ActionRefundStatus,
    ActionStartReturn,
)

from .conftest import BOT, JANE, SAM, has_han, only, owned, run_action
from .test_form_validation import validate

ZH = {"language": "zh"}
# Latin words a Chinese reply may hold: names, and what the customer typed or the
# store made (references, links and addresses are taken out before).
NAMES = {"Northwind", "DPD", "Royal", "Mail", "PayPal", "App", "Post", "Office", "InPost"}
_NOT_WORDS = re.compile(r"https?://\S+|\S+@\S+|「[^」]*」|[A-Z]+-\w+")


@pytest.fixture(scope="module")
def nlg() -> TemplatedNaturalLanguageGenerator:
    return TemplatedNaturalLanguageGenerator(Domain.load(str(BOT / "domain.yml")).responses)


def rendered(
    nlg: TemplatedNaturalLanguageGenerator, message: Dict[str, Any], slots: Dict[str, Any]
) -> str:
    """The text Rasa sends for an action's message (see RemoteAction._utter_responses)."""
    values = {k: v for k, v in message.items() if k != "response"}
    draft = nlg.generate_from_slots(message["response"], slots, "rest", **values)
    assert draft is not None, message["response"]
    return draft["text"]


def assert_chinese(nlg: TemplatedNaturalLanguageGenerator, messages: List[Dict[str, Any]], slots):
    for message in messages:
        text = rendered(nlg, message, slots)
        english = set(re.findall(r"[A-Za-z]+", _NOT_WORDS.sub("", text))) - NAMES
        assert has_han(text) and not english, (message["response"], english, text)


def test_where_is_my_order_gives_chinese_dates(store, domain, nlg):
    slots = owned("10023", **ZH)
    said = only(run_action(ActionOrderStatus(), slots, domain)[0])
    assert said["response"] == "utter_order_status_dispatched" and said["carrier"] == "DPD"
    assert said["dispatched_on"] == "6月9日（星期一）"
    assert said["expected_on"] == "6月12日（星期四）"
    assert_chinese(nlg, [said], slots)


@pytest.mark.parametrize(
    "number, response, values",
    [
        ("10024", "utter_order_status_not_dispatched", {"status": "处理中"}),
        ("10028", "utter_order_status_not_dispatched", {"status": "已下单"}),
        ("10025", "utter_order_status_delivered", {"delivered_on": "6月1日（星期日）"}),
        ("10027", "utter_order_status_cancelled", {"cancelled_on": "6月8日（星期日）"}),
        ("10030", "utter_order_status_late", {"carrier": "DPD"}),
    ],
)
def test_each_status_reads_in_chinese(store, domain, nlg, number, response, values):
    slots = owned(number, **ZH)
    said = only(run_action(ActionOrderStatus(), slots, domain)[0])
    assert said["response"] == response and values.items() <= said.items()
    assert_chinese(nlg, [said], slots)


def test_an_order_without_a_carrier_names_ours_in_chinese(store, domain, nlg):
    store.get_order("10023")  # seeds the store
    engine = sa.create_engine(os.environ[STORE_URL_ENV], future=True)
    with engine.begin() as conn:
        conn.execute(
            sa.update(t.orders).where(t.orders.c.order_number == "10023").values(carrier=None)
        )
    engine.dispose()
    slots = owned("10023", **ZH)
    said = only(run_action(ActionOrderStatus(), slots, domain)[0])
    assert said["carrier"] == "合作快递公司"
    assert_chinese(nlg, [said], slots)
    english = only(run_action(ActionOrderStatus(), owned("10023"), domain)[0])
    assert english["carrier"] == "our carrier"


def test_a_cancellation_names_the_payment_method_and_refund_time_in_chinese(store, domain, nlg):
    slots = owned("10024", **ZH)
    said = only(run_action(ActionCancelOrder(), slots, domain)[0])
    assert said["response"] == "utter_order_cancelled" and said["amount"] == "£32.00"
    assert said["payment_method"] == "信用卡" and "5-10个工作日" in said["refund_timing"]
    assert_chinese(nlg, [said], slots)


def test_money_answers_read_in_chinese(store, domain, nlg):
    messages = []
    for action, number in [
        (ActionRefundStatus(), "10027"),
        (ActionCheckPayment(), "10029"),
        (ActionCheckPayment(), "10025"),
        (ActionInvoice(), "10024"),
        (ActionStartReturn(), "10026"),
    ]:
        slots = owned(number, return_reason="太小了", **ZH)
        said, _ = run_action(action, slots, domain)
        assert_chinese(nlg, said, slots)
        messages += said
    refund = messages[0]
    assert refund["payment_method"] == "借记卡" and refund["issued_on"] == "6月9日（星期一）"
    assert has_han(refund["refund_timing"])


def test_a_return_gets_a_chinese_drop_off_day(store, domain, nlg):
    slots = {"order_number": "10025", "email": SAM, "return_reason": "尺码太小", **ZH}
    said = only(run_action(ActionStartReturn(), slots, domain)[0])
    assert said["drop_off_by"] == "6月25日（星期三）"
    assert_chinese(nlg, [said], slots)


def test_open_orders_are_listed_the_chinese_way(store, domain, nlg):
    slots = {"email": JANE, **ZH}
    said = only(run_action(ActionCloseAccount(), slots, domain)[0])
    assert said["open_orders"] == "10023、10024、10028和10030"
    assert_chinese(nlg, [said], slots)


def test_a_form_refusing_a_dispatched_order_gives_its_status_in_chinese(store, domain, nlg):
    said, slots, messages = validate(
        "cancel_order_form", domain, {"order_number": "10023"}, {"email": JANE, **ZH}
    )
    assert said == ["utter_cancel_refused"] and messages[0]["status"] == "已发货"
    assert_chinese(nlg, messages, {"email": JANE, **ZH})


def test_an_order_number_in_full_width_digits_is_read_as_ascii(store, domain):
    said, slots, _ = validate("order_status_form", domain, {"order_number": "订单号：４８２１３"})
    assert said == [] and slots == {"order_number": "48213"}
    # The action reads the slot the same way, whatever filled it.
    answer = only(
        run_action(ActionOrderStatus(), owned("48213", order_number="４８２１３"), domain)[0]
    )
    assert answer["response"] == "utter_order_status_delivered"
    assert answer["order_number"] == "48213"


def test_a_full_width_email_and_a_chinese_lead_in_are_read(store, domain):
    for typed in ("ｊａｎｅ．ｄｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "我的邮箱是jane.doe@example.com。"):
        said, slots, _ = validate("reset_password_form", domain, {"email": typed})
        assert said == [] and slots == {"email": JANE}
