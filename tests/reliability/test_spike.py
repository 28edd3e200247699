"""FAQ "Sizes and Limitations": under a 1,000% traffic spike the appliance must not crash;
excess connections are told to try later; legitimate mail is delayed, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.reliability.conftest import (
    RECIPIENT,
    Ledger,
    aim_sender_at,
    inject,
    make_gateway,
    rss_peak_kib,
    wait_for_log,
)
from tests.support.soak import scaled

pytestmark = pytest.mark.reliability

RSS_BOUND_KIB = 200 * 1024     # far above the gateway's needs; a leak per session breaks it


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed by the gateway")
        if line[3:4] != b"-":
            return line


async def _deliver(port: int, content: bytes, ready: asyncio.Barrier | None,
                   hold: float = 0.0) -> str:
    """One SMTP client: connect, (wait for the whole spike to be connected and, if let in,
    hold the session ``hold`` seconds), send the message; return the reply that decided
    its fate ('421 ...', '250 ...')."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        try:
            greeting = await _reply(reader)
        except ConnectionError:
            greeting = b"closed"
        if ready is not None:
            await ready.wait()           # every client has its greeting: a true spike
        if not greeting.startswith(b"220"):
            return greeting.decode(errors="replace").strip()
        await asyncio.sleep(hold)
        for command in (b"EHLO spike.test\r\n", b"MAIL FROM:<spike@remote.test>\r\n",
                        f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"):
            writer.write(command)
            line = await _reply(reader)
            if line[:1] not in (b"2", b"3"):
                return line.decode(errors="replace").strip()
        writer.write(content + b".\r\n")
        final = await _reply(reader)
        writer.write(b"QUIT\r\n")
        return final.decode(errors="replace").strip()
    finally:
        writer.close()


async def _spike(port: int, ledger: Ledger, clients: int,
                 while_full: Callable[[], object]) -> dict[str, str]:
    """All clients connect at once; those let in hold their sessions a few seconds, during
    which ``while_full`` runs (in a thread); then every client that was turned away or
    deferred retries, as an MTA would, until it gets a 2xx or 5xx."""
    tokens = [ledger.token() for _ in range(clients)]
    ready = asyncio.Barrier(clients + 1)
    spike = asyncio.gather(*(_deliver(port, Ledger.message(t), ready, hold=4) for t in tokens),
                           return_exceptions=True)
    await ready.wait()
    await asyncio.to_thread(while_full)
    first = await spike
    outcome = {t: (r if isinstance(r, str) else f"error {r!r}") for t, r in
               zip(tokens, first, strict=True)}
    first_replies = dict(outcome)
    semaphore = asyncio.Semaphore(4)     # a retrying MTA does not storm again

    async def retry(token: str) -> None:
        async with semaphore:
            try:
                outcome[token] = await _deliver(port, Ledger.message(token), None)
            except (OSError, ConnectionError) as exc:
                outcome[token] = f"error {exc!r}"

    for _round in range(30):
        pending = [t for t, r in outcome.items() if r[:1] not in ("2", "5")]
        if not pending:
            break
        await asyncio.sleep(1)
        await asyncio.gather(*(retry(t) for t in pending))
    for token, reply in outcome.items():
        if reply.startswith("250"):
            ledger.acknowledged.add(token)
    return first_replies


def test_spike_of_ten_times_the_session_limit_loses_nothing(world, tmp_path):
    limit = scaled(10)
    gw = make_gateway(world, tmp_path / "gw",
                      smtp=f"max_sessions = {limit}\nmax_sessions_per_ip = {limit}\n").start()
    try:
        since = aim_sender_at(world, gw)
        ledger = Ledger("spike")
        relayed: list[str] = []
        # Ten times the limit of clients at once; while the admitted ones hold every slot,
        # the real MTA is handed a batch and tries to deliver it.
        first = asyncio.run(_spike(gw.port, ledger, clients=10 * limit, while_full=lambda:
                                   relayed.extend(inject(world, ledger, scaled(20)))))

        turned_away = [r for r in first.values() if r.startswith("421")]
        assert len(turned_away) == 9 * limit, first
        assert all(r.startswith(("250", "421")) for r in first.values()), first
        assert ledger.acknowledged == set(ledger.sent) - set(relayed), \
            "every raw client got its 250 in the end"
        assert gw.process.poll() is None, "the gateway survived the spike"
        assert rss_peak_kib(gw.process.pid) < RSS_BOUND_KIB

        counts = ledger.wait_all(world.internal, timeout=180, flush=world.sending_mta)
        assert not ledger.missing(counts), (ledger.missing(counts),
                                            world.sending_mta.log()[since:][-3000:])
        assert not ledger.duplicated(counts)
        # The relayed batch met the full gateway, was told 421, and arrived by retrying.
        assert wait_for_log(world.sending_mta, "421 4.3.2", since=since, timeout=1)
    finally:
        gw.stop()
