"""When work leaves the event loop for a worker thread.

A worker thread keeps a long computation (tokenising a large message, unpacking
archives) from holding up every other SMTP session of the process.  The hop is not
free, though: submitting the job, waking the worker, and handing the GIL back and forth
with the loop (every store query and socket call on the loop releases it) cost more than
tokenising or compressing a typical message, and one process gains no parallelism from
it.  So work on a small input runs inline, and only large inputs go to a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Bytes of input up to which work runs inline: a few milliseconds of tokenising or
# compressing at most, less than a thread hop costs the other sessions in GIL hand-overs.
INLINE_BYTES = 64 * 1024


async def offload(size: int, func: Callable[..., T], /, *args: object) -> T:
    """``func(*args)``, inline when its input (``size`` bytes) is small, else in a worker
    thread."""
    if size <= INLINE_BYTES:
        return func(*args)
    return await asyncio.to_thread(func, *args)
