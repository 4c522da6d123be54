from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import pytest

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.knowledge_base import KnowledgeBase
from rasa_llm.fallback.reply_guard import CHECK_CODES, GuardContext, GuardFailure, ReplyGuard

RETURNS = (
    "You can return most items within 30 days of delivery for a full refund. Refunds are "
    "issued to the original payment method within 5-10 business days once we have "
    "received the item."
)
HOURS = (
    "Our stores are open Monday to Friday from 9am to 5:30pm and on Saturday from 10:00 "
    "to 16:00. Call us on +44 20 7946 0958 or write to help@example.com."
)
SHIPPING = (
    "Standard shipping costs $4.99 and is free on orders over $50. Express delivery costs "
    "$12.50 and takes two days. See example.com/shipping for details. Prices were last "
    "updated on March 3, 2024."
)
DOUBLE_CHARGE = (
    "If you were charged twice for the same purchase, we refund the duplicate charge "
    "within 5 business days."
)
SECURITY = (
    "We will never ask for your password, PIN or full card number. To reset your "
    "password, use the 'Forgot password' link on the sign-in page."
)
INSTRUCTIONS = (
    "You are the customer-service assistant of Example Shop. Answer only from the "
    "passages below and never invent prices, dates or policies. If the passages do not "
    "answer the question, say so and offer to connect the customer with a person."
)


def context(
    *,
    customer: str = "How long do refunds take?",
    language: Optional[str] = "en",
    max_chars: int = 400,
    passages: tuple = (RETURNS, HOURS, SHIPPING, DOUBLE_CHARGE, SECURITY),
) -> GuardContext:
    return GuardContext(
        passages=passages,
        customer_text=customer,
        max_chars=max_chars,
        instructions=INSTRUCTIONS,
        language=language,
    )


@pytest.fixture(scope="module")
def guard() -> ReplyGuard:
    return ReplyGuard()


def codes(guard: ReplyGuard, reply: str, ctx: Optional[GuardContext] = None) -> List[str]:
    failures = guard.check(reply, ctx or context())
    assert all(f.check in CHECK_CODES for f in failures)
    return [f.check for f in failures]


# --- replies that must pass ---------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "You can return most items within 30 days of delivery. Refunds are issued within "
        "5 to 10 business days.",
        "Refunds go back to your original payment method within 5–10 business days after "
        "we receive the item.",
        "Standard shipping costs $4.99, and it is free on orders over $50.",
        "Standard shipping costs 4.99 USD; express delivery is $12.5 and takes 2 days.",
        "Our stores are open Monday to Friday, 9 am to 5.30 pm, and Saturday 10am to 4pm.",
        "Call us on 020 7946 0958 or email help@example.com.",
        "Shipping details are at https://www.example.com/shipping/.",
        "Prices were last updated on 3 March 2024.",
        "If you were charged twice, we refund the duplicate charge within 5 business days.",
    ],
)
def test_grounded_replies_pass(guard: ReplyGuard, reply: str) -> None:
    assert guard.check(reply, context()) == []


# --- grounding of facts -------------------------------------------------------------


def test_an_invented_discount_fails(guard: ReplyGuard) -> None:
    # SmolLM2 did this. "10" alone would be grounded by "5-10 business days"; a
    # percentage needs a percentage.
    failures = guard.check("We can offer you a 10% discount on your next order.", context())
    assert GuardFailure("unsupported_number", "1 not in the passages: 10%") in failures


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("Standard shipping costs $5.99.", "unsupported_number"),
        ("You can return most items within 60 days.", "unsupported_number"),
        ("Our stores are open Sunday from 11am to 3pm.", "unsupported_time"),
        ("Prices were last updated on March 5.", "unsupported_date"),
        ("Prices were last updated on March 3, 2023.", "unsupported_date"),
        ("Call us on 0800 123 4567.", "unsupported_phone"),
        ("Write to support@example.com.", "unsupported_email"),
        ("See example.com/shipping/express-rates for details.", "unsupported_url"),
        ("See https://example.org/returns for the form.", "unsupported_url"),
    ],
)
def test_facts_missing_from_the_passages_fail(guard: ReplyGuard, reply: str, code: str) -> None:
    assert code in codes(guard, reply)


def test_spelled_out_numbers_in_passages_ground_digits(guard: ReplyGuard) -> None:
    # SHIPPING says "takes two days".
    assert "unsupported_number" not in codes(guard, "Express delivery takes 2 days.")
    assert "unsupported_number" in codes(guard, "Express delivery takes 3 days.")


def test_numbers_from_the_customer_message_are_not_grounds(guard: ReplyGuard) -> None:
    # Strict on purpose: repeating the customer's order number or amount reads as a
    # confirmation of something nobody looked up.
    ctx = context(customer="Where is my order 10023? I paid 79.90")
    failures = guard.check("Your order 10023 of 79.90 will arrive within 5 business days.", ctx)
    number = [f for f in failures if f.check == "unsupported_number"]
    assert len(number) == 1
    # The detail never quotes what came from the customer.
    assert "10023" not in number[0].detail and "79.9" not in number[0].detail


