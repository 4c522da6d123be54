"""Who may talk to the web chat: server-issued session tokens and the pages allowed in.

A session id is chosen by the server and travels with an HMAC-SHA256 token over the id
and the time it was issued. The page keeps both in ``localStorage``; on every
(re)connection it presents them, the server checks the token before reading anything
else and hands out a fresh one, so an open chat never expires while a forgotten one
does after ``session_ttl_seconds``. Nothing is stored per session on the server: any
worker holding the secret can verify any session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Callable, Iterable, Optional, Tuple

from channels.webchat_config import normalize_origin

TOKEN_VERSION = "v1"
# A clock ahead of ours by this much is tolerated; more makes a token from the future.
CLOCK_SKEW_SECONDS = 300
SESSION_ID = re.compile(r"[0-9a-f]{32}")
_TOKEN = re.compile(r"v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class SessionRejected(Exception):
    """A session id and token that do not verify; the reason is safe to log."""


class SessionSigner:
    """Issues and verifies session tokens with one secret and an injectable clock."""

    def __init__(
        self,
        secret: str,
        *,
        ttl_seconds: float,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        self._key = secret.encode("utf-8")
        self.ttl_seconds = ttl_seconds
        self._clock = clock or time.time

    def new_session(self) -> Tuple[str, str]:
        """A fresh random session id (128 bits) and its token."""
        session_id = secrets.token_hex(16)
        return session_id, self.issue(session_id)

    def issue(self, session_id: str) -> str:
        issued = int(self._clock())
        return f"{TOKEN_VERSION}.{issued}.{self._sign(session_id, issued)}"

    def verify(self, session_id: object, token: object) -> str:
        """The session id, if ``token`` was issued for it by this secret and is current."""
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            raise SessionRejected("session id missing or malformed")
        if not isinstance(token, str):
            raise SessionRejected("session token missing")
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise SessionRejected("session token malformed")
        issued = int(match.group(1))
        expected = self._sign(session_id, issued)
        # Compare the signature before looking at the time, and in constant time, so a
        # forger learns nothing from the answer.
        if not hmac.compare_digest(expected, match.group(2)):
            raise SessionRejected("session token signature does not match")
        now = self._clock()
        if issued > now + CLOCK_SKEW_SECONDS:
            raise SessionRejected("session token issued in the future")
        if now - issued > self.ttl_seconds:
            raise SessionRejected("session token expired")
        return session_id

    def _sign(self, session_id: str, issued: int) -> str:
        message = f"webchat|{TOKEN_VERSION}|{session_id}|{issued}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OriginPolicy:
    """Which pages may open the chat's WebSocket or upload to it.

    Browsers always send ``Origin`` on a WebSocket handshake and on a cross-site POST, so
    a page on another site cannot borrow the chat. A request without ``Origin`` comes
    from a program, not from a page; it is let through, because it still needs a
    session token to say anything.
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def allows(self, origin: Optional[str], *, host: Optional[str], scheme: str) -> bool:
        if origin is None:
            return True
        if "*" in self.allowed:
            return True
        if origin == "null":  # a sandboxed frame or a file: page
            return False
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        if self.allowed:
            return normalized in self.allowed
        if not host:
            return False
        # Default: the page must come from the host and port that serve this chat. The
        # scheme is compared too, except http against https (a proxy ending TLS in front
        # of the server makes the server see http).
        try:
            own = normalize_origin(f"{scheme}://{host}")
        except ValueError:
            return False
        return _without_scheme(normalized) == _without_scheme(own)


def _without_scheme(origin: str) -> str:
    return origin.split("://", 1)[1]
