"""Slot validation for the bot's forms: one ``validate_<form>`` action per form.

All forms share the same validators; two class flags add the checks a form needs:
``about_an_order`` (nothing about the order is said until the customer proves it is
theirs: the email it was placed with, or an SMS conversation from its phone; a wrong
email and an unknown number get the same answer, and repeated misses pause the form,
see lookup_limits.py) and ``needs_account`` (the email must belong to an account and
the name must match it). The password reset form checks neither: the chat never
reveals whether an account exists. A validator returns ``{slot: value}`` to accept
and ``{slot: None}`` to ask again, after uttering why.

When the store cannot be reached, a value that looks right is accepted: the action
after the form asks the store again and tells the customer it is unavailable, so the
customer hears that once instead of being asked the same question in a loop.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from . import store_schema as t
from .answer_parsing import (
    normalise_email,
    normalise_full_name,
    normalise_order_number,
    normalise_problem_type,
)
from .lookup_limits import Claimant
from .order_policy import can_redirect
from .order_store import OrderStore, StoreUnavailable, store_from_env
from .store_action import claimant, in_thread, text_slot
from .store_records import Access, Order
from .wording import Wording, wording_of

logger = logging.getLogger(__name__)

T = TypeVar("T")
Slots = Dict[str, Any]


async def ask_store(name: str, call: Callable[[OrderStore], T]) -> Tuple[bool, Optional[T]]:
    """(True, answer), or (False, None) when the store is unavailable (logged)."""
    try:
        store = store_from_env()
        return True, await in_thread(call, store)
    except StoreUnavailable as e:
        logger.warning("%s: %s; carried on unchecked", name, e)
        return False, None


def validated_this_turn(tracker: Tracker, slot: str) -> bool:
    """True if ``slot`` is among the values this validation run checks."""
    return slot in tracker.slots_to_validate()


class StoreFormValidation(FormValidationAction, ABC):
    """The validators every form shares."""

    #: The form is about one order: nothing about it is said until the customer has
    #: proved it is theirs, with its email or an SMS conversation from its phone
    #: (bot/actions/lookup_limits.py). Its email slot is then not asked for.
    about_an_order = False
    #: The email must belong to an account, and a given full name must match it.
    needs_account = False
    #: Said, with the order's status, when the task is only possible before dispatch
    #: (cancel, change address): the owner hears why at once, not after confirming.
    refusal_after_dispatch: Optional[str] = None

    @abstractmethod
    def name(self) -> str:
        """validate_<form name>."""

    async def required_slots(
        self,
        domain_slots: List[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[str]:
        """The domain's slots, but none once look-ups are paused and no email for the
        order's own phone over SMS.

        With none the form stops, and the action after it says why.
        """
        if not self.about_an_order:
            return domain_slots
        number = normalise_order_number(tracker.get_slot("order_number"))
        who = Claimant(tracker.sender_id)  # no email: this check never counts a miss
        reached, answer = await ask_store(self.name(), lambda s: s.order_access(number, who))
        if not reached or answer is None:
            return domain_slots
        if answer.access is Access.PAUSED:
            return []
        if answer.access is Access.GRANTED:
            return [slot for slot in domain_slots if slot != "email"]
        return domain_slots

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept a 5-digit order number; on an order form, not one the given email does not
        match or the task is too late for.
        """
        number = normalise_order_number(value)
        if number is None:
            dispatcher.utter_message(response="utter_invalid_order_number")
            return {"order_number": None}
        if not self.about_an_order:
            return {"order_number": number}
        # An email checked in this same run is compared by validate_email instead.
        email = None if validated_this_turn(tracker, "email") else text_slot(tracker, "email")
        who = claimant(tracker, email=email or "")
        reached, answer = await ask_store(self.name(), lambda s: s.order_access(number, who))
        if not reached or answer is None:
            return {"order_number": number}
        if answer.access is Access.NOT_MATCHED:
            return self._not_matched(dispatcher, number)
        if answer.access is Access.GRANTED and answer.order is not None:
            return self._owned(dispatcher, answer.order, wording_of(tracker))
        # No proof yet (the form asks for the email next), or paused (the form stops):
        # either way nothing is said about the number, known or not.
        return {"order_number": number}

    async def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept a well-formed email; on an order form not one the order was not placed with,
        on an account form only an account's.
        """
        email = normalise_email(value)
        if email is None:
            dispatcher.utter_message(response="utter_invalid_email")
            return {"email": None}
        if self.about_an_order:
            number = normalise_order_number(tracker.get_slot("order_number"))
            if number is not None:
                who = claimant(tracker, email=email)
                _, answer = await ask_store(self.name(), lambda s: s.order_access(number, who))
                if answer is not None and answer.access is Access.NOT_MATCHED:
                    return self._not_matched(dispatcher, number)
                if answer is not None and answer.access is Access.GRANTED and answer.order:
                    owned = self._owned(dispatcher, answer.order, wording_of(tracker))
                    return {"email": email, **owned}
        if self.needs_account:
            reached, account = await ask_store(self.name(), lambda store: store.get_account(email))
            if reached and account is None:
                dispatcher.utter_message(response="utter_account_not_found")
                return {"email": None}
            name = normalise_full_name(tracker.get_slot("full_name"))
            if account is not None and name and name.casefold() != account.full_name.casefold():
                dispatcher.utter_message(response="utter_name_mismatch")
                return {"email": email, "full_name": None}
        return {"email": email}

    @staticmethod
    def _not_matched(dispatcher: CollectingDispatcher, number: str) -> Slots:
        """No such order, or not with that email: one answer, and both are asked again."""
        dispatcher.utter_message(response="utter_order_not_matched", order_number=number)
        return {"order_number": None, "email": None}

    def _owned(self, dispatcher: CollectingDispatcher, order: Order, words: Wording) -> Slots:
        """The customer's own order: accepted, unless the task is too late for it."""
        number = order.order_number
        if self.refusal_after_dispatch and order.status not in t.NOT_DISPATCHED:
            dispatcher.utter_message(
                response=self.refusal_after_dispatch,
                order_number=number,
                status=words.status(order.status),
            )
            if self.refusal_after_dispatch == "utter_address_change_refused" and can_redirect(
                order.status, order.carrier
            ):
                dispatcher.utter_message(response="utter_address_redirect_dpd")
            # The form asks again: another order number, or "no" stops it.
            return {"order_number": None}
        return {"order_number": number}

    async def validate_full_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept a name of two words or more; on an account form, only the account's."""
        name = normalise_full_name(value)
        if name is None:
            dispatcher.utter_message(response="utter_invalid_full_name")
            return {"full_name": None}
        email = normalise_email(tracker.get_slot("email"))
        if self.needs_account and email and not validated_this_turn(tracker, "email"):
            _, account = await ask_store(self.name(), lambda store: store.get_account(email))
            if account is not None and name.casefold() != account.full_name.casefold():
                dispatcher.utter_message(response="utter_name_mismatch")
                return {"full_name": None}
        return {"full_name": name}

    def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept an address of 10 characters or more with a digit (house number or postcode)."""
        address = " ".join(str(value or "").split())
        # A UK address has a house number or a postcode, and both have digits.
        if len(address) < 10 or not any(c.isdigit() for c in address):
            dispatcher.utter_message(response="utter_invalid_address")
            return {"new_address": None}
        return {"new_address": address}

    def validate_return_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept a return reason of 3 characters or more, spaces tidied."""
        reason = " ".join(str(value or "").split())
        if len(reason) < 3:
            dispatcher.utter_message(response="utter_invalid_return_reason")
            return {"return_reason": None}
        return {"return_reason": reason}

    def validate_problem_type(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """Accept a delivery problem as one of PROBLEM_TYPES, from its name or a description."""
        kind = normalise_problem_type(value)
        if kind is None:
            dispatcher.utter_message(response="utter_invalid_problem_type")
        return {"problem_type": kind}


# One small class per form: rasa_sdk registers every concrete Action subclass under
# its name(), so each form's validation action is a class of its own; they differ only
# in the flags above and their names.


class ValidateOrderStatusForm(StoreFormValidation):
    """Checks the slots of the order status form: the order number and its proof."""

    about_an_order = True

    def name(self) -> str:
        """validate_order_status_form: runs while order_status_form fills its slots."""
        return "validate_order_status_form"


class ValidateCancelOrderForm(StoreFormValidation):
    """Checks the slots of the cancel form: the owner's order, not yet dispatched."""

    about_an_order = True
    refusal_after_dispatch = "utter_cancel_refused"

    def name(self) -> str:
        """validate_cancel_order_form: runs while cancel_order_form fills its slots."""
        return "validate_cancel_order_form"


class ValidateChangeAddressForm(StoreFormValidation):
    """Checks the slots of the address change form: an order not yet dispatched, and the address."""

    about_an_order = True
    refusal_after_dispatch = "utter_address_change_refused"

    def name(self) -> str:
        """validate_change_address_form: runs while change_address_form fills its slots."""
        return "validate_change_address_form"


class ValidateDeliveryProblemForm(StoreFormValidation):
    """Checks the slots of the delivery problem form: the order and the problem."""

    about_an_order = True

    def name(self) -> str:
        """validate_delivery_problem_form: runs while delivery_problem_form fills its slots."""
        return "validate_delivery_problem_form"


class ValidateReturnForm(StoreFormValidation):
    """Checks the slots of the return form: the order and the reason."""

    about_an_order = True

    def name(self) -> str:
        """validate_return_form: runs while return_form fills its slots."""
        return "validate_return_form"


class ValidateRefundStatusForm(StoreFormValidation):
    """Checks the slots of the refund status form: the order number and its proof."""

    about_an_order = True

    def name(self) -> str:
        """validate_refund_status_form: runs while refund_status_form fills its slots."""
        return "validate_refund_status_form"


class ValidatePaymentProblemForm(StoreFormValidation):
    """Checks the slots of the payment problem form: the order number and its proof."""

    about_an_order = True

    def name(self) -> str:
        """validate_payment_problem_form: runs while payment_problem_form fills its slots."""
        return "validate_payment_problem_form"


class ValidateInvoiceForm(StoreFormValidation):
    """Checks the slots of the invoice form: the order number and its proof."""

    about_an_order = True

    def name(self) -> str:
        """validate_invoice_form: runs while invoice_form fills its slots."""
        return "validate_invoice_form"


class ValidateResetPasswordForm(StoreFormValidation):
    """Checks the slots of the password reset form: any well-formed email, never checked."""

    def name(self) -> str:
        """validate_reset_password_form: runs while reset_password_form fills its slots."""
        return "validate_reset_password_form"


class ValidateCloseAccountForm(StoreFormValidation):
    """Checks the slots of the account closure form: an account's email."""

    needs_account = True

    def name(self) -> str:
        """validate_close_account_form: runs while close_account_form fills its slots."""
        return "validate_close_account_form"


class ValidateLostCardForm(StoreFormValidation):
    """Checks the slots of the lost card form: an account's email and its holder's name."""

    needs_account = True

    def name(self) -> str:
        """validate_lost_card_form: runs while lost_card_form fills its slots."""
        return "validate_lost_card_form"