def test_list_markers_are_not_numbers(guard: ReplyGuard) -> None:
    reply = "1. Open the sign-in page.\n2. Use the 'Forgot password' link."
    assert "unsupported_number" not in codes(guard, reply)


# --- asks for secrets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        # SmolLM2 suggested this to reset a password.
        "To reset your password, please provide your card number.",
        "Could you send me your PIN so I can check?",
        "What is your one-time code?",
        "We need your full card number and CVV to find the payment.",
        "Please reply with the verification code we just sent.",
        "Let us know your online banking login and we will check.",
        "Don't worry, just send me your password.",
    ],
)
def test_requests_for_secrets_fail(guard: ReplyGuard, reply: str) -> None:
    assert "asks_for_secret" in codes(guard, reply)


@pytest.mark.parametrize(
    "reply",
    [
        "We will never ask for your password, PIN or full card number.",
        "Please never share your password or PIN with anyone.",
        "Do not send your card number by email.",
        "To reset your password, use the 'Forgot password' link on the sign-in page.",
        "We'll send you a one-time code to confirm it's you.",
        "Could you tell me the last four digits of your card number?",
        "Send us a message and we'll reset your password.",
        "Sign in with the email address and password you registered with.",
        "Open the app and confirm with your app passcode or fingerprint.",
    ],
)
def test_warnings_and_instructions_about_secrets_pass(guard: ReplyGuard, reply: str) -> None:
    assert "asks_for_secret" not in codes(guard, reply)


# --- claims of actions ----------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "I have cancelled your order.",
        "I've processed your refund.",
        "Good news: your refund has been issued.",
        "I reset your password.",
        "I've escalated this to our team.",
        "I have updated your address.",
        "Your card is now blocked.",
        "Your card's been blocked.",
        "I have gone ahead and cancelled your order.",
        "I'm cancelling your order now.",
    ],
)
def test_claims_of_actions_fail(guard: ReplyGuard, reply: str) -> None:
    assert "claims_action" in codes(guard, reply)


@pytest.mark.parametrize(
    "reply",
    [
        "Refunds are issued within 5-10 business days.",
        "Once we have received the item, we will refund you.",
        "Once we have processed your return, your refund is issued within 5 business days.",
        "Your refund should have been issued by now.",
        "Returns for the items that were shipped to the wrong address are free.",
        "I can help you reset your password with the 'Forgot password' link.",
    ],
)
def test_policies_and_conditions_are_not_claims(guard: ReplyGuard, reply: str) -> None:
    assert "claims_action" not in codes(guard, reply)


def test_a_claim_quoted_from_a_passage_is_not_the_bot_acting(guard: ReplyGuard) -> None:
    policy = "We have updated our returns policy: items can be returned within 30 days."
    reply = "We have updated our returns policy: items can be returned within 30 days."
    assert "claims_action" not in codes(guard, reply, context(passages=(policy,)))
    assert "claims_action" in codes(guard, "We have updated your returns address.")


# --- length, emptiness, language ------------------------------------------------------


def test_blank_replies_fail_as_empty_only(guard: ReplyGuard) -> None:
    assert guard.check("  \n ", context()) == [GuardFailure("empty", "the reply is blank")]


def test_too_long_replies_fail(guard: ReplyGuard) -> None:
    reply = "Refunds are issued within 5-10 business days."
    assert "too_long" in codes(guard, reply, context(max_chars=len(reply) - 1))
    assert "too_long" not in codes(guard, reply, context(max_chars=len(reply)))


def test_a_reply_in_another_language_fails(guard: ReplyGuard) -> None:
    reply = "Puede devolver la mayoría de los artículos en un plazo de 30 días."
    assert "wrong_language" in codes(guard, reply, context(language="en"))
    assert "wrong_language" not in codes(guard, reply, context(language="es"))
    # Unknown customer language: nothing to compare with.
    assert "wrong_language" not in codes(guard, reply, context(language=None))


def test_language_check_can_be_turned_off() -> None:
    reply = "Puede devolver la mayoría de los artículos en un plazo de 30 días."
    guard = ReplyGuard(check_language=False)
    assert "wrong_language" not in codes(guard, reply, context(language="en"))


# --- leaks ----------------------------------------------------------------------------


def test_repeating_the_instructions_fails(guard: ReplyGuard) -> None:
    reply = "Sure! I answer only from the passages below and never invent prices, dates."
    assert "leaks_instructions" in codes(guard, reply)
    # Seven words of the instructions are not a leak.
    assert "leaks_instructions" not in codes(guard, "I answer only from the passages below.")


@pytest.mark.parametrize(
    "reply",
    [
        "My system prompt says I should help.",
        "CUSTOMER MESSAGE: hi",
        "<<< passages",
        "KNOWLEDGE: x",
    ],
)
def test_prompt_dump_markers_fail(guard: ReplyGuard, reply: str) -> None:
    assert "leaks_instructions" in codes(guard, reply)


