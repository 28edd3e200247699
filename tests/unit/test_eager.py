"""eager.start: a coroutine's first step taken at once, in the caller, as a task would."""

import asyncio
import contextvars

import pytest

from portcullis.checks import eager

pytestmark = pytest.mark.gateway

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller's")


def others() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def hung(log: list[str], name: str) -> None:
    """Waits for good, and says when it is cancelled."""
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise


def test_a_coroutine_that_does_not_wait_needs_no_task():
    async def quick(v):
        VAR.set("its own")
        return v

    async def broken():
        raise ValueError("broken")

    async def run():
        done = eager.start(quick(7))
        assert done.done() and not others()
        assert await done == 7
        assert VAR.get() == "caller's"          # a copy of the context, as in a task
        failed = eager.start(broken())
        assert failed.done()
        with pytest.raises(ValueError, match="broken"):
            await failed
    asyncio.run(run())


def test_a_coroutine_that_waits_goes_on_in_a_task_of_its_own():
    log = []

    async def slow():
        first = asyncio.current_task()
        await asyncio.sleep(0.01)
        log.append(asyncio.current_task() is not None and asyncio.current_task() is not first)
        return "slow"

    async def run():
        caller = asyncio.current_task()
        future = eager.start(slow())
        assert isinstance(future, asyncio.Task) and asyncio.current_task() is caller
        assert await future == "slow"
    asyncio.run(run())
    assert log == [True]


def test_a_timeout_entered_in_the_first_step_cancels_the_coroutine_not_the_caller():
    async def bounded():
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "not bounded"

    async def run():
        future = eager.start(bounded())
        await asyncio.sleep(0.2)                # the caller is not cancelled
        return await future
    assert asyncio.run(asyncio.wait_for(run(), 5)) == "timed out"


@pytest.mark.parametrize("before_its_first_step", [True, False])
def test_cancelling_the_task_cancels_what_the_coroutine_waits_on(before_its_first_step):
    log = []

    async def waits():
        try:
            await asyncio.gather(hung(log, "child"))
        finally:
            log.append("cleaned up")

    async def run():
        future = eager.start(waits())
        if not before_its_first_step:
            await asyncio.sleep(0.01)
        future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await future
        await asyncio.sleep(0.01)
        return others()
    assert asyncio.run(run()) == set()
    assert log == ["child cancelled", "cleaned up"]


def test_a_task_group_in_the_first_step_belongs_to_the_coroutine():
    async def group():
        async def fail():
            await asyncio.sleep(0.01)
            raise ValueError("child")
        outcome = "not caught"
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(fail())
                await asyncio.sleep(5)
        except* ValueError:
            outcome = "caught"
        return outcome

    async def run():
        future = eager.start(group())
        await asyncio.sleep(0.1)                # the caller is not cancelled
        return await future
    assert asyncio.run(asyncio.wait_for(run(), 5)) == "caught"


def test_a_timeout_is_set_only_for_a_coroutine_that_waits_and_bounds_it():
    log = []

    async def quick():
        return "quick"

    async def run():
        loop = asyncio.get_running_loop()
        timers = len(loop._scheduled)
        done = eager.start(quick(), 0.05)
        assert done.done() and len(loop._scheduled) == timers   # no timer was set
        future = eager.start(hung(log, "hung"), 0.05)
        with pytest.raises(TimeoutError):
            await future
        return await done
    assert asyncio.run(asyncio.wait_for(run(), 5)) == "quick"
    assert log == ["hung cancelled"]
