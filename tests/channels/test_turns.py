"""channels.turns.Turns: one holder per key, first come first served, nothing kept."""

from __future__ import annotations

import asyncio
from typing import List, Tuple

import pytest

from channels.turns import Turns


def test_one_key_takes_turns_in_the_order_asked_and_other_keys_do_not_wait():
    turns = Turns()
    order: List[str] = []

    async def work(key: str, name: str, seconds: float) -> None:
        async with turns.turn(key):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    async def scenario() -> None:
        # The first holder is the slowest: without turns a1 and a2 would end first.
        await asyncio.gather(
            work("a", "a0", 0.1), work("a", "a1", 0.0), work("a", "a2", 0.0), work("b", "b0", 0.0)
        )

    asyncio.run(scenario())
    assert [step for step in order if step.startswith("a")] == [
        "a0 in",
        "a0 out",
        "a1 in",
        "a1 out",
        "a2 in",
        "a2 out",
    ]
    assert order.index("b0 out") < order.index("a0 out"), "another key did not wait"
    assert len(turns) == 0, "no lock is kept once its key is idle"


def test_a_failing_holder_passes_the_turn_on():
    turns = Turns()
    reached: List[str] = []

    async def failing() -> None:
        async with turns.turn("a"):
            raise RuntimeError("the bot crashed")

    async def next_one() -> None:
        async with turns.turn("a"):
            reached.append("next")

    async def scenario() -> Tuple[BaseException | None, ...]:
        return await asyncio.gather(failing(), next_one(), return_exceptions=True)

    first, second = asyncio.run(scenario())
    assert isinstance(first, RuntimeError) and second is None
    assert reached == ["next"] and len(turns) == 0


def test_a_cancelled_waiter_leaves_no_lock_behind():
    turns = Turns()

    async def scenario() -> None:
        holding = asyncio.Event()

        async def hold() -> None:
            async with turns.turn("a"):
                holding.set()
                await asyncio.sleep(0.2)

        async def wait() -> None:
            async with turns.turn("a"):
                pytest.fail("a cancelled waiter must not get the turn")

        holder = asyncio.ensure_future(hold())
        await holding.wait()
        waiter = asyncio.ensure_future(wait())
        await asyncio.sleep(0.01)
        assert len(turns) == 1
        waiter.cancel()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(scenario())
    assert len(turns) == 0
