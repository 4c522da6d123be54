"""Messages out through Twilio's REST API, with twilio's own async client, each sent once.

``client.messages.create_async`` builds the request (``POST
/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, basic auth) exactly
as Twilio expects. Underneath, :class:`TwilioHttp` is the HTTP client the twilio
library is given: one aiohttp session, opened lazily inside the event loop, a
configurable base URL (``api_base_url``, so tests talk to a local fake), a timeout,
and 429/5xx turned into an exception that keeps ``Retry-After``.

:func:`channels.outbound.call_with_retry` retries a 429, a 503 and a connection that
could not be opened. A timeout after the request was sent, a dropped connection, or
another 5xx may mean that Twilio took the message (and will bill it) although the
answer never came: before sending again, :meth:`TwilioMessages.find` lists the
messages Twilio has from our number to the recipient sent since the attempt began
(``To``, ``From``, ``DateSent>=``) and counts the attempt as sent if one has the same
body. If that look-up fails too, the message is logged as possibly undelivered and
not sent again. A failure is logged with the status and Twilio's error code, never the
text, the number or a token, and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Deque, Dict, Optional, Sequence, Tuple
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from channels.outbound import (
    Failure,
    RetryPolicy,
    call_with_retry,
    connection_failure,
    http_failure,
)

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twilio.com"
REQUEST_TIMEOUT_SECONDS = 15.0
# How far Twilio's clock may be behind ours when the look-up asks for messages sent
# since an attempt began (DateSent has whole seconds).
CLOCK_MARGIN = timedelta(seconds=60)
# How many of the recipient's latest messages the look-up reads.
LOOKUP_LIMIT = 20
# Sids of messages this process sent, so that a look-up does not take an earlier
# reply with the same words for the one that timed out.
REMEMBERED_SIDS = 1000


class TwilioRetryable(TwilioRestException):
    """A 429 or 5xx from Twilio, with the Retry-After it asked for (if any)."""

    def __init__(self, status: int, uri: str, method: str, retry_after: Optional[str]) -> None:
        super().__init__(status, uri, msg=f"HTTP {status}", method=method)
        self.retry_after = retry_after


class TwilioHttp(AsyncHttpClient):
    """The async HTTP client behind twilio's ``Client``: base URL, timeout, retryable errors."""

    def __init__(
        self, *, base_url: str = DEFAULT_API_BASE_URL, timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(logger=logger, is_async=True, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self._session: Optional[aiohttp.ClientSession] = None

    def rebase(self, url: str) -> str:
        """``url`` (built by twilio for api.twilio.com) on the configured base URL."""
        if self.base_url == DEFAULT_API_BASE_URL:
            return url  # leave twilio's edge/region host rewriting alone
        base, target = urlsplit(self.base_url), urlsplit(url)
        path = base.path.rstrip("/") + target.path
        return urlunsplit((base.scheme, base.netloc, path, target.query, ""))

    async def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        *,
        params: Optional[Dict[str, object]] = None,
        data: Optional[Dict[str, object]] = None,
        headers: Optional[Dict[str, str]] = None,
        auth: Optional[Tuple[str, str]] = None,
        timeout: Optional[float] = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request to Twilio; raise TwilioRetryable on a 429 or 5xx answer."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        url = self.rebase(uri)
        # MediaUrl is a list: repeated form fields, as Twilio reads them.
        body = urlencode(data or {}, doseq=True).encode() if data is not None else None
        async with self._session.request(
            method.upper(),
            url,
            params=params,  # type: ignore[arg-type]
            data=body,
            headers=headers,
            auth=aiohttp.BasicAuth(*auth) if auth else None,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as answer:
            text = await answer.text()
            if answer.status == 429 or answer.status >= 500:
                raise TwilioRetryable(
                    answer.status, url, method.upper(), answer.headers.get("Retry-After")
                )
            return Response(answer.status, text, dict(answer.headers))

    async def close(self) -> None:
        """Close the HTTP session, if one is open."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def classify(error: BaseException) -> Failure:
    """Whether an attempt to send may be retried, and why it failed (no text, no token)."""
    if isinstance(error, TwilioRetryable):
        return http_failure(error.status, retry_after=error.retry_after)
    if isinstance(error, TwilioRestException):
        failure = http_failure(error.status)
        code = f", Twilio error {error.code}" if error.code else ""
        return Failure(failure.retryable, f"{failure.reason}{code}")
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
        return connection_failure(error)
    return Failure(retryable=False, reason=f"unexpected {type(error).__name__}")


class TwilioMessages:
    """Sends SMS and MMS from one Twilio number; every send is retried where that cannot
    send it twice, and never raises.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_base_url: str = DEFAULT_API_BASE_URL,
        policy: Optional[RetryPolicy] = None,
        operation_name: str = "twilio",
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.from_number = from_number
        self.policy = policy or RetryPolicy()
        self.operation_name = operation_name
        self.http = TwilioHttp(base_url=api_base_url, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self._sent: Deque[str] = deque(maxlen=REMEMBERED_SIDS)

    async def send(self, to: str, body: str, *, media_urls: Sequence[str] = ()) -> bool:
        """Send one message; True when Twilio accepted it (or already had it)."""
        started = [datetime.now(timezone.utc)]

        async def create() -> MessageInstance:
            started[0] = datetime.now(timezone.utc)
            return await self.client.messages.create_async(
                to=to,
                from_=self.from_number,
                body=body if body else values.unset,
                media_url=list(media_urls) if media_urls else values.unset,
            )

        async def confirm() -> Optional[MessageInstance]:
            return await self.find(to, body, since=started[0])

        operation = "send MMS" if media_urls else "send SMS"
        result = await call_with_retry(
            self.operation_name, operation, create, classify, policy=self.policy, confirm=confirm
        )
        if result is not None and result.sid:
            self._sent.append(result.sid)
        return result is not None

    async def find(self, to: str, body: str, *, since: datetime) -> Optional[MessageInstance]:
        """A message Twilio has from our number to ``to`` with ``body``, sent since
        ``since`` (less the clock margin) and not one this process knows it sent; None
        if there is none. Raises when Twilio cannot be asked.
        """
        listed = await self.client.messages.list_async(
            to=to,
            from_=self.from_number,
            date_sent_after=since - CLOCK_MARGIN,
            limit=LOOKUP_LIMIT,
        )
        return next(
            (
                message
                for message in listed
                if (message.body or "") == body and message.sid not in self._sent
            ),
            None,
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.http.close()
