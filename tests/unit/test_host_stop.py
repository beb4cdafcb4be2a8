"""A station agent stops even when one of its tasks loses a cancellation (device_agents/host/host.py
`_cancelled`): on Python 3.11 `asyncio.wait_for`, which aiomqtt's connect, subscribe and publish use,
drops a cancellation that lands as the awaited call completes, and the MQTT link then waited for
messages forever; an agent stopped in its first second hung (found as a test teardown that never
ended)."""

from __future__ import annotations

import asyncio

from device_agents.host.host import _cancelled


async def test_a_task_that_swallows_its_first_cancellation_still_ends() -> None:
    swallowed = asyncio.Event()

    async def link() -> None:
        try:
            await asyncio.sleep(3600)  # connecting
        except asyncio.CancelledError:
            swallowed.set()  # what the wait_for race does: the cancellation is gone
        await asyncio.Event().wait()  # then waiting for messages, forever

    task = asyncio.create_task(link())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(_cancelled(task))
    done, _ = await asyncio.wait({stopping}, timeout=5)  # (wait_for would cancel it: a 2nd cancel)
    try:
        assert done, "the agent's stop hung on a task that lost its cancellation"
        assert swallowed.is_set() and task.cancelled()
    finally:
        stopping.cancel()
        task.cancel()


async def test_a_task_that_failed_earlier_is_stopped_without_raising() -> None:
    async def broken() -> None:
        raise RuntimeError("the broker went away")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await _cancelled(task)  # the agent's stop goes on to its role and store
    assert task.done() and not task.cancelled()
