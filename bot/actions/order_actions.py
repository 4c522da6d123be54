"""The bot's order actions: status, cancel, address change and delivery problems.

Each runs after its form has filled and validated the slots, checks again that the
conversation may see the order (order_action_base.py), asks the store, and answers with
a response from domain.yml; the values in the reply come from the store.
Returns, refunds, payments and invoices are in ``return_and_payment_actions.py``.
"""

from __future__ import annotations

from typing import Dict

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import store_schema as t
from .answer_parsing import PROBLEM_TYPES
from .order_action_base import (
    ChangeRequest,
    OrderAction,
    OrderChangeAction,
    utter_cancelled,
    utter_case,
    utter_order_problem,
)
from .order_policy import (
    add_working_days,
    can_redirect,
    format_money,
    late_after,
    problem_report_deadline,
)
from .order_store import OrderStore
from .store_action import text_slot
from .store_records import Change, Order, Outcome
from .wording import Wording, wording_of

# Given when an order has no tracking link of its own.
TRACKING_PAGE = "https://northwind.example/track"


def parcel_values(order: Order, words: Wording) -> Dict[str, str]:
    """The values every answer about a dispatched parcel fills in: number, carrier,
    dispatch day and tracking link.
    """
    return dict(
        order_number=order.order_number,
        carrier=words.carrier(order.carrier),
        dispatched_on=words.day(order.dispatched_on),
        tracking_url=order.tracking_url or TRACKING_PAGE,
    )


class ActionOrderStatus(OrderAction):
    """Tells the owner where their order is: not yet dispatched, on its way, late,
    delivered or cancelled.
    """

    def name(self) -> str:
        """action_order_status: tells the owner where their order is."""
        return "action_order_status"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Utter the response for the order's status, with its dates and tracking link."""
        today, words = store.today(), wording_of(tracker)
        if order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_order_status_not_dispatched",
                order_number=order.order_number,
                status=words.status(order.status),
                placed_on=words.day(order.placed_on),
            )
        elif order.status in t.IN_TRANSIT and order.dispatched_on is not None:
            late_on = late_after(order.dispatched_on, order.destination)
            values = parcel_values(order, words)
            if today >= late_on:
                dispatcher.utter_message(response="utter_order_status_late", **values)
            elif order.expected_on is not None and order.expected_on < today:
                dispatcher.utter_message(
                    response="utter_order_status_delayed",
                    expected_on=words.day(order.expected_on),
                    late_after=words.day(late_on),
                    **values,
                )
            else:
                dispatcher.utter_message(
                    response="utter_order_status_dispatched",
                    expected_on=words.day(order.expected_on),
                    **values,
                )
        elif order.status == t.DELIVERED:
            dispatcher.utter_message(
                response="utter_order_status_delivered",
                order_number=order.order_number,
                delivered_on=words.day(order.delivered_on),
            )
        else:
            utter_cancelled(dispatcher, order, words)


class ActionConfirmCancel(OrderAction):
    """Asks the owner to confirm a cancellation the order's status still allows."""

    def name(self) -> str:
        """action_confirm_cancel: asks the owner to confirm a cancellation."""
        return "action_confirm_cancel"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Ask for confirmation before dispatch; after it, say why it cannot be cancelled."""
        words = wording_of(tracker)
        if order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_confirm_cancel", order_number=order.order_number
            )
        elif order.status == t.CANCELLED:
            utter_cancelled(dispatcher, order, words)
        else:
            dispatcher.utter_message(
                response="utter_cancel_refused",
                order_number=order.order_number,
                status=words.status(order.status),
            )


class ActionCancelOrder(OrderChangeAction):
    """Cancels the owner's order before dispatch and refunds its total."""

    def name(self) -> str:
        """action_cancel_order: cancels the owner's order and refunds it."""
        return "action_cancel_order"

    def change(self, request: ChangeRequest) -> Change:
        """Cancel the order in the store."""
        who = request.claimant
        return request.store.cancel_order(request.order.order_number, who.email, phone=who.phone)

    def reply(
        self, dispatcher: CollectingDispatcher, request: ChangeRequest, change: Change
    ) -> None:
        """Confirm the cancellation and the refund, or say why the order cannot be cancelled."""
        number, order, words = request.order.order_number, change.order, request.words
        if change.outcome is Outcome.DONE and order is not None:
            dispatcher.utter_message(
                response="utter_order_cancelled",
                order_number=number,
                amount=format_money(order.total_pence, currency=order.currency),
                payment_method=words.payment_method(order.payment_method),
                refund_timing=words.refund_timing(order.payment_method),
            )
        elif not utter_order_problem(dispatcher, number, change, words) and order is not None:
            dispatcher.utter_message(
                response="utter_cancel_refused",
                order_number=number,
                status=words.status(order.status),
            )


