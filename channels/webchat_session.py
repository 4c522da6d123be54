"""Who may talk to the web chat: server-issued session tokens and the pages allowed in.

A session id is chosen by the server and travels with an HMAC-SHA256 token over the id
and the time it was issued. The page keeps both in ``localStorage``; on every
(re)connection it presents them, the server checks the token before reading anything
else and hands out a fresh one, so an open chat never expires while a forgotten one
does after ``session_ttl_seconds``. Nothing is stored per session on the server: any
worker holding the secret can verify any session. The tokens are made and checked by
:class:`channels.verification.SessionSigner` (importable from here too).
"""

from __future__ import annotations

from typing import Iterable, Optional

from channels.verification import SessionRejected, SessionSigner
from channels.webchat_config import normalize_origin

__all__ = ["OriginPolicy", "SessionRejected", "SessionSigner"]


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
        """Whether a request from ``origin`` may open the chat (no Origin: not a browser)."""
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
