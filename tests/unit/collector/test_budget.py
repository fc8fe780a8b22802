"""The ingest budget: events accepted but not yet answered, shared by every stream."""

from __future__ import annotations

import asyncio

import pytest

from collector.intake.server import Budget

pytestmark = pytest.mark.unit


async def settle() -> None:
    for _ in range(5):  # let woken tasks run
        await asyncio.sleep(0)


def test_streams_get_room_in_the_order_they_asked_and_a_big_batch_is_not_starved() -> None:
    async def scenario() -> list[str]:
        budget = Budget(1000)
        order: list[str] = []

        async def take(name: str, n: int) -> None:
            await budget.acquire(n)
            order.append(name)

        await budget.acquire(900)
        tasks = [asyncio.create_task(take("big", 600)), asyncio.create_task(take("small", 50))]
        await settle()
        assert order == []  # "small" fits, but "big" asked first
        budget.release(900)
        await settle()
        assert budget.used == 650
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["big", "small"]


def test_a_batch_larger_than_the_whole_budget_goes_through_alone() -> None:
    async def scenario() -> None:
        budget = Budget(100)
        await budget.acquire(10)
        huge = asyncio.create_task(budget.acquire(500))
        await settle()
        assert not huge.done()
        budget.release(10)
        await asyncio.wait_for(huge, 5)
        assert budget.used == 500

    asyncio.run(scenario())


def test_a_stream_that_goes_away_while_waiting_neither_keeps_room_nor_blocks_others() -> None:
    async def scenario() -> None:
        budget = Budget(100)
        await budget.acquire(100)
        gone = asyncio.create_task(budget.acquire(80))
        waiting = asyncio.create_task(budget.acquire(20))
        await settle()
        gone.cancel()
        await settle()
        budget.release(100)
        await asyncio.wait_for(waiting, 5)
        assert budget.used == 20

        # Granted room, then cancelled before it ran: the room is given back.
        await budget.acquire(80)
        late = asyncio.create_task(budget.acquire(50))
        await settle()
        budget.release(80)  # grants `late` its 50 ...
        late.cancel()  # ... but it goes away before it resumes
        with pytest.raises(asyncio.CancelledError):
            await late
        assert budget.used == 20

    asyncio.run(scenario())
