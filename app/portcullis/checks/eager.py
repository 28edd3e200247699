"""Coroutines started at once, in the caller, the way Python 3.12's eager tasks start.

Most checks, and most parts of a check, finish without ever waiting: the resolver's
cache answers their DNS, the store is local, most mail carries no file to unpack.  A
task apiece for them (what ``ensure_future`` and ``gather`` make) cost more CPU than
their work: creating it, a trip through the event loop to start it, another to report
it done.  ``start`` takes the coroutine's first step right away instead; only if it
waits does it carry on in a task of its own, as though it had been one from the start.
"""

from __future__ import annotations

import asyncio
import contextvars

# Which task asyncio.current_task() names; the event loop's own tasks use them too.
from asyncio.tasks import _enter_task, _leave_task  # type: ignore[attr-defined]
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> asyncio.Future[T]:
    """``asyncio.ensure_future(coro)``, but its first step is taken now: a coroutine that
    finishes without waiting gives a future already done (no task, no loop trip).

    During that step ``asyncio.current_task()`` is a stand-in for the task the coroutine
    carries on in when it waits, so what binds to the current task there (an
    ``asyncio.timeout``) cancels that task, not the caller's.  As in a task, the step
    runs in a copy of the caller's context variables.

    ``timeout``: seconds from now after which the coroutine is cancelled and the future
    raises TimeoutError, as if it ran under ``asyncio.timeout``.  The timer is only set
    if it waits: one that finishes in its first step could not have been interrupted."""
    loop = asyncio.get_running_loop()
    scope: list[asyncio.Timeout] = []
    if timeout is not None:
        deadline = loop.time() + timeout
        coro = _bounded(coro, scope)
    stand_in = _StandIn()
    context = contextvars.copy_context()
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, stand_in)
    future: asyncio.Future[T] = loop.create_future()
    try:
        waits_on = context.run(coro.send, None)
    except StopIteration as finished:
        if stand_in.cancels:     # a task cancelled while it ran ends cancelled (3.11)
            future.cancel(stand_in.cancels[-1])
        else:
            future.set_result(finished.value)
        return future
    except asyncio.CancelledError as exc:
        future.cancel(*exc.args[:1])
        return future
    except Exception as exc:  # noqa: BLE001 - kept in the future, as a task keeps it
        future.set_exception(exc)
        return future
    finally:
        _leave_task(loop, stand_in)
        if caller is not None:
            _enter_task(loop, caller)
    task = loop.create_task(_Resumed(coro, waits_on), context=context)
    stand_in.become(task)
    if scope:
        scope[0].reschedule(deadline)
    return task


async def _bounded(coro: Coroutine[Any, Any, T], scope: list[asyncio.Timeout]) -> T:
    # Entered with no deadline (no timer to set and cancel again); start() sets it once
    # the coroutine waits.
    async with asyncio.timeout(None) as bound:
        scope.append(bound)
        return await coro


class _StandIn:
    """``asyncio.current_task()`` during a first step: what asyncio.timeout and TaskGroup
    ask of their task (cancel, cancelling, uncancel) goes to the task the coroutine
    carries on in; asked before there is one (from within the step), it is kept until
    the task is made."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.cancels: list[Any] = []

    def become(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        for message in self.cancels:
            task.cancel(message)

    def cancel(self, msg: Any = None) -> bool:
        if self.task is not None:
            return self.task.cancel(msg)
        self.cancels.append(msg)
        return True

    def cancelling(self) -> int:
        return self.task.cancelling() if self.task is not None else len(self.cancels)

    def uncancel(self) -> int:
        if self.task is not None:
            return self.task.uncancel()
        if self.cancels:
            self.cancels.pop()
        return len(self.cancels)

    def __getattr__(self, name: str) -> Any:
        if self.task is None:
            raise AttributeError(f"{name}: the task is not made before the first step ends")
        return getattr(self.task, name)


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine that already took its first step, for a task to carry on: the task's
    first step gets what the coroutine waits on, everything after goes to it as is."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waits_on: Any) -> None:
        self._coro = coro
        self._waits_on: list[Any] = [waits_on]
        # What a task's repr and asyncio's warnings name it by.
        self.__qualname__ = getattr(coro, "__qualname__", type(coro).__name__)

    def send(self, value: Any) -> Any:
        if self._waits_on:
            return self._waits_on.pop()
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = typ if val is None else val
        if self._waits_on and isinstance(exc, asyncio.CancelledError):
            # Cancelled before its first step: as a task would, cancel what it waits on
            # (a gather cancels its children) and wake up when that has ended.
            waited = self._waits_on.pop()
            if getattr(waited, "_asyncio_future_blocking", False) \
                    and waited.cancel(*exc.args[:1]):
                return waited
        self._waits_on.clear()
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("a resumed coroutine is run by its task only")