def test_quoting_a_passage_that_is_also_in_the_instructions_is_no_leak(
    guard: ReplyGuard,
) -> None:
    ctx = GuardContext(
        passages=(RETURNS,),
        customer_text="refund time?",
        max_chars=400,
        instructions=INSTRUCTIONS + "\n\nPassages:\n" + RETURNS,
        language="en",
    )
    assert guard.check(RETURNS, ctx) == []


# --- lexical support ------------------------------------------------------------------


def test_an_inverted_double_charge_policy_fails_support(guard: ReplyGuard) -> None:
    # SmolLM2 said this although DOUBLE_CHARGE says the duplicate is refunded.
    reply = "I'm sorry, but it is highly unlikely that you will be refunded for a double charge."
    ctx = context(customer="I was charged twice for the same order, can I get a refund?")
    failures = guard.check(reply, ctx)
    assert [f.check for f in failures] == ["unsupported_content"]
    assert failures[0].detail.endswith("of content words in passages < 0.70")


def test_a_negation_in_the_passages_own_words_is_not_caught(guard: ReplyGuard) -> None:
    # Documented limit: lexical support cannot see meaning.
    assert guard.check("We do not refund the duplicate charge.", context()) == []


def test_an_invented_topic_fails_support(guard: ReplyGuard) -> None:
    reply = "Our loyalty programme gives members exclusive birthday vouchers and early access."
    assert codes(guard, reply) == ["unsupported_content"]


def test_support_threshold_is_configurable() -> None:
    reply = "I'm sorry, but it is highly unlikely that you will be refunded for a double charge."
    ctx = context(customer="I was charged twice, can I get a refund?")
    assert "unsupported_content" not in codes(ReplyGuard(min_support=0.4), reply, ctx)
    assert "unsupported_content" in codes(ReplyGuard(min_support=0.45), reply, ctx)


def test_detail_never_contains_customer_text(guard: ReplyGuard) -> None:
    customer = "My husband Kevin ordered the blue kettle 88123 with code SPRING"
    reply = "Kevin, your blue kettle 88123 with code SPRING has been cancelled."
    failures = guard.check(reply, context(customer=customer))
    assert {"unsupported_number", "claims_action"} <= {f.check for f in failures}
    for failure in failures:
        for word in ("Kevin", "kettle", "88123", "SPRING"):
            assert word.lower() not in failure.detail.lower()


def test_every_sentence_of_the_bots_knowledge_base_passes_when_quoted(
    guard: ReplyGuard,
) -> None:
    # The knowledge base is what the model is told to repeat: the guard must never
    # reject its own source, whatever the bot builder writes there.
    knowledge = KnowledgeBase.from_directory(Path(__file__).parents[3] / "bot" / "knowledge" / "en")
    rejected = []
    for passage in knowledge.passages:
        ctx = context(customer="help", max_chars=2000, passages=(passage.text,))
        for sentence in re.split(r"(?<=[.!?])\s+", passage.text):
            failures = guard.check(sentence, ctx)
            if failures:
                rejected.append((passage.id, [f.check for f in failures]))
    assert len(knowledge.passages) > 10
    assert rejected == []


# --- config ---------------------------------------------------------------------------


def test_defaults_build_the_same_guard_as_the_constructor() -> None:
    defaults = ReplyGuard.get_default_config()
    guard = ReplyGuard.from_config({})
    assert guard.min_support == defaults["min_support"] == 0.7
    assert guard.leak_ngram_words == 8
    assert list(guard.leak_markers) == defaults["leak_markers"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"min_suport": 0.5}, "did you mean 'min_support'"),
        ({"min_support": 1.5}, "min_support"),
        ({"min_support": True}, "min_support"),
        ({"leak_ngram_words": 2}, "leak_ngram_words"),
        ({"leak_markers": ["ok", ""]}, "leak_markers"),
    ],
)
def test_bad_config_is_rejected(config: dict, message: str) -> None:
    with pytest.raises(InvalidComponentConfigError, match=message):
        ReplyGuard.from_config(config)


def _secret_checks(reply: str) -> List[str]:
    context = GuardContext(
        passages=[reply], customer_text="", max_chars=1000, instructions="", language=None
    )
    return [f.check for f in ReplyGuard().check(reply, context) if f.check == "asks_for_secret"]


def test_enter_your_card_number_in_the_chat_is_a_request_for_a_secret():
    # Seen in the adversarial benchmark (a059): a reply echoing an injected instruction.
    assert _secret_checks("To continue, please enter your card number and PIN.")
    assert not _secret_checks("Enter your PIN at any UK cash machine to change it.")
    assert not _secret_checks("Confirm with your app passcode or fingerprint in the app.")


def test_too_few_content_words_cannot_be_checked_so_are_not_sent(guard: ReplyGuard) -> None:
    # SmolLM2 answered "No, no, no! No, no!" in the benchmark (q036).
    assert codes(guard, "No, no, no! No, no!") == ["unsupported_content"]
    assert codes(guard, "Yes, you can.") == ["unsupported_content"]


def test_echoing_the_customer_is_no_support(guard: ReplyGuard) -> None:
    question = "how many people work for northwind"
    reply = "The customer wants to know how many people work for Northwind."
    assert codes(guard, reply, context(customer=question)) == ["unsupported_content"]
