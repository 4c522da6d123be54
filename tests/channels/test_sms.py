"""The SMS channel's parts without a Rasa server: segments, config, signatures, keywords,
numbered options, the output channel, TwiML with its deadline, and the REST client
against a fake Twilio API (retries included)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from twilio.request_validator import RequestValidator

from channels.outbound import RetryPolicy
from channels.sms import TwilioSmsInput
from channels.sms_config import SmsConfig, SmsConfigError
from channels.sms_inbound import (
    HELP,
    START,
    STOP,
    is_status_callback,
    keyword,
    parse_inbound,
    public_url,
    verify,
)
from channels.sms_output import TwilioSmsOutput, TwimlReply, empty_twiml
from channels.sms_rest import TwilioMessages
from channels.sms_segments import (
    GSM7,
    UCS2,
    count_segments,
    gsm_lookalikes,
    segment_count,
    split_sms,
)
from channels.sms_state import Option, SenderStore, choose_option
from channels.webhook_guard import WebhookRejected
from tests.channels.webhook_calls import Bot, settle, slow_first_call
from tests.fake_platform import Call, FakePlatform, TwilioMessageLog

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "unit-test-auth-token"
NUMBER = "+15005550006"
CUSTOMER = "+15551230000"
CONVERSATION = f"sms:{CUSTOMER}"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def credentials(**extra: Any) -> Dict[str, Any]:
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "twilio_number": NUMBER,
        **extra,
    }


def created(call: Call) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
    """Twilio's answer to a created message."""
    form = call.form
    return 201, {"sid": "SM" + "f" * 32, "status": "queued", "to": form.get("To")}, {}


# ---------------------------------------------------------------- segments
@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", GSM7, 0, 0),
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),  # 153 + 8
        ("a" * 306, GSM7, 306, 2),
        ("a" * 307, GSM7, 307, 3),
        ("€" * 80, GSM7, 160, 1),  # extension characters cost two septets
        ("€" * 81, GSM7, 162, 2),
        ("a" * 152 + "€" + "a" * 10, GSM7, 164, 2),  # escape pair not split: 152 | 2 + 10
        ("a" * 152 + "€" + "a" * 152, GSM7, 306, 3),  # the pair moves to part two
        ("é" * 160, GSM7, 160, 1),  # é is in the GSM alphabet
        ("a" * 69 + "ş", UCS2, 70, 1),  # one non-GSM character switches all of it
        ("a" * 70 + "ş", UCS2, 71, 2),
        ("😀" * 35, UCS2, 70, 1),  # surrogate pairs count two
        ("😀" * 36, UCS2, 72, 2),
        ("a" * 66 + "😀" + "a" * 66, UCS2, 134, 3),  # a pair is never split across parts
    ],
)
def test_segments_are_counted_as_carriers_bill_them(
    text: str, encoding: str, units: int, segments: int
):
    counted = count_segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, segments)
    assert segment_count(text) == segments


def test_look_alikes_keep_a_reply_in_gsm7():
    text = "We’re sorry – “really” sorry…"
    assert count_segments(text).encoding == UCS2
    assert gsm_lookalikes(text) == 'We\'re sorry - "really" sorry...'
    assert count_segments(gsm_lookalikes(text)).encoding == GSM7


@pytest.mark.parametrize("max_segments", [1, 2, 10])
def test_long_replies_split_to_segments_without_breaking_words(max_segments: int):
    text = ("Your refund was approved and will reach your card within five days. " * 60).strip()
    pieces = split_sms(text, max_segments=max_segments)
    assert len(pieces) > 1
    assert all(segment_count(piece) <= max_segments for piece in pieces)
    assert all(len(piece) <= 1600 for piece in pieces)
    assert " ".join(pieces).split() == text.split()


