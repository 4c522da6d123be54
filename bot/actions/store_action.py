"""What the bot's own actions share: slot reading, the store call, the scripted failure."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from .lookup_limits import Claimant
from .order_store import OrderStore, StoreUnavailable, store_from_env

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Cleared when look-ups are paused: a paused form leaves its answers unchecked.
ORDER_SLOTS = ("order_number", "email")


class LookupsPaused(Exception):
    """The conversation, or the order it asks about, has missed too often for now."""


async def in_thread(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call off the event loop."""
    return await asyncio.to_thread(call, *args)


def claimant(tracker: Tracker, *, email: Optional[str] = None) -> Claimant:
    """The conversation asking, with ``email`` or else the email slot as its proof."""
    return Claimant(tracker.sender_id, email if email is not None else text_slot(tracker, "email"))


def text_slot(tracker: Tracker, name: str) -> Optional[str]:
    """The slot's value as stripped text (the first, if a list), or None when empty."""
    value = tracker.get_slot(name)
    if isinstance(value, list):  # two entities in one message: take the first
        value = value[0] if value else None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def slot_or_ask(
    dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, *, ask: str
) -> Optional[str]:
    """The slot's text (see :func:`text_slot`), or None once response ``ask`` has asked for it."""
    value = text_slot(tracker, slot)
    if value is None:
        dispatcher.utter_message(response=ask)
    return value


class StoreAction(Action, ABC):
    """An action that answers from the order store and never crashes when it is down."""

    #: Task-specific slots the action consumes; they are cleared after every run so
    #: a later task asks for them afresh. order_number and email are kept on purpose.
    consumed_slots: Tuple[str, ...] = ()
    #: A response sent after utter_store_unavailable, when the task has another way.
    unavailable_followup: Optional[str] = None

    @abstractmethod
    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        """Look up or change what the customer asked about and utter the answer."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        """Answer from the store (or say it is down, or look-ups are paused), then clear
        the consumed slots.
        """
        try:
            store = store_from_env()
            await self.answer(store, dispatcher, tracker)
        except LookupsPaused:
            # The log names the action only: the conversation id may be a phone number.
            logger.warning("%s: order look-ups paused after repeated misses", self.name())
            dispatcher.utter_message(response="utter_lookups_paused")
            cleared = (*ORDER_SLOTS, *self.consumed_slots)
            return [SlotSet(slot, None) for slot in dict.fromkeys(cleared)]
        except StoreUnavailable as e:
            # The message names the store and the error type only, never customer data.
            logger.error("%s: %s; sent utter_store_unavailable", self.name(), e)
            dispatcher.utter_message(response="utter_store_unavailable")
            if self.unavailable_followup:
                dispatcher.utter_message(response=self.unavailable_followup)
        return [SlotSet(slot, None) for slot in self.consumed_slots]
