import pytest

from channels.conversation_ids import (
    ForeignConversation,
    channel_of,
    conversation_id,
    platform_id,
)


@pytest.mark.parametrize(
    ("channel", "identity", "expected"),
    [
        ("twilio", "+447700900123", "sms:+447700900123"),
        ("telegram", "4242", "telegram:4242"),
        ("webchat", "0" * 32, "webchat:" + "0" * 32),
        ("slack", "U1_C2_1700.1", "slack:U1_C2_1700.1"),
        ("rest", "sms:+447700900123", "rest:sms:+447700900123"),
    ],
)
def test_ids_carry_their_channel_and_come_back(channel, identity, expected):
    made = conversation_id(channel, identity)
    assert made == expected
    assert channel_of(made) == channel
    assert platform_id(channel, made) == identity


def test_a_channel_refuses_another_channels_conversation_without_naming_it():
    with pytest.raises(ForeignConversation) as refused:
        platform_id("twilio", "rest:+447700900123")
    assert "+447700900123" not in str(refused.value)
    assert refused.value.owner == "rest"


@pytest.mark.parametrize("bare", ["+447700900123", "4242", "sms:", "", "mail:x"])
def test_bare_and_unknown_ids_belong_to_no_channel(bare):
    assert channel_of(bare) is None
    with pytest.raises(ForeignConversation):
        platform_id("twilio", bare)


def test_unknown_channels_and_empty_ids_are_errors():
    with pytest.raises(ValueError):
        conversation_id("facebook", "1")
    with pytest.raises(ValueError):
        conversation_id("twilio", "")