def test_only_the_part_with_an_emoji_pays_for_ucs2():
    text = "a " * 100 + "thanks 🙂 " + "b " * 100
    pieces = split_sms(text.strip(), max_segments=1)
    encodings = [count_segments(piece).encoding for piece in pieces]
    assert UCS2 in encodings and GSM7 in encodings
    assert all(segment_count(piece) == 1 for piece in pieces)


def test_split_refuses_impossible_segment_limits():
    with pytest.raises(ValueError, match="max_segments"):
        split_sms("hi", max_segments=11)


# ---------------------------------------------------------------- config
def test_defaults_match_the_stock_channel_keys(tmp_path: Path):
    config = SmsConfig.from_credentials(credentials(dedup_db=str(tmp_path / "d.db")))
    assert (config.account_sid, config.auth_token, config.twilio_number) == (
        ACCOUNT_SID,
        AUTH_TOKEN,
        NUMBER,
    )
    assert config.reply_mode == "rest" and config.max_segments == 10
    assert config.webhook_url is None and config.trust_proxy_headers is False
    assert config.state_db == tmp_path / "sms_senders.db", "state lives next to dedup_db"


@pytest.mark.parametrize("missing", ["account_sid", "auth_token", "twilio_number"])
def test_a_missing_key_names_the_key_and_the_channel(missing: str):
    given = credentials()
    del given[missing]
    with pytest.raises(SmsConfigError, match=f"channel `twilio`.*key `{missing}`: missing"):
        SmsConfig.from_credentials(given)
    with pytest.raises(SmsConfigError, match="channels.sms.TwilioSmsInput"):
        TwilioSmsInput.from_credentials(given)


@pytest.mark.parametrize(
    ("extra", "key", "hint"),
    [
        ({"auth_tokne": "x"}, "auth_tokne", "unknown key"),
        ({"twilio_number": 15005550006}, "twilio_number", "Quote it"),
        ({"account_sid": "SK" + "0" * 32}, "account_sid", "Account SID"),
        ({"reply_mode": "sync"}, "reply_mode", "rest, twiml"),
        ({"twiml_deadline_seconds": 15}, "twiml_deadline_seconds", "below 15"),
        ({"max_segments": 11}, "max_segments", "1 to 10"),
        ({"webhook_url": "sms.example.com/hook"}, "webhook_url", "http"),
        ({"trust_proxy_headers": "yes"}, "trust_proxy_headers", "true or false"),
        ({"dedup_window_seconds": 0}, "dedup_window_seconds", "at least 1"),
        ({"rate_limits": {"sender": "1/minute"}}, "rate_limits.sender", "unknown key"),
        ({"rate_limits": {"conversation": "fast"}}, "rate_limits.conversation", "COUNT/PERIOD"),
        ({"rate_limits": "30/minute"}, "rate_limits", "expected a mapping"),
    ],
)
def test_bad_values_say_which_key_and_how_to_fix(extra: Dict[str, Any], key: str, hint: str):
    with pytest.raises(SmsConfigError, match=hint) as raised:
        SmsConfig.from_credentials(credentials(**extra))
    assert raised.value.key == key
    assert AUTH_TOKEN not in str(raised.value)


# ---------------------------------------------------------------- signatures and URLs
def signed(url: str, fields: Dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, fields)


FIELDS = {"From": CUSTOMER, "To": NUMBER, "Body": "hello", "MessageSid": "SM1", "NumMedia": "0"}


def test_a_twilio_signature_verifies_and_anything_else_is_403():
    validator = RequestValidator(AUTH_TOKEN)
    url = "https://sms.example.com/webhooks/twilio/webhook"
    verify(validator, url, FIELDS, signed(url, FIELDS))  # no exception
    # Twilio signs the port sometimes and sometimes not; both must pass.
    verify(
        validator,
        url,
        FIELDS,
        signed("https://sms.example.com:443/webhooks/twilio/webhook", FIELDS),
    )
    attempts = [
        None,
        "",
        signed(url, FIELDS, token="another-token"),
        signed("https://other.example.com/webhooks/twilio/webhook", FIELDS),
        signed(url, {**FIELDS, "Body": "something else"}),
    ]
    for signature in attempts:
        with pytest.raises(WebhookRejected) as raised:
            verify(validator, url, FIELDS, signature)
        assert raised.value.status == 403


