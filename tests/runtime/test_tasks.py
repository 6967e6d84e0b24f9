"""cancel_and_wait: the closing step of every component that owns a task."""

from __future__ import annotations

import asyncio

from runtime.tasks import cancel_and_wait


async def test_cancels_a_running_task_and_waits_for_its_cleanup() -> None:
    cleaned: list[bool] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(True)

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned == [True]


async def test_none_and_finished_tasks_are_fine() -> None:
    await cancel_and_wait(None)

    async def quick() -> int:
        return 1

    task = asyncio.create_task(quick())
    await task
    await cancel_and_wait(task)
    assert task.result() == 1
