"""The bot's order actions: status, cancel, address change and delivery problems.

Each runs after its form has filled and validated the slots, checks again that the
conversation may see the order (:func:`owned_order`), asks the store, and answers with
a response from domain.yml; the values in the reply come from the store.
Returns, refunds, payments and invoices are in ``return_and_payment_actions.py``.
"""

from __future__ import annotations

import functools
from typing import Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import store_schema as t
from .order_policy import (
    add_working_days,
    can_redirect,
    format_day,
    format_money,
    late_after,
    problem_report_deadline,
    refund_timing,
)
from .order_store import OrderStore
from .store_action import LookupsPaused, StoreAction, claimant, in_thread, text_slot
from .store_records import Access, Change, Order, Outcome


def utter_order_problem(
    dispatcher: CollectingDispatcher, order_number: str, change: Change
) -> bool:
    """Answer the outcomes every order write shares; True if one was answered.

    No such order and someone else's order get the same answer.
    """
    if change.outcome in (Outcome.NOT_FOUND, Outcome.NOT_OWNER):
        dispatcher.utter_message(response="utter_order_not_matched", order_number=order_number)
    elif change.order is not None and change.order.status == t.CANCELLED:
        utter_cancelled(dispatcher, change.order)
    else:
        return False
    return True


def utter_cancelled(dispatcher: CollectingDispatcher, order: Order) -> None:
    dispatcher.utter_message(
        response="utter_order_status_cancelled",
        order_number=order.order_number,
        cancelled_on=format_day(order.cancelled_on),
    )


async def owned_order(
    store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
) -> Optional[Order]:
    """The order in the order_number slot if this conversation may see it; otherwise
    None once the customer has been told, the same way whether or not it exists.

    The form checked the same already; this check is the one that counts, whatever
    the tracker holds. Raises :class:`LookupsPaused` after too many misses.
    """
    order_number = text_slot(tracker, "order_number")
    answer = await in_thread(store.order_access, order_number, claimant(tracker))
    if answer.access is Access.PAUSED:
        raise LookupsPaused()
    if order_number is None:
        dispatcher.utter_message(response="utter_ask_order_number")
        return None
    if answer.access is not Access.GRANTED or answer.order is None:
        dispatcher.utter_message(response="utter_order_not_matched", order_number=order_number)
        return None
    return answer.order


class ActionOrderStatus(StoreAction):
    def name(self) -> str:
        return "action_order_status"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        today = store.today()
        number = order.order_number
        if order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_order_status_not_dispatched",
                order_number=number,
                status=order.status,
                placed_on=format_day(order.placed_on),
            )
        elif order.status in t.IN_TRANSIT and order.dispatched_on is not None:
            late_on = late_after(order.dispatched_on, order.destination)
            values = dict(
                order_number=number,
                carrier=order.carrier or "our carrier",
                dispatched_on=format_day(order.dispatched_on),
                tracking_url=order.tracking_url or "https://northwind.example/track",
            )
            if today >= late_on:
                dispatcher.utter_message(response="utter_order_status_late", **values)
            elif order.expected_on is not None and order.expected_on < today:
                dispatcher.utter_message(
                    response="utter_order_status_delayed",
                    expected_on=format_day(order.expected_on),
                    late_after=format_day(late_on),
                    **values,
                )
            else:
                dispatcher.utter_message(
                    response="utter_order_status_dispatched",
                    expected_on=format_day(order.expected_on),
                    **values,
                )
        elif order.status == t.DELIVERED:
            dispatcher.utter_message(
                response="utter_order_status_delivered",
                order_number=number,
                delivered_on=format_day(order.delivered_on),
            )
        else:
            utter_cancelled(dispatcher, order)


class ActionConfirmCancel(StoreAction):
    """Asks the owner to confirm a cancellation the order's status still allows."""

    def name(self) -> str:
        return "action_confirm_cancel"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        if order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_confirm_cancel", order_number=order.order_number
            )
        elif order.status == t.CANCELLED:
            utter_cancelled(dispatcher, order)
        else:
            dispatcher.utter_message(
                response="utter_cancel_refused",
                order_number=order.order_number,
                status=order.status,
            )


