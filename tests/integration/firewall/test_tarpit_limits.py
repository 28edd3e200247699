"""The tarpit's own limits, on loopback: a total cap, and held connections let go in time."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
import time

import pytest

from portcullis.firewall.tarpit import Tarpit
from tests.support.gateway import free_port

pytestmark = pytest.mark.firewall


@pytest.fixture
def running():
    tarpits = []

    def start(**kwargs) -> Tarpit:
        tarpit = Tarpit(free_port(), hosts=("127.0.0.1",), **kwargs)
        tarpit.open()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(tarpit.serve(),),
                                  daemon=True)
        thread.start()
        tarpits.append((tarpit, loop, thread))
        return tarpit

    yield start
    for tarpit, loop, thread in tarpits:
        loop.call_soon_threadsafe(tarpit.stop)
        thread.join(10)
        loop.close()


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """True once the tarpit has closed or reset the connection (within ``wait`` s)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.1)[0]:
            try:
                if sock.recv(4096, socket.MSG_DONTWAIT) == b"":
                    return True
            except BlockingIOError:
                continue
            except OSError:
                return True
    return False


def test_total_cap_resets_connections_beyond_it(running):
    tarpit = running(per_source=10, max_connections=2, trickle_seconds=0.1)
    socks = [socket.create_connection(("127.0.0.1", tarpit.port)) for _ in range(3)]
    try:
        assert closed_by_peer(socks[2], 5)
        assert not closed_by_peer(socks[0], 0.5)
        assert not closed_by_peer(socks[1], 0.1)
        assert tarpit.stats.refused_total == 1
    finally:
        for sock in socks:
            sock.close()


def test_held_connection_is_let_go_after_the_hold_time(running):
    tarpit = running(per_source=2, trickle_seconds=0.1, hold_seconds=0.5)
    with socket.create_connection(("127.0.0.1", tarpit.port)) as sock:
        assert closed_by_peer(sock, 10)
    # Its slot is free again: the per-source count went back down.
    wait_until(lambda: not tarpit.per_source_count)


def test_client_that_hangs_up_frees_its_slot(running):
    tarpit = running(per_source=1, trickle_seconds=0.1)
    first = socket.create_connection(("127.0.0.1", tarpit.port))
    wait_until(lambda: tarpit.stats.accepted == 1)
    first.close()
    wait_until(lambda: not tarpit.per_source_count)   # a trickle round noticed the close
    with socket.create_connection(("127.0.0.1", tarpit.port)) as second:
        assert not closed_by_peer(second, 0.5)


def tarpit_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "portcullis.tarpit" and record.levelno >= logging.INFO]


def test_held_connections_are_not_logged_a_line_each(running, caplog):
    """A line per held connection let a scanner with many addresses write hundreds a
    second to the journal (2,048 slots, freed every trickle round), which then rotated
    the appliance's other messages away."""
    caplog.set_level(logging.INFO, logger="portcullis.tarpit")
    tarpit = running(per_source=30, trickle_seconds=0.1)
    socks = [socket.create_connection(("127.0.0.1", tarpit.port)) for _ in range(20)]
    try:
        wait_until(lambda: tarpit.stats.accepted == 20)
        time.sleep(0.3)
        assert len(tarpit_lines(caplog)) <= 1, tarpit_lines(caplog)   # "listening on"
    finally:
        for sock in socks:
            sock.close()


def test_what_the_tarpit_took_and_refused_is_summed_up(running, caplog):
    caplog.set_level(logging.INFO, logger="portcullis.tarpit")
    tarpit = running(per_source=2, trickle_seconds=0.1, report_seconds=0.3)
    socks = [socket.create_connection(("127.0.0.1", tarpit.port)) for _ in range(3)]
    try:
        wait_until(lambda: any("holding 2 connections from 1 sources" in line
                               for line in tarpit_lines(caplog)))
        summary = next(line for line in tarpit_lines(caplog) if "holding 2" in line)
        assert "2 taken, 1 refused over the per-source cap, 0 over the total cap" in summary
        time.sleep(1)     # nothing changed since: no further lines
        assert len([line for line in tarpit_lines(caplog) if "holding" in line]) == 1
    finally:
        for sock in socks:
            sock.close()
