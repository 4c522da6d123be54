"""How each caller proves who it is: one small unit per scheme, each with its own test.

- Slack (customers' and agents' apps): v0 HMAC-SHA256 of timestamp and body, checked
  by slack_sdk, at most five minutes old (:class:`SlackRequestVerifier`, clock).
- Telegram: the webhook's secret token in a header (:class:`TelegramSecretVerifier`).
- Twilio (SMS): HMAC-SHA1 of the URL and the form, checked by twilio's
  ``RequestValidator`` (:class:`TwilioSignatureVerifier`).
- The web chat page: our HMAC-SHA256 session token over the session id and the time it
  was issued, valid for a TTL (:class:`SessionSigner`, clock).
- Programs, agents and metrics scrapers: ``Authorization: Bearer <token>``
  (:class:`BearerTokenVerifier`).

Where a scheme signs a time, the verifier takes ``clock`` (a function returning Unix
seconds, ``time.time`` by default), as ``slack_sdk.signature.SignatureVerifier`` does,
so a test can make a request five minutes old without waiting. Telegram's token and
Twilio's signature carry no time, so their verifiers have no clock: a replayed webhook
is dropped by its update id or ``MessageSid`` (:class:`channels.delivery_log.DeliveryLog`).
A bearer token is a standing secret, with no time to check either. The platforms' own
libraries compute the signatures where they have one (slack_sdk, twilio); the rest
compare in constant time. Bearer headers are read by :mod:`rasa_llm.server.bearer_tokens`, as
for rasa-llm's own routes, so importing this module imports ``rasa_llm`` (as every
input channel module does anyway).

A refusal raises :class:`channels.webhook_guard.WebhookRejected` (the web chat's
:class:`SessionRejected`) with a reason that says which check failed, never the secret
or what was signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Callable, Mapping, Optional, Tuple

from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from channels.webhook_guard import WebhookRejected
from rasa_llm.server.bearer_tokens import bearer_token, refusal

__all__ = [
    "BearerTokenVerifier",
    "Clock",
    "SessionRejected",
    "SessionSigner",
    "SlackRequestVerifier",
    "TelegramSecretVerifier",
    "TwilioSignatureVerifier",
    "bearer_token",
    "header",
    "verify_twilio_signature",
]

# A function that returns the time in Unix seconds.
Clock = Callable[[], float]


def header(headers: Mapping[str, str], name: str) -> Optional[str]:
    """The header ``name`` in any case, from Sanic's headers or a plain dict."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


# ---------------------------------------------------------------------- Slack
# Slack's own rule: a request more than five minutes from our clock may be a replay.
SLACK_MAX_REQUEST_AGE_SECONDS = 5 * 60


class _FunctionClock(SlackClock):
    """slack_sdk's clock interface over a plain function, so tests can set the time."""

    def __init__(self, now: Clock) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackRequestVerifier:
    """Slack's signing scheme (v0 HMAC-SHA256 of timestamp and body) via slack_sdk.

    The reason in each rejection says which check failed, never what was signed.
    """

    def __init__(self, signing_secret: str, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._verifier = SignatureVerifier(signing_secret, clock=_FunctionClock(clock))

    def verify(self, body: str, headers: Mapping[str, str]) -> None:
        """Return if Slack signed ``body`` less than five minutes ago; raise 401 otherwise."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get("x-slack-request-timestamp")
        signature = lowered.get("x-slack-signature")
        if not timestamp or not signature:
            raise WebhookRejected(401, "request is not signed (X-Slack-Signature missing)")
        if not timestamp.isdigit():
            raise WebhookRejected(401, "X-Slack-Request-Timestamp is not a number")
        if abs(self._clock() - int(timestamp)) > SLACK_MAX_REQUEST_AGE_SECONDS:
            raise WebhookRejected(401, "request timestamp is more than 5 minutes off (replay?)")
        if not self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            raise WebhookRejected(401, "X-Slack-Signature does not match the signing secret")


# ---------------------------------------------------------------------- Telegram
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramSecretVerifier:
    """Telegram's only webhook proof: the secret token, compared in constant time."""

    def __init__(self, secret_token: str) -> None:
        self._secret = secret_token.encode("utf-8")

    def verify(self, headers: Mapping[str, str]) -> None:
        """Return if the request carries the secret token; raise 401 or 403 otherwise."""
        given = header(headers, TELEGRAM_SECRET_HEADER)
        if given is None:
            raise WebhookRejected(
                401,
                f"request has no {TELEGRAM_SECRET_HEADER} header (register the webhook with "
                "`python -m channels.telegram set-webhook`)",
            )
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._secret):
            raise WebhookRejected(403, f"{TELEGRAM_SECRET_HEADER} does not match secret_token")


# ---------------------------------------------------------------------- Twilio
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


