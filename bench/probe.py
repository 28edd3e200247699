"""Latency probe: times whole SMTP transactions (connect to the 250 for the message).

Two modes, both printing one JSON object (latencies in milliseconds, failures by reply):

- ``--rate R --count N``: open loop, a new transaction every 1/R seconds whether or not
  the earlier ones finished (light-load latency, unaffected by the probe's own waiting);
- ``--sequential``: one transaction after another until SIGTERM (latency seen by one
  more client while smtp-source loads the server).

    python -m bench.probe --target 127.0.0.1:PORT --rate 50 --count 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

MESSAGE = (b"From: probe@bench.test\r\nTo: bob@example.com\r\nSubject: latency probe\r\n"
           b"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%d.probe@bench.test>\r\n"
           b"\r\n" + b"The quick brown fox jumps over the lazy dog.\r\n" * 20 + b".\r\n")


async def reply(reader: asyncio.StreamReader) -> bytes:
    """Read one (possibly multi-line) SMTP reply; return its last line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


async def transaction(host: str, port: int, sender: str, recipient: str, serial: int
                      ) -> tuple[float, str]:
    """Return (milliseconds, '') on success or (ms, the refusing reply)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        steps = [None, b"EHLO probe.bench.test\r\n", f"MAIL FROM:<{sender}>\r\n".encode(),
                 f"RCPT TO:<{recipient}>\r\n".encode(), b"DATA\r\n", MESSAGE % serial]
        for command in steps:
            if command is not None:
                writer.write(command)
            line = await reply(reader)
            if line[:1] not in (b"2", b"3"):
                return (time.perf_counter() - start) * 1000, line.decode(errors="replace")[:3]
        elapsed = (time.perf_counter() - start) * 1000
        writer.write(b"QUIT\r\n")
        return elapsed, ""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def run(args: argparse.Namespace) -> dict:
    host, _, port_text = args.target.rpartition(":")
    port = int(port_text)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def one(serial: int) -> None:
        try:
            ms, failure = await asyncio.wait_for(
                transaction(host, port, args.sender, args.recipient, serial), 120)
        except (OSError, TimeoutError, ConnectionError) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            return
        if failure:
            failures[failure] = failures.get(failure, 0) + 1
        else:
            latencies.append(ms)

    if args.sequential:
        serial = 0
        while not stop.is_set():
            serial += 1
            await one(serial)
            if serial == 1:
                # The caller starts its load once the probe is warm (imports, first connect).
                print("ready", file=sys.stderr, flush=True)
    else:
        tasks = []
        begin = time.perf_counter()
        for serial in range(args.count):
            delay = begin + serial / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(serial)))
        await asyncio.gather(*tasks)
    return {"latencies_ms": latencies, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--sender", default="probe@bench.test")
    parser.add_argument("--recipient", default="bob@example.com")
    parser.add_argument("--rate", type=float, default=50.0, help="transactions per second")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sequential", action="store_true", help="until SIGTERM")
    result = asyncio.run(run(parser.parse_args()))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
