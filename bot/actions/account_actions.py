"""The bot's account and store card actions: password reset, closure, card block."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from .order_store import OrderStore
from .store_action import StoreAction, in_thread, slot_or_ask
from .store_records import Outcome
from .wording import wording_of


class ActionSendPasswordReset(StoreAction):
    """Sends a password reset link, saying the same whether or not the account exists."""

    def name(self) -> str:
        """action_send_password_reset: sends a password reset link."""
        return "action_send_password_reset"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        """Record a reset link for the email slot's address and say one was sent, whether or not
        the account exists.
        """
        email = slot_or_ask(dispatcher, tracker, "email", ask="utter_ask_reset_password_form_email")
        if email is None:
            return
        await in_thread(store.record_password_reset, email)
        # The same reply whether or not the account exists: the chat must not tell
        # anyone which email addresses have a Northwind account.
        dispatcher.utter_message(response="utter_password_reset_sent", email=email)


class ActionCloseAccount(StoreAction):
    """Requests the closure of an account that has no order or return still open."""

    def name(self) -> str:
        """action_close_account: requests the closure of an account."""
        return "action_close_account"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        """Request closure of the email slot's account, or say it is unknown or what is open."""
        email = slot_or_ask(dispatcher, tracker, "email", ask="utter_ask_close_account_form_email")
        if email is None:
            return
        change = await in_thread(store.request_account_closure, email)
        if change.outcome is Outcome.NOT_FOUND:
            dispatcher.utter_message(response="utter_account_not_found")
        elif change.outcome is Outcome.NOT_ALLOWED:
            dispatcher.utter_message(
                response="utter_account_has_open_orders",
                open_orders=wording_of(tracker).numbers(change.open_orders),
            )
        else:  # DONE, or ALREADY_DONE: asking twice changes nothing
            dispatcher.utter_message(response="utter_account_closure_requested", email=email)


class ActionBlockCard(StoreAction):
    """Blocks a lost store card and orders a replacement, for the account holder."""

    consumed_slots = ("full_name",)
    # A lost card cannot wait for the store: the 24/7 card line blocks it too.
    unavailable_followup = "utter_block_card_by_phone"

    def name(self) -> str:
        """action_block_card: blocks a lost store card."""
        return "action_block_card"

    async def answer(
        self, store: OrderStore, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> None:
        """Block the email slot's account's card if full_name is its holder's; else say why not."""
        email = slot_or_ask(dispatcher, tracker, "email", ask="utter_ask_lost_card_form_email")
        if email is None:
            return
        full_name = slot_or_ask(dispatcher, tracker, "full_name", ask="utter_ask_full_name")
        if full_name is None:
            return
        change = await in_thread(store.block_card, email, full_name)
        response = {
            Outcome.DONE: "utter_card_blocked",
            Outcome.ALREADY_DONE: "utter_card_already_blocked",
            Outcome.NOT_FOUND: "utter_account_not_found",
            Outcome.NOT_OWNER: "utter_name_mismatch",
            Outcome.NOT_ALLOWED: "utter_no_store_card",
        }[change.outcome]
        dispatcher.utter_message(response=response)
