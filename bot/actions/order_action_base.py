"""What the actions about one order share: the check that this conversation may see
the order, the base classes built on it, and the answers several of them give.

An :class:`OrderAction` answers only once :func:`owned_order` has found the order
the customer may see; an :class:`OrderChangeAction` also asks for what the change
needs, makes it in the store as the order's owner and says how it went. The actions
themselves are in order_actions.py and return_and_payment_actions.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from . import store_schema as t
from .answer_parsing import ascii_text
from .lookup_limits import Claimant
from .order_store import OrderStore
from .store_action import LookupsPaused, StoreAction, claimant, in_thread, slot_or_ask, text_slot
from .store_records import Access, Change, Order, Outcome
from .wording import Wording, wording_of


def utter_order_problem(
    dispatcher: CollectingDispatcher, order_number: str, change: Change, words: Wording
) -> bool:
    """Answer the outcomes every order write shares; True if one was answered.

    No such order and someone else's order get the same answer.
    """
    if change.outcome in (Outcome.NOT_FOUND, Outcome.NOT_OWNER):
        dispatcher.utter_message(response="utter_order_not_matched", order_number=order_number)
    elif change.order is not None and change.order.status == t.CANCELLED:
        utter_cancelled(dispatcher, change.order, words)
    else:
        return False
    return True


def utter_cancelled(dispatcher: CollectingDispatcher, order: Order, words: Wording) -> None:
    """Say that ``order`` was cancelled, and on which day (in ``words``' language)."""
    dispatcher.utter_message(
        response="utter_order_status_cancelled",
        order_number=order.order_number,
        cancelled_on=words.day(order.cancelled_on),
    )


async def utter_case(
    store: OrderStore,
    dispatcher: CollectingDispatcher,
    order_number: str,
    kind: str,
    *,
    opened: str,
    **values: Any,
) -> None:
    """Open a case of ``kind`` on the order and utter ``opened``, or
    utter_case_already_open when one of that kind is open already; both with its reference.
    """
    change = await in_thread(store.open_case, order_number, kind)
    response = "utter_case_already_open" if change.outcome is Outcome.ALREADY_DONE else opened
    dispatcher.utter_message(
        response=response, order_number=order_number, case_reference=change.reference, **values
    )


async def owned_order(
    store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
) -> Optional[Order]:
    """The order in the order_number slot if this conversation may see it; otherwise
    None once the customer has been told, the same way whether or not it exists.

    The form checked the same already; this check is the one that counts, whatever
    the tracker holds. Raises :class:`LookupsPaused` after too many misses.
    """
    # Typed with full-width digits ("４８２１３") the number is read as ASCII.
    order_number = ascii_text(text_slot(tracker, "order_number"))
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


class OrderAction(StoreAction, ABC):
    """An action about the order in the order_number slot: it answers only once
    :func:`owned_order` has found that this conversation may see the order.
    """

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        """Answer about the slot's order, or say why not (see :func:`owned_order`)."""
        order = await owned_order(store, dispatcher, tracker)
        if order is not None:
            await self.answer_about(store, dispatcher, tracker, order)

    @abstractmethod
    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Utter the answer about ``order``, which this conversation may see."""


@dataclass(frozen=True)
class ChangeRequest:
    """A change the owner of an order asked for, and the store it is made in."""

    store: OrderStore
    order: Order
    claimant: Claimant
    # The text of the action's detail_slot (new address, return reason); "" if none.
    detail: str
    # The conversation's language, for the values of the reply.
    words: Wording


class OrderChangeAction(OrderAction, ABC):
    """An action that changes the conversation's own order in the store and says how it went."""

    #: The slot holding what the change needs besides the order (the new address, the
    #: return reason); while it is empty the action asks with ``utter_ask_<slot>``.
    detail_slot: Optional[str] = None

    async def answer_about(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order
    ) -> None:
        """Ask for the detail slot while it is empty; otherwise make the change and answer."""
        detail = ""
        if self.detail_slot is not None:
            ask = f"utter_ask_{self.detail_slot}"
            given = slot_or_ask(dispatcher, tracker, self.detail_slot, ask=ask)
            if given is None:
                return
            detail = given
        request = ChangeRequest(store, order, claimant(tracker), detail, wording_of(tracker))
        change = await in_thread(self.change, request)
        self.reply(dispatcher, request, change)

    # The actions' change() and reply() look alike by necessity: each fills in these
    # two hooks, with its own store write and its own answers.
    @abstractmethod
    def change(self, request: ChangeRequest) -> Change:
        """Make the change in the store, as the claimant (called in a worker thread)."""

    @abstractmethod
    def reply(
        self, dispatcher: CollectingDispatcher, request: ChangeRequest, change: Change
    ) -> None:
        """Tell the customer what the change did."""
