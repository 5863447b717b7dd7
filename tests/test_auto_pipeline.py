"""AutoPipeline against a real Redis: what concurrent requests send in one event-loop
turn goes as one pipeline, and each caller still gets its own answer or error."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from walletgate.storage.auto_pipeline import AutoPipeline


async def test_commands_of_one_turn_share_one_pipeline(redis: aioredis.Redis) -> None:
    auto = AutoPipeline(redis)
    answers = await asyncio.gather(*(auto.execute("INCRBY", "n", i) for i in range(1, 101)))
    assert auto.batches_sent == 1
    # Sent in order on one connection: each INCRBY saw every earlier one.
    assert answers == [i * (i + 1) // 2 for i in range(1, 101)]
    assert int(await redis.get("n")) == 5050


async def test_a_lone_command_is_sent_at_once_and_large_turns_are_split(
    redis: aioredis.Redis,
) -> None:
    auto = AutoPipeline(redis, max_batch=10)
    assert await auto.execute("SET", "k", "v") is True
    assert auto.batches_sent == 1
    await asyncio.gather(*(auto.execute("INCR", "c") for _ in range(25)))
    assert auto.batches_sent == 1 + 3
    assert int(await redis.get("c")) == 25


async def test_an_error_answer_reaches_only_its_own_caller(redis: aioredis.Redis) -> None:
    auto = AutoPipeline(redis)
    await redis.set("text", "not a number")
    results = await asyncio.gather(
        auto.execute("INCR", "count"),
        auto.execute("INCR", "text"),
        auto.execute("EVALSHA", "0" * 40, 0),
        auto.execute("INCR", "count"),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[3] == 2
    assert isinstance(results[1], ResponseError)
    assert isinstance(results[2], NoScriptError)
    assert auto.batches_sent == 1


async def test_a_dead_connection_fails_every_caller_of_the_batch() -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    auto = AutoPipeline(dead)
    try:
        results = await asyncio.gather(
            *(auto.execute("GET", f"k{i}") for i in range(5)), return_exceptions=True
        )
    finally:
        await dead.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results


@pytest.mark.parametrize("cancelled", [0, 2])
async def test_a_caller_that_gives_up_does_not_disturb_the_others(
    redis: aioredis.Redis, cancelled: int
) -> None:
    auto = AutoPipeline(redis)
    tasks = [asyncio.ensure_future(auto.execute("INCR", "x")) for _ in range(4)]
    await asyncio.sleep(0)  # queued, not yet answered
    tasks[cancelled].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[cancelled], asyncio.CancelledError)
    # Sent in order all the same: each caller sees the count its own INCR made.
    assert [r for r in results if isinstance(r, int)] == [
        n for n in (1, 2, 3, 4) if n != cancelled + 1
    ]
    assert int(await redis.get("x")) == 4  # the command itself was still sent


async def test_a_deferred_command_rides_the_next_pipeline(redis: aioredis.Redis) -> None:
    auto = AutoPipeline(redis)
    auto.defer("SET", "deferred", "1")
    assert auto.batches_sent == 0  # nobody waits for it: it waits for company
    assert await auto.execute("GET", "deferred") == b"1"  # sent first, in the same pipeline
    assert auto.batches_sent == 1


async def test_a_lone_deferred_command_goes_by_itself_and_failures_are_logged(
    redis: aioredis.Redis,
) -> None:
    auto = AutoPipeline(redis)
    auto.defer("SET", "alone", "1")
    for _ in range(100):  # after DEFER_LINGER, with no other command to ride
        if await redis.get("alone"):
            break
        await asyncio.sleep(0.05)
    assert await redis.get("alone") == b"1" and auto.batches_sent == 1
    await redis.set("text", "not a number")
    auto.defer("INCR", "text")
    await auto.drain()  # what a stopping process does
    assert auto.deferred_failures == 1 and auto.batches_sent == 2