def verify_twilio_signature(
    validator: RequestValidator, url: str, fields: Mapping[str, str], signature: Optional[str]
) -> None:
    """Raise a 403 unless ``signature`` is Twilio's for ``url`` and ``fields``."""
    if not signature:
        raise WebhookRejected(403, f"missing {TWILIO_SIGNATURE_HEADER} header")
    if not validator.validate(url, dict(fields), signature):
        raise WebhookRejected(
            403,
            f"{TWILIO_SIGNATURE_HEADER} does not match this request (the signed URL must equal "
            "webhook_url, or the proxy headers when trust_proxy_headers is on)",
        )


class TwilioSignatureVerifier:
    """Twilio's HMAC-SHA1 over the URL it called and the sorted form fields.

    ``twilio.request_validator.RequestValidator`` computes it; which URL Twilio called
    is :func:`channels.sms_inbound.public_url`'s question.
    """

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)

    def verify(self, url: str, fields: Mapping[str, str], headers: Mapping[str, str]) -> None:
        """Return if the request's ``X-Twilio-Signature`` is Twilio's; raise 403 otherwise."""
        verify_twilio_signature(
            self.validator, url, fields, header(headers, TWILIO_SIGNATURE_HEADER)
        )


# ---------------------------------------------------------------------- web chat
WEBCHAT_TOKEN_VERSION = "v1"
# A clock ahead of ours by this much is tolerated; more makes a token from the future.
WEBCHAT_CLOCK_SKEW_SECONDS = 300
WEBCHAT_SESSION_ID = re.compile(r"[0-9a-f]{32}")
_WEBCHAT_TOKEN = re.compile(r"v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class SessionRejected(Exception):
    """A session id and token that do not verify; the reason is safe to log."""


class SessionSigner:
    """Issues and verifies web chat session tokens with one secret and a clock.

    A token is ``v1.<issued>.<HMAC-SHA256 of id and issued time>``: nothing is stored
    per session, so any worker holding the secret can verify any session.
    """

    def __init__(
        self,
        secret: str,
        *,
        ttl_seconds: float,
        clock: Optional[Clock] = None,
    ) -> None:
        self._key = secret.encode("utf-8")
        self.ttl_seconds = ttl_seconds
        self._clock = clock or time.time

    def new_session(self) -> Tuple[str, str]:
        """A fresh random session id (128 bits) and its token."""
        session_id = secrets.token_hex(16)
        return session_id, self.issue(session_id)

    def issue(self, session_id: str) -> str:
        """A token for ``session_id``, issued now."""
        issued = int(self._clock())
        return f"{WEBCHAT_TOKEN_VERSION}.{issued}.{self._sign(session_id, issued)}"

    def verify(self, session_id: object, token: object) -> str:
        """The session id, if ``token`` was issued for it by this secret and is current."""
        if not isinstance(session_id, str) or not WEBCHAT_SESSION_ID.fullmatch(session_id):
            raise SessionRejected("session id missing or malformed")
        if not isinstance(token, str):
            raise SessionRejected("session token missing")
        match = _WEBCHAT_TOKEN.fullmatch(token)
        if match is None:
            raise SessionRejected("session token malformed")
        issued = int(match.group(1))
        expected = self._sign(session_id, issued)
        # Compare the signature before looking at the time, and in constant time, so a
        # forger learns nothing from the answer.
        if not hmac.compare_digest(expected, match.group(2)):
            raise SessionRejected("session token signature does not match")
        now = self._clock()
        if issued > now + WEBCHAT_CLOCK_SKEW_SECONDS:
            raise SessionRejected("session token issued in the future")
        if now - issued > self.ttl_seconds:
            raise SessionRejected("session token expired")
        return session_id

    def _sign(self, session_id: str, issued: int) -> str:
        message = f"webchat|{WEBCHAT_TOKEN_VERSION}|{session_id}|{issued}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ---------------------------------------------------------------------- bearer token
class BearerTokenVerifier:
    """One expected ``Authorization: Bearer`` token, compared in constant time.

    The header is read as everywhere in rasa-llm (:mod:`rasa_llm.server.bearer_tokens`).
    ``hint`` is added to each refusal's reason (which token to send).
    """

    def __init__(self, expected: str, *, hint: str = "") -> None:
        self._expected = expected
        self._hint = hint

    def verify(self, headers: Mapping[str, str]) -> None:
        """Return if the request bears the token; raise 401 without one, 403 with another."""
        refused = refusal(headers, self._expected)
        if refused is not None:
            status, reason = refused
            raise WebhookRejected(status, reason + self._hint)

    def matches(self, token: str) -> bool:
        """Whether ``token`` (already read from the request) is the expected one."""
        return hmac.compare_digest(token.encode(), self._expected.encode())
