"""How much one web chat session and one client address may ask, in this process.

Three token buckets (:mod:`channels.rate_limits`), configured under ``rate_limits`` in
the channel's credentials: every hello, message and upload from a client address;
messages and uploads of one session; and sessions started from one address. A request
over a limit raises :class:`~channels.rate_limits.RateLimited`, with the seconds to
wait, and spends nothing from the bucket that refused it.
"""

from __future__ import annotations

from typing import Callable, Optional

from channels.rate_limits import RateLimiter
from channels.webchat_config import WebChatConfig

__all__ = ["WebChatLimits"]


class WebChatLimits:
    """The web chat's three rate limits; each ``check_*`` raises ``RateLimited``."""

    def __init__(
        self, config: WebChatConfig, *, clock: Optional[Callable[[], float]] = None
    ) -> None:
        self.per_address = RateLimiter(config.address_rate, clock=clock)
        self.per_session = RateLimiter(config.conversation_rate, clock=clock)
        self.new_sessions = RateLimiter(config.new_session_rate, clock=clock)

    def check_hello(self, address: str, *, new_session: bool) -> None:
        """A page connecting: a request from ``address``, and maybe a new session."""
        self.per_address.check(address, "requests from your address")
        if new_session:
            self.new_sessions.check(address, "new chats from your address")

    def check_message(self, address: str, session_id: str) -> None:
        """A message or an upload of ``session_id`` from ``address``."""
        self.per_address.check(address, "requests from your address")
        self.per_session.check(session_id, "messages in this chat")
