"""The bot's money actions: start a return, refund status, payment check, invoice."""

from __future__ import annotations

from datetime import timedelta
from typing import List

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import store_schema as t
from .order_action_base import (
    ChangeRequest,
    OrderAction,
    OrderChangeAction,
    utter_case,
    utter_order_problem,
)
from .order_policy import format_money, refund_trace_date, return_deadline
from .order_store import OrderStore
from .store_action import in_thread
from .store_records import Change, Order, Outcome, Payment
from .wording import wording_of

# A started return must be dropped off within 14 days (returns_and_refunds.md).
DROP_OFF_DAYS = 14


async def payments_of(
    store: OrderStore, order_number: str, kind: str, status: str
) -> List[Payment]:
    """The order's payments of one ``kind`` (charge, refund) in one ``status``, oldest first."""
    payments = await in_thread(store.payments, order_number)
    return [p for p in payments if p.kind == kind and p.status == status]


class ActionStartReturn(OrderChangeAction):
    """Starts a return of the owner's delivered order inside its return window."""

    consumed_slots = ("return_reason",)
    detail_slot = "return_reason"

    def name(self) -> str:
        """action_start_return: starts a return of the owner's order."""
        return "action_start_return"

    def change(self, request: ChangeRequest) -> Change:
        """Record the return, with the return_reason slot's reason, in the store."""
        who = request.claimant
        return request.store.start_return(
            request.order.order_number, who.email, request.detail, phone=who.phone
        )

    def reply(
        self, dispatcher: CollectingDispatcher, request: ChangeRequest, change: Change
    ) -> None:
        """Give the return's reference and drop-off day, or say why it cannot start."""
        number, order, words = request.order.order_number, change.order, request.words
        if change.outcome is Outcome.DONE:
            dispatcher.utter_message(
                response="utter_return_started",
                order_number=number,
                return_reference=change.reference,
                # The label goes to the order's email, also when SMS proved the owner.
                email=order.email if order is not None else request.claimant.email,
                drop_off_by=words.day(request.store.today() + timedelta(days=DROP_OFF_DAYS)),
            )
        elif change.outcome is Outcome.ALREADY_DONE:
            dispatcher.utter_message(
                response="utter_return_already_started",
                order_number=number,
                return_reference=change.reference,
            )
        elif utter_order_problem(dispatcher, number, change, words) or order is None:
            return
        elif order.status == t.DELIVERED and order.delivered_on is not None:
            dispatcher.utter_message(
                response="utter_return_window_passed",
                order_number=number,
                delivered_on=words.day(order.delivered_on),
                return_deadline=words.day(return_deadline(order.placed_on, order.delivered_on)),
            )
        else:
            dispatcher.utter_message(
                response="utter_return_not_delivered",
                order_number=number,
                status=words.status(order.status),
            )


class ActionRefundStatus(OrderAction):
    """Tells the owner whether their order's refund was issued, and when it should arrive."""

    def name(self) -> str:
        """action_refund_status: says where the refund of the owner's order is."""
        return "action_refund_status"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Utter the latest issued refund, else the open return it waits for, else none."""
        number, words = order.order_number, wording_of(tracker)
        refunds = await payments_of(store, number, "refund", "issued")
        if refunds:
            refund = refunds[-1]
            values = dict(
                order_number=number,
                amount=format_money(refund.amount_pence, currency=order.currency),
                payment_method=words.payment_method(refund.method),
                issued_on=words.day(refund.made_on),
            )
            if store.today() >= refund_trace_date(refund.made_on):
                dispatcher.utter_message(response="utter_refund_overdue", **values)
            else:
                dispatcher.utter_message(
                    response="utter_refund_issued",
                    refund_timing=words.refund_timing(refund.method),
                    **values,
                )
            return
        open_returns = [r for r in await in_thread(store.returns, number) if r.status == "open"]
        if open_returns:
            dispatcher.utter_message(
                response="utter_refund_after_return",
                order_number=number,
                return_reference=open_returns[-1].reference,
                started_on=words.day(open_returns[-1].started_on),
            )
        else:
            dispatcher.utter_message(
                response="utter_no_refund", order_number=number, status=words.status(order.status)
            )


class ActionCheckPayment(OrderAction):
    """Tells the owner what was charged for their order; a double charge opens a case."""

    def name(self) -> str:
        """action_check_payment: checks the payments taken for the owner's order."""
        return "action_check_payment"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Utter no charge, the one charge, or the duplicate found and its case."""
        number, words = order.order_number, wording_of(tracker)
        charges = await payments_of(store, number, "charge", "completed")
        if not charges:
            dispatcher.utter_message(response="utter_payment_not_taken", order_number=number)
        elif len(charges) == 1:
            dispatcher.utter_message(
                response="utter_payment_single",
                order_number=number,
                amount=format_money(charges[0].amount_pence, currency=order.currency),
                payment_method=words.payment_method(charges[0].method),
                paid_on=words.day(charges[0].made_on),
            )
        else:
            # Two completed charges are a duplicate in our own records, not a pending
            # authorisation: the payments team confirms it and refunds it.
            await utter_case(
                store,
                dispatcher,
                number,
                "duplicate_payment",
                opened="utter_duplicate_payment_found",
                amount=format_money(charges[-1].amount_pence, currency=order.currency),
                payment_count=len(charges),
            )


class ActionInvoice(OrderAction):
    """Tells the owner whether their order's invoice is ready in their account."""

    def name(self) -> str:
        """action_invoice: says whether the owner's invoice is available."""
        return "action_invoice"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Utter that the invoice is available, not ready before dispatch, or none if cancelled."""
        number = order.order_number
        if order.status == t.CANCELLED:
            dispatcher.utter_message(response="utter_invoice_order_cancelled", order_number=number)
        elif order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_invoice_not_ready",
                order_number=number,
                status=wording_of(tracker).status(order.status),
            )
        else:
            dispatcher.utter_message(response="utter_invoice_available", order_number=number)
