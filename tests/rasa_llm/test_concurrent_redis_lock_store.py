"""ConcurrentRedisLockStore against a real Redis server, from several threads at once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import List, Tuple

import pytest
from rasa.core.lock_store import LockError
from rasa.utils.endpoints import EndpointConfig

from bench.support.redis_server import RedisServer
from rasa_llm.server.concurrent_redis_lock_store import ConcurrentRedisLockStore


def store(redis: RedisServer) -> ConcurrentRedisLockStore:
    """A store as Rasa builds one from endpoints.yml (each its own connections)."""
    config = EndpointConfig.from_dict(
        {"type": "rasa_llm.server.concurrent_redis_lock_store.ConcurrentRedisLockStore",
         "url": redis.host, "port": redis.port, "db": 1, "key_prefix": "test"}
    )  # fmt: skip
    return ConcurrentRedisLockStore(endpoint_config=config)


def test_tickets_issued_at_once_by_many_clients_are_all_different(redis_server: RedisServer):
    conversation = f"c-{uuid.uuid4()}"
    stores = [store(redis_server) for _ in range(8)]

    def issue(one: ConcurrentRedisLockStore) -> List[int]:
        return [one.issue_ticket(conversation) for _ in range(100)]

    with ThreadPoolExecutor(len(stores)) as pool:
        tickets = [n for batch in pool.map(issue, stores) for n in batch]
    assert sorted(tickets) == list(range(1, 801))


def test_one_holder_at_a_time_in_ticket_order(redis_server: RedisServer):
    conversation = f"c-{uuid.uuid4()}"
    spans: List[Tuple[float, float]] = []
    guard = threading.Lock()

    def worker(_: int) -> None:
        one = store(redis_server)

        async def hold() -> None:
            for _ in range(5):
                async with one.lock(conversation):
                    entered = time.monotonic()
                    await asyncio.sleep(0.01)
                    with guard:
                        spans.append((entered, time.monotonic()))

        asyncio.run(hold())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    spans.sort()
    assert len(spans) == 20
    for (_, left_at), (next_entered, _) in zip(spans, spans[1:], strict=False):
        assert next_entered >= left_at, "two holders of one conversation's lock at once"
    assert store(redis_server).now_serving(conversation) is None  # all cleaned up


def test_an_abandoned_ticket_stops_blocking_after_its_lifetime(redis_server: RedisServer):
    conversation = f"c-{uuid.uuid4()}"
    one = store(redis_server)
    one.issue_ticket(conversation, lock_lifetime=0.3)  # a worker killed while holding it

    async def next_message() -> float:
        started = time.monotonic()
        async with one.lock(conversation):
            return time.monotonic() - started

    waited = asyncio.run(next_message())
    assert 0.2 < waited < 5


def test_a_ticket_that_expires_while_waiting_raises_lock_error(redis_server: RedisServer):
    conversation = f"c-{uuid.uuid4()}"
    one = store(redis_server)
    one.issue_ticket(conversation, lock_lifetime=30)  # holds the conversation
    mine = one.issue_ticket(conversation, lock_lifetime=0.2)
    with pytest.raises(LockError, match="expired"):
        asyncio.run(one._acquire_lock(conversation, mine, 0.05))


def test_one_worker_handles_at_most_max_concurrent_messages_in_arrival_order(
    redis_server: RedisServer,
):
    config = EndpointConfig.from_dict(
        {"type": "rasa_llm.server.concurrent_redis_lock_store.ConcurrentRedisLockStore",
         "url": redis_server.host, "port": redis_server.port, "key_prefix": "test",
         "max_concurrent_messages": 2}
    )  # fmt: skip
    one = ConcurrentRedisLockStore(endpoint_config=config)
    inside: List[int] = []
    most = 0
    entered: List[int] = []

    async def message(index: int) -> None:
        nonlocal most
        # Different conversations: only the cap can make them wait.
        async with one.lock(f"c-{uuid.uuid4()}"):
            entered.append(index)
            inside.append(index)
            most = max(most, len(inside))
            await asyncio.sleep(0.05)
            inside.remove(index)

    async def all_at_once() -> None:
        await asyncio.gather(*(message(i) for i in range(6)))

    asyncio.run(all_at_once())
    assert most == 2
    assert entered == list(range(6))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_a_bad_cap_is_refused_with_the_fix(redis_server: RedisServer, bad: object):
    from rasa_llm.server.concurrent_redis_lock_store import ConcurrentRedisLockStoreError

    config = EndpointConfig.from_dict(
        {"type": "x", "url": redis_server.host, "port": redis_server.port,
         "max_concurrent_messages": bad}
    )  # fmt: skip
    with pytest.raises(ConcurrentRedisLockStoreError, match="whole number of at least 1"):
        ConcurrentRedisLockStore(endpoint_config=config)