class ActionChangeAddress(OrderChangeAction):
    """Changes the delivery address of the owner's order before dispatch."""

    consumed_slots = ("new_address",)
    detail_slot = "new_address"

    def name(self) -> str:
        """action_change_address: changes the delivery address of the owner's order."""
        return "action_change_address"

    def change(self, request: ChangeRequest) -> Change:
        """Set the new_address slot's address on the order in the store."""
        who = request.claimant
        return request.store.change_address(
            request.order.order_number, who.email, request.detail, phone=who.phone
        )

    def reply(
        self, dispatcher: CollectingDispatcher, request: ChangeRequest, change: Change
    ) -> None:
        """Confirm the new address, or say why not and, for a DPD parcel, how to redirect it."""
        number, order = request.order.order_number, change.order
        if change.outcome is Outcome.DONE:
            dispatcher.utter_message(
                response="utter_address_changed", order_number=number, new_address=request.detail
            )
            return
        words = request.words
        if utter_order_problem(dispatcher, number, change, words) or order is None:
            return
        dispatcher.utter_message(
            response="utter_address_change_refused",
            order_number=number,
            status=words.status(order.status),
        )
        if can_redirect(order.status, order.carrier):
            dispatcher.utter_message(response="utter_address_redirect_dpd")


class ActionReportDeliveryProblem(OrderAction):
    """Takes a late, lost, damaged or wrong-item report and opens a case when it is due."""

    consumed_slots = ("problem_type",)

    def name(self) -> str:
        """action_report_delivery_problem: takes a report of a delivery problem."""
        return "action_report_delivery_problem"

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Open a case for the problem_type slot's problem, or say why it is too early or late."""
        problem = text_slot(tracker, "problem_type")
        if problem not in PROBLEM_TYPES:
            dispatcher.utter_message(response="utter_ask_problem_type")
            return
        number, today, words = order.order_number, store.today(), wording_of(tracker)
        if order.status == t.CANCELLED:
            utter_cancelled(dispatcher, order, words)
        elif order.status != t.DELIVERED or order.delivered_on is None:
            await self._not_delivered(store, dispatcher, order, problem, words)
        elif today > problem_report_deadline(order.delivered_on):
            dispatcher.utter_message(
                response="utter_problem_report_window_passed",
                order_number=number,
                delivered_on=words.day(order.delivered_on),
            )
        elif problem in ("late", "lost") and today <= add_working_days(order.delivered_on, 1):
            # Parcels are sometimes scanned as delivered hours before they arrive.
            dispatcher.utter_message(
                response="utter_delivered_check_first",
                order_number=number,
                delivered_on=words.day(order.delivered_on),
                wait_until=words.day(add_working_days(order.delivered_on, 1)),
                tracking_url=order.tracking_url or TRACKING_PAGE,
            )
        else:
            kind = "lost" if problem in ("late", "lost") else problem
            await self._open_case(store, dispatcher, order, kind)

    async def _not_delivered(
        self,
        store: OrderStore,
        dispatcher: CollectingDispatcher,
        order: Order,
        problem: str,
        words: Wording,
    ) -> None:
        number = order.order_number
        if problem in ("damaged", "wrong_item") or order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_problem_not_delivered_yet",
                order_number=number,
                status=words.status(order.status),
            )
            return
        assert order.dispatched_on is not None
        late_on = late_after(order.dispatched_on, order.destination)
        if store.today() < late_on:
            dispatcher.utter_message(
                response="utter_parcel_not_late_yet",
                expected_on=words.day(order.expected_on),
                late_after=words.day(late_on),
                **parcel_values(order, words),
            )
            return
        await self._open_case(store, dispatcher, order, "late")

    @staticmethod
    async def _open_case(
        store: OrderStore, dispatcher: CollectingDispatcher, order: Order, kind: str
    ) -> None:
        opened = {
            "late": "utter_late_case_opened",
            "lost": "utter_missing_parcel_case_opened",
            "damaged": "utter_damaged_case_opened",
            "wrong_item": "utter_wrong_item_case_opened",
        }[kind]
        await utter_case(store, dispatcher, order.order_number, kind, opened=opened)
