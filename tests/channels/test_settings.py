"""channels.settings: the one config error, the typed readers and the shared defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

import channels.agent_desk_config
import channels.agent_slack_config
import channels.rest
import channels.slack_config
import channels.sms_config
import channels.telegram_config
import channels.webchat_config
from channels.agent_desk_config import AgentDeskConfigError
from channels.agent_slack_config import AgentSlackConfig, AgentSlackConfigError
from channels.rest import RestConfigError
from channels.settings import (
    DEFAULT_DEDUP_DB,
    DEFAULT_DEDUP_WINDOW_SECONDS,
    DEFAULT_DESK_DB,
    ChannelConfigError,
    SettingsReader,
    add_it,
    merged,
)
from channels.slack_config import SlackConfig, SlackConfigError
from channels.sms_config import SmsConfigError
from channels.telegram_config import TelegramConfigError
from channels.webchat_config import WebChatConfigError


class _Error(ChannelConfigError):
    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__("demo", key, problem, fix, class_path="channels.demo.DemoInput")


def reader(**values: Any) -> SettingsReader:
    return SettingsReader(values, _Error)


def test_the_message_names_channel_class_key_problem_and_fix():
    error = _Error("token", "missing", "Add it.")
    assert str(error) == (
        "credentials.yml, channel `demo` (channels.demo.DemoInput), key `token`: missing. Add it."
    )
    assert (error.channel, error.key, error.problem, error.fix) == (
        "demo",
        "token",
        "missing",
        "Add it.",
    )
    assert isinstance(error, ValueError)


def test_a_key_in_a_section_is_shown_dotted():
    error = ChannelConfigError("channels.x.X", "agent_channel", "bad", "Fix.", section="slack")
    assert (
        str(error)
        == "credentials.yml, channel `channels.x.X`, key `slack.agent_channel`: bad. Fix."
    )
    assert error.key == "agent_channel"


@pytest.mark.parametrize(
    "error_class",
    [
        SlackConfigError,
        TelegramConfigError,
        SmsConfigError,
        WebChatConfigError,
        AgentDeskConfigError,
        AgentSlackConfigError,
        RestConfigError,
    ],
)
def test_every_channel_error_is_the_one_config_error(error_class: type):
    error = error_class("some_key", "a problem", "The fix.")
    assert isinstance(error, ChannelConfigError)
    assert isinstance(error, ValueError)
    assert error.key == "some_key"
    assert str(error).endswith("key `some_key`: a problem. The fix.") or str(error).endswith(
        "key `slack.some_key`: a problem. The fix."
    )


def test_the_old_message_format_of_each_channel_is_kept():
    assert str(SlackConfigError("k", "p", "F.")) == (
        "credentials.yml, channel `slack` (channels.slack.SlackInput), key `k`: p. F."
    )
    assert str(SmsConfigError("k", "p", "F.")) == (
        "credentials.yml, channel `twilio` (channels.sms.TwilioSmsInput), key `k`: p. F."
    )
    assert str(WebChatConfigError("k", "p", "F.")) == (
        "credentials.yml, channel `webchat` (channels.webchat.WebChatInput), key `k`: p. F."
    )
    assert str(AgentSlackConfigError("k", "p", "F.")) == (
        "credentials.yml, channel `channels.agent_desk.AgentDeskInput`, key `slack.k`: p. F."
    )


def test_merged_names_the_first_unknown_key_and_lists_the_valid_ones():
    with pytest.raises(_Error) as caught:
        merged({"b": 1, "tokne": "x", "zz": 2}, {"a": 1, "b": 2}, _Error)
    assert caught.value.key == "tokne"
    assert caught.value.problem == "unknown key"
    assert caught.value.fix == "Valid keys: a, b."


def test_merged_keeps_defaults_for_nulls_unless_told():
    assert merged({"a": None}, {"a": 1, "b": 2}, _Error) == {"a": 1, "b": 2}
    assert merged({"a": None}, {"a": 1, "b": 2}, _Error, keep_nulls=True) == {"a": None, "b": 2}


def test_text_readers():
    read = reader(name="  anna ", number=12345, blank="  ", flag=True, listed=["x"])
    assert read.optional_text("name") == "anna"
    assert read.optional_text("number") == "12345"
    assert read.optional_text("blank") is None
    assert read.optional_text("absent") is None
    with pytest.raises(_Error, match="expected text, got bool"):
        read.optional_text("flag")
    with pytest.raises(_Error, match="expected text, got int"):
        read.optional_text("number", numbers=False)
    with pytest.raises(_Error) as caught:
        read.required_text("blank")
    assert caught.value.problem == "missing"
    assert caught.value.fix == add_it("blank")


def test_add_it_says_where_and_how_for_a_secret():
    assert add_it("token") == "Add it under the channel (for a secret, `token: ${ENV_VAR}`)."
    assert add_it("token", under="`slack:`", what="the bot token") == (
        "Add it under `slack:` (the bot token; for a secret `token: ${ENV_VAR}`)."
    )


def test_a_number_that_lost_its_quotes_is_named():
    read = reader(twilio_number=15005550006)
    with pytest.raises(_Error) as caught:
        read.nonempty_string("twilio_number", quote_numbers=True)
    assert caught.value.problem == "read as the number 15005550006"
    assert '"+15005550006"' in caught.value.fix


def test_strings_paths_and_choices():
    read = reader(title=" Hi ", empty="", mode="rest", folder="uploads")
    assert read.nonempty_string("title") == "Hi"
    assert read.nonempty_string("title", strip=False) == " Hi "
    assert read.string("empty") == ""
    assert read.path("folder") == Path("uploads")
    assert read.choice("mode", ("rest", "twiml")) == "rest"
    with pytest.raises(_Error, match="expected a non-empty string"):
        read.nonempty_string("empty")
    with pytest.raises(_Error, match="expected one of twiml, other, got 'rest'"):
        read.choice("mode", ("twiml", "other"))


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_a_flag_is_only_true_or_false(value: Any):
    with pytest.raises(_Error, match="expected true or false"):
        reader(flag=value).flag("flag")
    assert reader(flag=False).flag("flag") is False


def test_numbers():
    read = reader(ok=2, low=0.05, high=15, flag=True, text="3", seconds=0.5, whole=2.0)
    assert read.number("ok", minimum=1) == 2.0
    with pytest.raises(_Error, match=r"expected a number of at least 0.1 and below 15, got 15"):
        read.number("high", minimum=0.1, below=15)
    with pytest.raises(_Error, match="got 0.05"):
        read.number("low", minimum=0.1)
    for key in ("flag", "text"):
        with pytest.raises(_Error):
            read.number(key, minimum=0)
    with pytest.raises(_Error, match="expected a number of seconds of at least 1, got 0.5"):
        read.seconds("seconds")
    assert read.whole("ok", minimum=1, maximum=10) == 2
    with pytest.raises(_Error, match="expected a whole number from 1 to 10, got 2.0"):
        read.whole("whole", minimum=1, maximum=10)
    with pytest.raises(_Error, match="expected a whole number of at least 3, got 2"):
        read.whole("ok", minimum=3)


def test_a_short_secret_is_refused():
    read = reader(token="x" * 15, long="y" * 16, number=12345678901234567)
    assert read.secret("long", min_chars=16, fix="F.") == "y" * 16
    for key in ("token", "number", "absent"):
        with pytest.raises(_Error, match="must be a secret of at least 16 characters"):
            read.secret(key, min_chars=16, fix="F.")


def test_rate_limits_errors_become_the_channels_error():
    read = reader(rate_limits={"conversation": "often"})
    with pytest.raises(_Error) as caught:
        read.rates(defaults={"conversation": "30/minute"})
    assert caught.value.key == "rate_limits.conversation"
    rates = reader(rate_limits={"conversation": "off"}).rates(defaults={"conversation": "1/second"})
    assert rates == {"conversation": None}


def test_every_channel_shares_the_delivery_database_and_its_window():
    for module in (
        channels.slack_config,
        channels.telegram_config,
        channels.sms_config,
        channels.webchat_config,
        channels.agent_slack_config,
    ):
        defaults: Dict[str, Any] = module.get_default_config()
        assert defaults["dedup_db"] == DEFAULT_DEDUP_DB == "channel_deliveries.db", module
        if "dedup_window_seconds" in defaults:
            assert defaults["dedup_window_seconds"] == DEFAULT_DEDUP_WINDOW_SECONDS == 86400
    assert channels.agent_desk_config.get_default_config()["db"] == DEFAULT_DESK_DB
    assert channels.rest.get_default_config()["rate_limits"]["conversation"] == "30/minute"


def test_a_channel_raises_its_own_error_through_the_readers():
    with pytest.raises(SlackConfigError) as caught:
        SlackConfig.from_credentials(
            {"slack_token": "xoxb-1", "slack_signing_secret": "s", "use_threads": "yes"}
        )
    assert caught.value.key == "use_threads"
    with pytest.raises(ChannelConfigError, match="key `slack.agent_channel`: missing"):
        AgentSlackConfig.from_credentials(
            {"slack_token": "xoxb-1", "slack_signing_secret": "s", "agent_user_ids": ["U123"]}
        )