class ActionCancelOrder(StoreAction):
    def name(self) -> str:
        return "action_cancel_order"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        if await owned_order(store, dispatcher, tracker) is None:
            return
        number = text_slot(tracker, "order_number") or ""
        who = claimant(tracker)
        change = await in_thread(
            functools.partial(store.cancel_order, number, who.email, phone=who.phone)
        )
        order = change.order
        if change.outcome is Outcome.DONE and order is not None:
            dispatcher.utter_message(
                response="utter_order_cancelled",
                order_number=number,
                amount=format_money(order.total_pence, currency=order.currency),
                payment_method=order.payment_method,
                refund_timing=refund_timing(order.payment_method),
            )
        elif not utter_order_problem(dispatcher, number, change) and order is not None:
            dispatcher.utter_message(
                response="utter_cancel_refused", order_number=number, status=order.status
            )


class ActionChangeAddress(StoreAction):
    consumed_slots = ("new_address",)

    def name(self) -> str:
        return "action_change_address"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        if await owned_order(store, dispatcher, tracker) is None:
            return
        number = text_slot(tracker, "order_number") or ""
        address = text_slot(tracker, "new_address")
        if address is None:
            dispatcher.utter_message(response="utter_ask_new_address")
            return
        who = claimant(tracker)
        change = await in_thread(
            functools.partial(store.change_address, number, who.email, address, phone=who.phone)
        )
        order = change.order
        if change.outcome is Outcome.DONE:
            dispatcher.utter_message(
                response="utter_address_changed", order_number=number, new_address=address
            )
            return
        if utter_order_problem(dispatcher, number, change) or order is None:
            return
        dispatcher.utter_message(
            response="utter_address_change_refused", order_number=number, status=order.status
        )
        if can_redirect(order.status, order.carrier):
            dispatcher.utter_message(response="utter_address_redirect_dpd")


class ActionReportDeliveryProblem(StoreAction):
    consumed_slots = ("problem_type",)

    def name(self) -> str:
        return "action_report_delivery_problem"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        order = await owned_order(store, dispatcher, tracker)
        if order is None:
            return
        problem = text_slot(tracker, "problem_type")
        if problem not in ("late", "lost", "damaged", "wrong_item"):
            dispatcher.utter_message(response="utter_ask_problem_type")
            return
        number, today = order.order_number, store.today()
        if order.status == t.CANCELLED:
            utter_cancelled(dispatcher, order)
        elif order.status != t.DELIVERED or order.delivered_on is None:
            await self._not_delivered(store, dispatcher, order, problem)
        elif today > problem_report_deadline(order.delivered_on):
            dispatcher.utter_message(
                response="utter_problem_report_window_passed",
                order_number=number,
                delivered_on=format_day(order.delivered_on),
            )
        elif problem in ("late", "lost") and today <= add_working_days(order.delivered_on, 1):
            # Parcels are sometimes scanned as delivered hours before they arrive.
            dispatcher.utter_message(
                response="utter_delivered_check_first",
                order_number=number,
                delivered_on=format_day(order.delivered_on),
                wait_until=format_day(add_working_days(order.delivered_on, 1)),
                tracking_url=order.tracking_url or "https://northwind.example/track",
            )
        else:
            kind = "lost" if problem in ("late", "lost") else problem
            await self._open_case(store, dispatcher, order, kind)

    async def _not_delivered(
        self, store: OrderStore, dispatcher: CollectingDispatcher, order: Order, problem: str
    ) -> None:
        number = order.order_number
        if problem in ("damaged", "wrong_item") or order.status in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response="utter_problem_not_delivered_yet", order_number=number, status=order.status
            )
            return
        assert order.dispatched_on is not None
        late_on = late_after(order.dispatched_on, order.destination)
        if store.today() < late_on:
            dispatcher.utter_message(
                response="utter_parcel_not_late_yet",
                order_number=number,
                carrier=order.carrier or "our carrier",
                dispatched_on=format_day(order.dispatched_on),
                expected_on=format_day(order.expected_on),
                late_after=format_day(late_on),
                tracking_url=order.tracking_url or "https://northwind.example/track",
            )
            return
        await self._open_case(store, dispatcher, order, "late")

    @staticmethod
    async def _open_case(
        store: OrderStore, dispatcher: CollectingDispatcher, order: Order, kind: str
    ) -> None:
        change = await in_thread(store.open_case, order.order_number, kind)
        response = {
            "late": "utter_late_case_opened",
            "lost": "utter_missing_parcel_case_opened",
            "damaged": "utter_damaged_case_opened",
            "wrong_item": "utter_wrong_item_case_opened",
        }[kind]
        if change.outcome is Outcome.ALREADY_DONE:
            response = "utter_case_already_open"
        dispatcher.utter_message(
            response=response, order_number=order.order_number, case_reference=change.reference
        )