def test_the_url_is_the_configured_one_whatever_the_headers_say():
    url = public_url(
        configured="https://sms.example.com/hook?tenant=1",
        trust_proxy_headers=True,
        scheme="http",
        headers={"host": "127.0.0.1:5005", "x-forwarded-host": "evil.example"},
        path="/webhooks/twilio/webhook",
        query="",
    )
    assert url == "https://sms.example.com/hook?tenant=1"


def test_proxy_headers_count_only_when_trusted():
    headers = {
        "host": "10.0.0.5:5005",
        "x-forwarded-proto": "https, http",
        "x-forwarded-host": "sms.example.com, proxy.internal",
    }
    common = dict(configured=None, scheme="http", headers=headers, path="/webhooks/twilio/webhook")
    assert (
        public_url(trust_proxy_headers=False, query="", **common)  # type: ignore[arg-type]
        == "http://10.0.0.5:5005/webhooks/twilio/webhook"
    )
    assert (
        public_url(trust_proxy_headers=True, query="a=1", **common)  # type: ignore[arg-type]
        == "https://sms.example.com/webhooks/twilio/webhook?a=1"
    )
    with_port = {**headers, "x-forwarded-port": "8443"}
    assert public_url(
        configured=None,
        trust_proxy_headers=True,
        scheme="http",
        headers=with_port,
        path="/w",
        query="",
    ) == ("https://sms.example.com:8443/w")


# ---------------------------------------------------------------- inbound fields
def test_mms_media_become_attachments():
    inbound = parse_inbound(
        {
            **FIELDS,
            "Body": "it arrived broken",
            "NumMedia": "2",
            "MediaUrl0": "https://api.twilio.com/media/ME0",
            "MediaContentType0": "image/jpeg",
            "MediaUrl1": "https://api.twilio.com/media/ME1",
            "MediaContentType1": "application/pdf",
        }
    )
    assert [(a.kind, a.mime_type, a.url) for a in inbound.attachments] == [
        ("image", "image/jpeg", "https://api.twilio.com/media/ME0"),
        ("document", "application/pdf", "https://api.twilio.com/media/ME1"),
    ]
    assert inbound.body == "it arrived broken" and inbound.sender == CUSTOMER


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"Body": "hi", "MessageSid": "SM1"}, "From"),
        ({"Body": "hi", "From": CUSTOMER}, "MessageSid"),
        ({**FIELDS, "NumMedia": "x"}, "NumMedia"),
        ({**FIELDS, "NumMedia": "11"}, "NumMedia"),
        ({**FIELDS, "NumMedia": "1"}, "MediaUrl0"),
    ],
)
def test_missing_or_odd_fields_are_400(fields: Dict[str, str], reason: str):
    with pytest.raises(WebhookRejected, match=reason) as raised:
        parse_inbound(fields)
    assert raised.value.status == 400


