"""Peak resident memory of a server holding N sessions in the middle of DATA at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bench.servers import memory_kib

HALF_BODY = b"Memory test line, long enough to matter in a buffer somewhere.\r\n" * 500


async def _session(host: str, port: int, serial: int, arrived: asyncio.Event,
                   counter: list[int], total: int, release: asyncio.Event) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async def expect() -> bytes:
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionError("closed")
                if line[3:4] != b"-":
                    return line

        await expect()
        for command in (b"EHLO mem.bench.test\r\n", b"MAIL FROM:<mem@bench.test>\r\n",
                        b"RCPT TO:<bob@example.com>\r\n", b"DATA\r\n"):
            writer.write(command)
            line = await expect()
            if line[:1] not in (b"2", b"3"):
                return line[:3].decode()
        writer.write(b"Subject: memory %d\r\nFrom: mem@bench.test\r\n\r\n" % serial + HALF_BODY)
        await writer.drain()
        counter[0] += 1
        if counter[0] == total:
            arrived.set()
        await release.wait()
        writer.write(HALF_BODY + b".\r\nQUIT\r\n")
        return (await expect())[:3].decode()
    finally:
        writer.close()


async def _hold(address: str, sessions: int, measure: Callable[[], dict]) -> dict:
    host, _, port = address.rpartition(":")
    arrived, release = asyncio.Event(), asyncio.Event()
    counter = [0]
    tasks = [asyncio.ensure_future(asyncio.wait_for(
        _session(host, int(port), i, arrived, counter, sessions, release), 600))
        for i in range(sessions)]
    waiter = asyncio.ensure_future(arrived.wait())
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED, timeout=300)
    await asyncio.sleep(0.5)           # let the server read what was sent
    held = measure()
    release.set()
    replies = await asyncio.gather(*tasks, return_exceptions=True)
    waiter.cancel()
    codes: dict[str, int] = {}
    for reply in replies:
        key = reply if isinstance(reply, str) else type(reply).__name__
        codes[key] = codes.get(key, 0) + 1
    return {"held": held, "replies": codes}


def held_sessions(address: str, sessions: int, worker_pids: Callable[[], list[int]]) -> dict:
    """Open ``sessions`` sessions, each half-way through a 64 KB message, measure memory,
    then finish them; report per-worker current and peak RSS in MiB."""

    def measure() -> dict:
        return {str(pid): memory_kib(pid) for pid in worker_pids()}

    start = time.perf_counter()
    result = asyncio.run(_hold(address, sessions, measure))
    peak = {pid: memory_kib(int(pid)) for pid in result["held"]}
    workers = worker_pids()
    # A worker that is gone by now (crashed and replaced) has no peak to read: say so.
    vanished = [pid for pid in result["held"] if pid not in {str(p) for p in workers}]
    return {
        "sessions": sessions,
        "workers": len(workers),
        "rss_mib_while_held": [round(v["VmRSS"] / 1024, 1) for v in result["held"].values()],
        "peak_rss_mib_per_worker": [round(v["VmHWM"] / 1024, 1) if pid not in vanished
                                    else None for pid, v in peak.items()],
        "workers_gone_after": vanished,
        "replies": result["replies"],
        "seconds": round(time.perf_counter() - start, 2),
    }
