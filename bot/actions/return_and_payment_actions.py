"""The bot's money actions: start a return, refund status, payment check, invoice."""

from __future__ import annotations

import functools
from datetime import timedelta

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import store_schema as t
from .order_actions import owned_order, utter_order_problem
from .order_policy import (
    format_day,
    format_money,
    refund_timing,
    refund_trace_date,
    return_deadline,
)
from .order_store import OrderStore
from .store_action import StoreAction, claimant, in_thread, text_slot
from .store_records import Outcome

# A started return must be dropped off within 14 days (returns_and_refunds.md).
DROP_OFF_DAYS = 14


class ActionStartReturn(StoreAction):
    consumed_slots = ("return_reason",)

    def name(self) -> str:
        return "action_start_return"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        if await owned_order(store, dispatcher, tracker) is None:
            return
        number = text_slot(tracker, "order_number") or ""
        reason = text_slot(tracker, "return_reason")
        if reason is None:
            dispatcher.utter_message(response="utter_ask_return_reason")
            return
        who = claimant(tracker)
        change = await in_thread(
            functools.partial(store.start_return, number, who.email, reason, phone=who.phone)
        )
        order = change.order
        if change.outcome is Outcome.DONE:
            dispatcher.utter_message(
                response="utter_return_started",
                order_number=number,
                return_reference=change.reference,
                # The label goes to the order's email, also when SMS proved the owner.
                email=order.email if order is not None else who.email,
                drop_off_by=format_day(store.today() + timedelta(days=DROP_OFF_DAYS)),
            )
        elif change.outcome is Outcome.ALREADY_DONE:
            dispatcher.utter_message(
                response="utter_return_already_started",
                order_number=number,
                return_reference=change.reference,
            )
        elif utter_order_problem(dispatcher, number, change) or order is None:
            return
        elif order.status == t.DELIVERED and order.delivered_on is not None:
            dispatcher.utter_message(
                response="utter_return_window_passed",
                order_number=number,
                delivered_on=format_day(order.delivered_on),
                return_deadline=format_day(return_deadline(order.placed_on, order.delivered_on)),
            )
        else:
            dispatcher.utter_message(
                response="utter_return_not_delivered", order_number=number, status=order.status
            )


class ActionRefundStatus(StoreAction):
    def name(self) -> str:
        return "action_refund_status"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        number = order.order_number
        payments = await in_thread(store.payments, number)
        refunds = [p for p in payments if p.kind == "refund" and p.status == "issued"]
        if refunds:
            refund = refunds[-1]
            values = dict(
                order_number=number,
                amount=format_money(refund.amount_pence, currency=order.currency),
                payment_method=refund.method,
                issued_on=format_day(refund.made_on),
            )
            if store.today() >= refund_trace_date(refund.made_on):
                dispatcher.utter_message(response="utter_refund_overdue", **values)
            else:
                dispatcher.utter_message(
                    response="utter_refund_issued",
                    refund_timing=refund_timing(refund.method),
                    **values,
                )
            return
        open_returns = [r for r in await in_thread(store.returns, number) if r.status == "open"]
        if open_returns:
            dispatcher.utter_message(
                response="utter_refund_after_return",
                order_number=number,
                return_reference=open_returns[-1].reference,
                started_on=format_day(open_returns[-1].started_on),
            )
        else:
            dispatcher.utter_message(
                response="utter_no_refund", order_number=number, status=order.status
            )


class ActionCheckPayment(StoreAction):
    def name(self) -> str:
        return "action_check_payment"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        number = order.order_number
        payments = await in_thread(store.payments, number)
        charges = [p for p in payments if p.kind == "charge" and p.status == "completed"]
        if not charges:
            dispatcher.utter_message(response="utter_payment_not_taken", order_number=number)
        elif len(charges) == 1:
            dispatcher.utter_message(
                response="utter_payment_single",
                order_number=number,
                amount=format_money(charges[0].amount_pence, currency=order.currency),
                payment_method=charges[0].method,
                paid_on=format_day(charges[0].made_on),
            )
        else:
            # Two completed charges are a duplicate in our own records, not a pending
            # authorisation: the payments team confirms it and refunds it.
            change = await in_thread(store.open_case, number, "duplicate_payment")
            response = (
                "utter_case_already_open"
                if change.outcome is Outcome.ALREADY_DONE
                else "utter_duplicate_payment_found"
            )
            dispatcher.utter_message(
                response=response,
                order_number=number,
                amount=format_money(charges[-1].amount_pence, currency=order.currency),
                payment_count=len(charges),
                case_reference=change.reference,
            )


class ActionInvoice(StoreAction):
    def name(self) -> str:
        return "action_invoice"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        number = order.order_number
        if order.status == t.CANCELLED:
            dispatcher.utter_message(response="utter_invoice_order_cancelled", order_number=number)
        elif order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_invoice_not_ready", order_number=number, status=order.status
            )
        else:
            dispatcher.utter_message(response="utter_invoice_available", order_number=number)