def test_delivery_reports_are_not_messages():
    assert is_status_callback({"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert not is_status_callback({"MessageSid": "SM1", "SmsStatus": "received"})
    assert not is_status_callback(FIELDS)


@pytest.mark.parametrize(
    ("body", "opted_out", "expected"),
    [
        ("STOP", False, STOP),
        ("  stop ", False, STOP),
        ("Unsubscribe", False, STOP),
        ("stopall", False, STOP),
        ("cancel", False, STOP),
        ("please stop texting me", False, None),  # Twilio too needs the word alone
        ("START", False, START),
        ("unstop", True, START),
        ("yes", True, START),
        ("yes", False, None),  # a subscribed customer saying yes answers the bot
        ("help", False, HELP),
        ("INFO", True, HELP),
        ("hello", False, None),
    ],
)
def test_keywords(body: str, opted_out: bool, expected: Optional[str]):
    inbound = parse_inbound({**FIELDS, "Body": body})
    assert keyword(inbound, opted_out=opted_out) == expected


def test_twilio_advanced_opt_out_type_wins_but_not_for_a_plain_yes():
    custom = parse_inbound({**FIELDS, "Body": "ARRET", "OptOutType": "STOP"})
    assert keyword(custom, opted_out=False) == STOP
    yes = parse_inbound({**FIELDS, "Body": "Yes", "OptOutType": "START"})
    assert keyword(yes, opted_out=False) is None
    assert keyword(yes, opted_out=True) == START


# ---------------------------------------------------------------- sender state
class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


OPTIONS = [Option("Yes, connect me", "/affirm"), Option("No thanks", "/deny")]


@pytest.mark.parametrize(
    ("reply", "payload"),
    [
        ("1", "/affirm"),
        (" 2. ", "/deny"),
        ("2)", "/deny"),
        ("no  THANKS", "/deny"),
        ("3", None),
        ("0", None),
        ("١", None),  # an Arabic-Indic digit is not an option number
        ("yes please", None),
    ],
)
def test_a_reply_picks_an_option_by_number_or_title(reply: str, payload: Optional[str]):
    chosen = choose_option(reply, OPTIONS)
    assert (chosen.payload if chosen else None) == payload


def test_options_persist_answer_one_message_and_expire(tmp_path: Path):
    clock = Clock()
    store = SenderStore(tmp_path / "s.db", options_ttl_seconds=60, clock=clock)
    store.remember_options_sync(CUSTOMER, OPTIONS)
    reopened = SenderStore(tmp_path / "s.db", options_ttl_seconds=60, clock=clock)
    assert reopened.take_options_sync(CUSTOMER) == OPTIONS, "kept across a restart"
    assert reopened.take_options_sync(CUSTOMER) == [], "they answer one message only"
    store.remember_options_sync(CUSTOMER, OPTIONS)
    clock.now += 61
    assert store.take_options_sync(CUSTOMER) == []


def test_opt_out_persists_and_clears_options(tmp_path: Path):
    store = SenderStore(tmp_path / "s.db", options_ttl_seconds=60)
    store.remember_options_sync(CUSTOMER, OPTIONS)
    store.set_opted_out_sync(CUSTOMER, True)
    assert SenderStore(tmp_path / "s.db", options_ttl_seconds=60).is_opted_out_sync(CUSTOMER)
    assert store.take_options_sync(CUSTOMER) == []
    store.set_opted_out_sync(CUSTOMER, False)
    assert not store.is_opted_out_sync(CUSTOMER)


# ---------------------------------------------------------------- output channel
class Recorder:
    """A delivery that records instead of sending."""

    def __init__(self, *, ok: bool = True) -> None:
        self.sent: List[Tuple[str, str, Tuple[str, ...]]] = []
        self.ok = ok

    async def deliver(self, to: str, body: str, media_urls: Sequence[str]) -> bool:
        self.sent.append((to, body, tuple(media_urls)))
        return self.ok


def make_output(tmp_path: Path, delivery: Any, **extra: Any) -> TwilioSmsOutput:
    config = SmsConfig.from_credentials(credentials(dedup_db=str(tmp_path / "d.db"), **extra))
    store = SenderStore(config.state_db, options_ttl_seconds=60)
    return TwilioSmsOutput(config, store, delivery)


def test_buttons_become_numbered_options_that_are_remembered(tmp_path: Path):
    recorder = Recorder()
    output = make_output(tmp_path, recorder)
    buttons = [
        {"title": "Yes, connect me", "payload": "/affirm"},
        {"title": "No thanks", "payload": "/deny"},
        {"title": "Our FAQ", "url": "https://northwind.example/faq", "type": "web_url"},
    ]
    asyncio.run(output.send_text_with_buttons(CONVERSATION, "Shall I connect you?", buttons))
    assert recorder.sent == [
        (
            CUSTOMER,
            "Shall I connect you?\n1. Yes, connect me\n2. No thanks\n"
            "Our FAQ: https://northwind.example/faq\nReply with the number.",
            (),
        )
    ]
    assert output.store.take_options_sync(CUSTOMER) == OPTIONS


def test_images_go_as_mms_and_long_text_is_split(tmp_path: Path):
    recorder = Recorder()
    output = make_output(tmp_path, recorder, max_segments=1)

    async def scenario() -> None:
        await output.send_image_url(CONVERSATION, "https://cdn.example/label.png")
        await output.send_text_message(CONVERSATION, "word " * 100)
        await output.send_custom_json(
            CONVERSATION, {"body": "Your label", "media_url": "https://cdn.example/l.pdf"}
        )

    asyncio.run(scenario())
    assert recorder.sent[0] == (CUSTOMER, "", ("https://cdn.example/label.png",))
    texts = [body for _, body, media in recorder.sent[1:-1]]
    assert len(texts) == 4 and all(segment_count(text) == 1 for text in texts)
    assert recorder.sent[-1] == (CUSTOMER, "Your label", ("https://cdn.example/l.pdf",))


def test_nothing_goes_to_an_opted_out_number_except_a_notice(tmp_path: Path):
    recorder = Recorder()
    output = make_output(tmp_path, recorder)
    output.store.set_opted_out_sync(CUSTOMER, True)

    async def scenario() -> None:
        await output.send_text_message(CONVERSATION, "hi")
        await output.send_text_with_buttons(CONVERSATION, "pick", [{"title": "A", "payload": "/a"}])
        await output.send_image_url(CONVERSATION, "https://cdn.example/x.png")
        await output.send_notice(CONVERSATION, "Reply START to opt back in.")

    asyncio.run(scenario())
    assert recorder.sent == [(CUSTOMER, "Reply START to opt back in.", ())]
    assert output.store.take_options_sync(CUSTOMER) == []


def test_smart_encoding_can_be_switched_off(tmp_path: Path):
    on, off = Recorder(), Recorder()
    asyncio.run(make_output(tmp_path / "a", on).send_text_message(CONVERSATION, "We’re here"))
    asyncio.run(
        make_output(tmp_path / "b", off, smart_encoding=False).send_text_message(
            CONVERSATION, "We’re here"
        )
    )
    assert on.sent[0][1] == "We're here" and off.sent[0][1] == "We’re here"


# ---------------------------------------------------------------- TwiML and its deadline
def test_twiml_collects_messages_with_media():
    rest = Recorder()
    reply = TwimlReply(rest)

    async def scenario() -> str:
        await reply.deliver(CUSTOMER, "Hi & welcome <3", ())
        await reply.deliver(CUSTOMER, "Here it is", ("https://cdn.example/a.png",))
        return reply.take_twiml()

    xml = asyncio.run(scenario())
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        "<Message>Hi &amp; welcome &lt;3</Message>"
        "<Message><Body>Here it is</Body><Media>https://cdn.example/a.png</Media></Message>"
        "</Response>"
    )
    assert rest.sent == []


def test_a_slow_bot_falls_back_to_rest_in_order(tmp_path: Path):
    """The webhook answers by the deadline; what the bot says after goes through REST."""
    fake = FakePlatform("twilio").start()
    fake.expect("POST", MESSAGES_PATH, created)
    channel = TwilioSmsInput(
        SmsConfig.from_credentials(
            credentials(
                reply_mode="twiml",
                twiml_deadline_seconds=0.3,
                api_base_url=fake.url,
                dedup_db=str(tmp_path / "d.db"),
            )
        )
    )

    async def slow_bot(message: Any) -> None:
        await message.output_channel.send_text_message(message.sender_id, "first")
        await asyncio.sleep(0.6)
        await message.output_channel.send_text_message(message.sender_id, "second")

    async def scenario() -> str:
        inbound = parse_inbound(FIELDS)
        xml = await channel._accept(inbound, slow_bot)
        await asyncio.wait_for(asyncio.gather(*channel._tasks), 10)
        await channel.messages.close()
        return xml

    try:
        xml = asyncio.run(scenario())
        assert "<Message>" not in xml, "past the deadline the TwiML answer is empty"
        calls = fake.wait_for_calls(MESSAGES_PATH, count=2, timeout=10)
        assert [call.form["Body"] for call in calls] == ["first", "second"]
        fake.assert_no_unexpected_calls()
    finally:
        fake.stop()


# ---------------------------------------------------------------- what the webhook decides
def two_servers(tmp_path: Path) -> Tuple[TwilioSmsInput, TwilioSmsInput]:
    """Two channels on one database, as two servers behind a load balancer."""
    shared = credentials(dedup_db=str(tmp_path / "d.db"), api_base_url="http://127.0.0.1:9")
    return (
        TwilioSmsInput(SmsConfig.from_credentials(shared)),
        TwilioSmsInput(SmsConfig.from_credentials(shared)),
    )


def texts(*bodies: str) -> List[Any]:
    return [
        parse_inbound({**FIELDS, "Body": body, "MessageSid": f"SM{body}{i}"})
        for i, body in enumerate(bodies)
    ]


async def settled(*channels: TwilioSmsInput) -> None:
    await settle(task for channel in channels for task in channel._tasks)


def run_then_close(channels: Sequence[TwilioSmsInput], scenario: Any) -> Any:
    async def run() -> Any:
        try:
            return await scenario
        finally:
            for channel in channels:
                await channel.messages.close()

    return asyncio.run(run())


def test_a_stop_is_recorded_before_the_webhook_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The next message may reach the other server as soon as STOP is answered: however
    slow the database, that server finds the opt-out (CI once caught the bot answering
    it, when the opt-out was still written out of band)."""
    write = SenderStore.set_opted_out_sync

    def slow_write(store: SenderStore, sender: str, opted_out: bool) -> None:
        time.sleep(0.5)
        write(store, sender, opted_out)

    monkeypatch.setattr(SenderStore, "set_opted_out_sync", slow_write)
    one, two = two_servers(tmp_path)
    bot = Bot()

    async def scenario() -> None:
        stop, hello, start, hello_again = texts("STOP", "hello", "START", "hello")
        assert await one._accept(stop, bot) == empty_twiml()
        await two._accept(hello, bot)
        await settled(one, two)
        assert bot.reached == [], "a message after STOP never reaches the bot"
        await two._accept(start, bot)
        await one._accept(hello_again, bot)
        await settled(one, two)

    run_then_close((one, two), scenario())
    assert bot.reached == ["hello"], "after START it does"


def test_one_senders_messages_reach_the_bot_in_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A slow database for the first message does not let the second overtake it."""
    slow_first_call(monkeypatch, SenderStore, "is_opted_out_sync")
    channels, bot = two_servers(tmp_path), Bot()

    async def scenario() -> None:
        await asyncio.gather(*(channels[0]._accept(m, bot) for m in texts("first", "second")))
        await settled(channels[0])

    run_then_close(channels, scenario())
    assert bot.reached == ["first", "second"]


def test_an_unreadable_opt_out_drops_the_message_and_logs_no_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def broken(store: SenderStore, sender: str) -> bool:
        raise RuntimeError(f"database gone while reading {sender}")

    monkeypatch.setattr(SenderStore, "is_opted_out_sync", broken)
    channels, bot = two_servers(tmp_path), Bot()
    with caplog.at_level(logging.ERROR):
        answer = run_then_close(channels, channels[0]._accept(texts("hello")[0], bot))
    assert answer == empty_twiml(), "acknowledged, as when a message fails out of band"
    assert bot.reached == []
    assert "reading or recording an opt-out failed" in caplog.text
    assert CUSTOMER not in caplog.text and "hello" not in caplog.text


# ---------------------------------------------------------------- REST client and retries
@pytest.fixture
def twilio_api() -> Any:
    fake = FakePlatform("twilio").start()
    # What Twilio lists after a send that may have gone through: what was created.
    fake.log = TwilioMessageLog(ACCOUNT_SID)  # type: ignore[attr-defined]
    fake.expect("GET", MESSAGES_PATH, fake.log.list)  # type: ignore[attr-defined]
    yield fake
    try:
        fake.assert_no_unexpected_calls()
    finally:
        fake.stop()


FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)


