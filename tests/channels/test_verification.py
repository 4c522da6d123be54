"""channels.verification: each caller's proof accepted, refused when wrong, stale or replayed.

The clock is a list the test moves, as slack_sdk's own tests do with ``clock``; the
signatures are made with the platforms' libraries (slack_sdk, twilio), not by us.
"""

from __future__ import annotations

from typing import Dict, List

import pytest
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from channels.verification import (
    SLACK_MAX_REQUEST_AGE_SECONDS,
    TELEGRAM_SECRET_HEADER,
    TWILIO_SIGNATURE_HEADER,
    WEBCHAT_CLOCK_SKEW_SECONDS,
    BearerTokenVerifier,
    SessionRejected,
    SessionSigner,
    SlackRequestVerifier,
    TelegramSecretVerifier,
    TwilioSignatureVerifier,
    header,
)
from channels.webhook_guard import WebhookRejected

NOW = 1_700_000_000.0
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = '{"type":"event_callback","event_id":"Ev1"}'


class FakeClock:
    """A clock the test sets: ``clock()`` is the time, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = NOW) -> None:
        self.times: List[float] = [now]

    def __call__(self) -> float:
        return self.times[-1]

    def advance(self, seconds: float) -> None:
        self.times.append(self.times[-1] + seconds)


def slack_headers(body: str, timestamp: float, secret: str = SLACK_SECRET) -> Dict[str, str]:
    stamp = str(int(timestamp))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(
            timestamp=stamp, body=body
        ),
    }


# ---------------------------------------------------------------------- Slack
def test_slack_accepts_a_request_signed_now():
    SlackRequestVerifier(SLACK_SECRET, clock=FakeClock()).verify(BODY, slack_headers(BODY, NOW))


def test_slack_refuses_a_request_five_minutes_old():
    clock = FakeClock()
    verifier = SlackRequestVerifier(SLACK_SECRET, clock=clock)
    headers = slack_headers(BODY, NOW - SLACK_MAX_REQUEST_AGE_SECONDS - 1)
    with pytest.raises(WebhookRejected) as refused:
        verifier.verify(BODY, headers)
    assert refused.value.status == 401
    assert "more than 5 minutes" in refused.value.reason
    # Just inside the window it is still Slack's.
    verifier.verify(BODY, slack_headers(BODY, NOW - SLACK_MAX_REQUEST_AGE_SECONDS + 1))


def test_slack_refuses_a_replay_once_the_clock_has_moved_on():
    clock = FakeClock()
    verifier = SlackRequestVerifier(SLACK_SECRET, clock=clock)
    headers = slack_headers(BODY, NOW)
    verifier.verify(BODY, headers)
    clock.advance(SLACK_MAX_REQUEST_AGE_SECONDS + 1)
    with pytest.raises(WebhookRejected, match="replay"):
        verifier.verify(BODY, headers)


def test_slack_refuses_a_timestamp_from_the_future():
    verifier = SlackRequestVerifier(SLACK_SECRET, clock=FakeClock())
    with pytest.raises(WebhookRejected, match="more than 5 minutes"):
        verifier.verify(BODY, slack_headers(BODY, NOW + SLACK_MAX_REQUEST_AGE_SECONDS + 1))


def test_slack_refuses_a_tampered_body_and_another_secret():
    verifier = SlackRequestVerifier(SLACK_SECRET, clock=FakeClock())
    headers = slack_headers(BODY, NOW)
    with pytest.raises(WebhookRejected) as refused:
        verifier.verify(BODY.replace("Ev1", "Ev2"), headers)
    assert refused.value.status == 401
    assert refused.value.reason == "X-Slack-Signature does not match the signing secret"
    with pytest.raises(WebhookRejected, match="does not match"):
        verifier.verify(BODY, slack_headers(BODY, NOW, secret="another-secret"))


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "not signed"),
        ({"X-Slack-Request-Timestamp": str(int(NOW))}, "not signed"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}, "not a number"),
    ],
)
def test_slack_refuses_unsigned_requests(headers: Dict[str, str], reason: str):
    with pytest.raises(WebhookRejected, match=reason):
        SlackRequestVerifier(SLACK_SECRET, clock=FakeClock()).verify(BODY, headers)


def test_slack_reads_headers_in_any_case():
    lowered = {key.lower(): value for key, value in slack_headers(BODY, NOW).items()}
    SlackRequestVerifier(SLACK_SECRET, clock=FakeClock()).verify(BODY, lowered)


# ---------------------------------------------------------------------- Telegram
TELEGRAM_SECRET = "s" * 43


def test_telegram_accepts_its_secret_in_any_header_case():
    verifier = TelegramSecretVerifier(TELEGRAM_SECRET)
    verifier.verify({TELEGRAM_SECRET_HEADER: TELEGRAM_SECRET})
    verifier.verify({TELEGRAM_SECRET_HEADER.upper(): TELEGRAM_SECRET})


def test_telegram_refuses_a_missing_or_wrong_secret():
    verifier = TelegramSecretVerifier(TELEGRAM_SECRET)
    with pytest.raises(WebhookRejected) as missing:
        verifier.verify({})
    assert missing.value.status == 401 and "set-webhook" in missing.value.reason
    for wrong in (TELEGRAM_SECRET[:-1], TELEGRAM_SECRET + "s", "", "é" * 43):
        with pytest.raises(WebhookRejected) as refused:
            verifier.verify({TELEGRAM_SECRET_HEADER: wrong})
        assert refused.value.status == 403
        assert TELEGRAM_SECRET not in refused.value.reason


# ---------------------------------------------------------------------- Twilio
AUTH_TOKEN = "12345678901234567890123456789012"
URL = "https://bot.example.com/webhooks/twilio/webhook"
FIELDS = {"From": "+15005550006", "Body": "Where is my order?", "MessageSid": "SM1"}


def twilio_headers(url: str, fields: Dict[str, str]) -> Dict[str, str]:
    return {TWILIO_SIGNATURE_HEADER: RequestValidator(AUTH_TOKEN).compute_signature(url, fields)}


def test_twilio_accepts_what_twilio_signed():
    TwilioSignatureVerifier(AUTH_TOKEN).verify(URL, FIELDS, twilio_headers(URL, FIELDS))
    lowered = {key.lower(): value for key, value in twilio_headers(URL, FIELDS).items()}
    TwilioSignatureVerifier(AUTH_TOKEN).verify(URL, FIELDS, lowered)


def test_twilio_refuses_a_tampered_form_another_url_or_no_signature():
    verifier = TwilioSignatureVerifier(AUTH_TOKEN)
    headers = twilio_headers(URL, FIELDS)
    for url, fields in (
        (URL, {**FIELDS, "Body": "Refund me twice"}),
        (URL + "?x=1", FIELDS),
        ("http://bot.example.com/webhooks/twilio/webhook", FIELDS),
    ):
        with pytest.raises(WebhookRejected) as refused:
            verifier.verify(url, fields, headers)
        assert refused.value.status == 403 and "does not match" in refused.value.reason
    with pytest.raises(WebhookRejected, match="missing X-Twilio-Signature"):
        verifier.verify(URL, FIELDS, {})


def test_twilio_refuses_a_signature_made_with_another_token():
    other = RequestValidator("0" * 32).compute_signature(URL, FIELDS)
    with pytest.raises(WebhookRejected):
        TwilioSignatureVerifier(AUTH_TOKEN).verify(URL, FIELDS, {TWILIO_SIGNATURE_HEADER: other})


# ---------------------------------------------------------------------- web chat
WEBCHAT_SECRET = "w" * 43
TTL = 3600.0


def test_a_session_token_is_good_until_its_ttl_then_expires():
    clock = FakeClock()
    signer = SessionSigner(WEBCHAT_SECRET, ttl_seconds=TTL, clock=clock)
    session_id, token = signer.new_session()
    assert token.startswith(f"v1.{int(NOW)}.")
    clock.advance(TTL)
    assert signer.verify(session_id, token) == session_id
    clock.advance(1)
    with pytest.raises(SessionRejected, match="expired"):
        signer.verify(session_id, token)
    # A fresh token (every reconnection gets one) starts the TTL over.
    assert signer.verify(session_id, signer.issue(session_id)) == session_id


def test_a_session_token_from_the_future_is_refused_beyond_the_skew():
    clock = FakeClock()
    signer = SessionSigner(WEBCHAT_SECRET, ttl_seconds=TTL, clock=clock)
    session_id, _ = signer.new_session()
    clock.advance(WEBCHAT_CLOCK_SKEW_SECONDS + 1)
    from_the_future = signer.issue(session_id)
    clock.times.append(NOW)
    with pytest.raises(SessionRejected, match="future"):
        signer.verify(session_id, from_the_future)


def test_a_session_token_is_bound_to_its_id_and_its_secret():
    signer = SessionSigner(WEBCHAT_SECRET, ttl_seconds=TTL, clock=FakeClock())
    session_id, token = signer.new_session()
    other_id, _ = signer.new_session()
    with pytest.raises(SessionRejected, match="signature does not match"):
        signer.verify(other_id, token)
    stranger = SessionSigner("x" * 43, ttl_seconds=TTL, clock=FakeClock())
    with pytest.raises(SessionRejected, match="signature does not match"):
        stranger.verify(session_id, token)
    version, issued, signature = token.split(".")
    with pytest.raises(SessionRejected, match="signature does not match"):
        signer.verify(session_id, f"{version}.{int(issued) + 1}.{signature}")


@pytest.mark.parametrize(
    "session_id, token, reason",
    [
        (None, "v1.1.x", "session id missing"),
        ("ABC", "v1.1.x", "session id missing"),
        ("0" * 32, None, "token missing"),
        ("0" * 32, "v2.1." + "a" * 43, "malformed"),
        ("0" * 32, "v1.1.short", "malformed"),
    ],
)
def test_malformed_sessions_are_refused(session_id: object, token: object, reason: str):
    signer = SessionSigner(WEBCHAT_SECRET, ttl_seconds=TTL, clock=FakeClock())
    with pytest.raises(SessionRejected, match=reason):
        signer.verify(session_id, token)


# ---------------------------------------------------------------------- bearer token
REST_TOKEN = "r" * 32


def test_a_bearer_token_is_accepted_with_any_scheme_case():
    verifier = BearerTokenVerifier(REST_TOKEN)
    verifier.verify({"authorization": f"Bearer {REST_TOKEN}"})
    verifier.verify({"authorization": f"bearer   {REST_TOKEN} "})
    assert verifier.matches(REST_TOKEN)
    assert not verifier.matches(REST_TOKEN[:-1])


def test_a_missing_bearer_token_is_401_and_a_wrong_one_403_with_the_hint():
    verifier = BearerTokenVerifier(REST_TOKEN, hint=" (send the REST token)")
    for headers in ({}, {"authorization": f"Basic {REST_TOKEN}"}, {"authorization": "Bearer "}):
        with pytest.raises(WebhookRejected) as missing:
            verifier.verify(headers)
        assert (missing.value.status, missing.value.reason) == (
            401,
            "missing bearer token (send the REST token)",
        )
    with pytest.raises(WebhookRejected) as wrong:
        verifier.verify({"authorization": f"Bearer {REST_TOKEN}x"})
    assert (wrong.value.status, wrong.value.reason) == (
        403,
        "wrong bearer token (send the REST token)",
    )


def test_header_is_found_in_any_case():
    assert header({"X-Thing": "1"}, "x-thing") == "1"
    assert header({"x-thing": "1"}, "X-Thing") == "1"
    assert header({"X-THING": "1"}, "X-Thing") == "1"
    assert header({}, "X-Thing") is None
