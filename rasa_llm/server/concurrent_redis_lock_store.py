"""ConcurrentRedisLockStore: Rasa's Redis lock store, safe between processes.

Rasa 3.6's ``RedisLockStore`` keeps a conversation's ticket lock as one JSON value
that every step reads, changes in Python and writes back: issuing a ticket, dropping
expired ones, finishing. Two processes that issue a ticket for the same conversation
at the same moment can both read the same value and both get the same ticket number;
both then handle a message of that conversation at once and one message's events are
lost (measured here: tests/production/test_scale_out.py lost one of seven messages
sent through two servers at once). Within one process asyncio never interleaves
those steps, which is why one worker never shows it.

This subclass keeps the same Redis server and settings and does each step in one Lua
script, which Redis runs atomically: a counter (``INCR``) hands out ticket numbers, a
sorted set holds the live tickets by number and another their expiry times (Redis's
own clock, so servers with skewed clocks agree). A ticket is served when it is the
lowest live number; an expired one (a worker killed mid-message) stops blocking the
others after ``LOCK_LIFETIME``, as in Rasa.

It also caps how many messages one worker handles at once (``max_concurrent_messages``,
default 8; the lock store is the one place every channel's message passes through).
Rasa runs understanding and policies in the worker's event loop, so every message in
progress adds a slice of blocking work to each turn of the loop: with a hundred at
once a turn took minutes on two cores, and the loop answered nothing else meanwhile
(web chat keepalive pongs went unread and Sanic closed the pages with 1011). Messages
over the cap wait, in arrival order and before taking a ticket, so a waiting message
cannot outlive its ticket; throughput is the same, since the loop was the limit.

In ``endpoints.yml``::

    lock_store:
      type: rasa_llm.server.concurrent_redis_lock_store.ConcurrentRedisLockStore
      url: localhost
      port: 6379
      db: 1
      key_prefix: rasallm
      max_concurrent_messages: 8
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Optional

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from rasa_llm.errors import RasaLLMError

__all__ = ["ConcurrentRedisLockStore", "ConcurrentRedisLockStoreError"]

logger = logging.getLogger(__name__)

# How often a waiting message looks again; Rasa's 1 s would add up to a second to
# every message that waits behind another of its conversation.
POLL_SECONDS = 0.02
# Messages one worker handles at once. Enough for some to wait on the action server (the
# generative fallback takes seconds) while others are understood; few enough that a
# turn of the event loop stays short.
DEFAULT_MAX_CONCURRENT_MESSAGES = 8

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
# KEYS: counter, tickets (score = number), expiries (score = expiry ms). ARGV: lifetime ms.
_ISSUE = (
    _NOW_MS
    + """
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, n)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), n)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 10 * tonumber(ARGV[1])) end
return n
"""
)
# KEYS: tickets, expiries. Drops expired tickets; returns the lowest live number or -1.
_SERVING = (
    _NOW_MS
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, n in ipairs(expired) do redis.call('ZREM', KEYS[1], n) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if #first == 0 then return -1 end
return tonumber(first[1])
"""
)
# KEYS: tickets, expiries. ARGV: number.
_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class ConcurrentRedisLockStoreError(RasaLLMError):
    """The lock store's settings cannot work."""


class ConcurrentRedisLockStore(RedisLockStore):
    """Ticket locks in Redis whose every step is one atomic script."""

    def __init__(self, *, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # how Rasa builds a lock store named by class
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        limit = kwargs.pop("max_concurrent_messages", DEFAULT_MAX_CONCURRENT_MESSAGES)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConcurrentRedisLockStoreError(
                f"lock_store.max_concurrent_messages is {limit!r}; it must be a whole number "
                f"of at least 1, e.g. {DEFAULT_MAX_CONCURRENT_MESSAGES} (the default)"
            )
        self.max_concurrent_messages = limit
        # One per event loop (a worker has one; tests drive the store from several).
        self._admission: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(**kwargs)
        self._issue = self.red.register_script(_ISSUE)
        self._serving = self.red.register_script(_SERVING)
        self._finish = self.red.register_script(_FINISH)

    def _keys(self, conversation_id: str) -> tuple[str, str, str]:
        base = self.key_prefix + conversation_id
        return f"{base}:counter", f"{base}:tickets", f"{base}:expiries"

    def issue_ticket(  # positional: overrides Rasa's LockStore method
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME
    ) -> int:
        """Take the next ticket in the conversation's queue, kept for ``lock_lifetime`` seconds."""
        try:
            return int(
                self._issue(keys=self._keys(conversation_id), args=[int(lock_lifetime * 1000)])
            )
        except Exception as error:
            raise LockError(f"Error while issuing a lock ticket: {type(error).__name__}") from error

    def now_serving(self, conversation_id: str) -> Optional[int]:
        """The lowest live ticket of the conversation, or None if none is live."""
        number = int(self._serving(keys=self._keys(conversation_id)[1:]))
        return None if number < 0 else number

    async def _acquire_lock(
        self, conversation_id: str, ticket: int, wait_time_in_seconds: float
    ) -> TicketLock:
        while True:
            serving = self.now_serving(conversation_id)
            if serving == ticket:
                return TicketLock(conversation_id)
            if serving is None or serving > ticket:
                # This ticket expired while it waited (lifetime too short for the wait).
                raise LockError(f"Lock ticket {ticket} expired before its turn came.")
            await asyncio.sleep(wait_time_in_seconds)

    @asynccontextmanager
    async def lock(  # positional: overrides Rasa's LockStore method
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = POLL_SECONDS,
    ) -> AsyncGenerator[TicketLock, None]:
        """Hold the conversation's lock: wait for the ticket's turn, finish it afterwards."""
        loop = asyncio.get_running_loop()
        admission = self._admission.get(loop)
        if admission is None:
            admission = self._admission[loop] = asyncio.Semaphore(self.max_concurrent_messages)
        async with admission:
            ticket = self.issue_ticket(conversation_id, lock_lifetime)
            try:
                yield await self._acquire_lock(
                    conversation_id, ticket, min(wait_time_in_seconds, POLL_SECONDS)
                )
            finally:
                self.cleanup(conversation_id, ticket)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Finish ``ticket_number`` so the next ticket in the queue is served."""
        self._finish(keys=self._keys(conversation_id)[1:], args=[ticket_number])

    def is_someone_waiting(self, conversation_id: str) -> bool:
        """Whether any ticket for the conversation is waiting or being served."""
        return self.now_serving(conversation_id) is not None