def send(fake: FakePlatform, to: str, body: str, media: Sequence[str] = ()) -> bool:
    messages = TwilioMessages(ACCOUNT_SID, AUTH_TOKEN, NUMBER, api_base_url=fake.url, policy=FAST)

    async def scenario() -> bool:
        try:
            return await messages.send(to, body, media_urls=media)
        finally:
            await messages.close()

    return asyncio.run(scenario())


def test_the_rest_client_posts_twilios_form_with_basic_auth(twilio_api: FakePlatform):
    twilio_api.expect("POST", MESSAGES_PATH, created, times=1)
    assert send(twilio_api, CUSTOMER, "Hello", ["https://cdn.example/a.png"])
    (call,) = twilio_api.calls_to(MESSAGES_PATH)
    assert call.form == {
        "To": CUSTOMER,
        "From": NUMBER,
        "Body": "Hello",
        "MediaUrl": "https://cdn.example/a.png",
    }
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    import base64

    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert call.headers["authorization"] == f"Basic {expected}"


@pytest.mark.parametrize("status, lookups", [(429, 0), (503, 0), (500, 2), (502, 2)])
def test_429_and_5xx_are_retried(twilio_api: FakePlatform, status: int, lookups: int):
    """429 and 503 are retried at once; after a 500 or 502 Twilio is asked first whether
    it has the message (it has not: the fake created nothing)."""
    failure = (status, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "0"})
    twilio_api.expect("POST", MESSAGES_PATH, failure, times=2)
    twilio_api.expect("POST", MESSAGES_PATH, created, times=1)
    assert send(twilio_api, CUSTOMER, "Hello")
    calls = twilio_api.calls_to(MESSAGES_PATH)
    assert [c.method for c in calls].count("POST") == 3
    assert [c.method for c in calls].count("GET") == lookups


def test_a_4xx_is_not_retried_and_is_logged_without_text_or_token(
    twilio_api: FakePlatform, caplog: pytest.LogCaptureFixture
):
    refused = (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, {})
    twilio_api.expect("POST", MESSAGES_PATH, refused, times=1)
    with caplog.at_level(logging.INFO):
        assert not send(twilio_api, CUSTOMER, "secret order 12345")
    assert len(twilio_api.calls_to(MESSAGES_PATH)) == 1
    assert "21610" in caplog.text
    assert "secret order" not in caplog.text and AUTH_TOKEN not in caplog.text


def test_giving_up_after_the_last_attempt_never_raises(twilio_api: FakePlatform):
    twilio_api.expect("POST", MESSAGES_PATH, (503, {"message": "down"}, {}), times=3)
    assert not send(twilio_api, CUSTOMER, "Hello")
    assert len(twilio_api.calls_to(MESSAGES_PATH)) == 3


def test_an_unreachable_api_is_a_logged_failure(caplog: pytest.LogCaptureFixture):
    fake = FakePlatform("down").start()
    url = fake.url
    fake.stop()  # nothing listens there any more
    messages = TwilioMessages(ACCOUNT_SID, AUTH_TOKEN, NUMBER, api_base_url=url, policy=FAST)

    async def scenario() -> bool:
        try:
            return await messages.send(CUSTOMER, "Hello")
        finally:
            await messages.close()

    assert not asyncio.run(scenario())
    assert "could not connect" in caplog.text
