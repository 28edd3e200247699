"""The supervisor of several workers: it keeps the listening sockets, replaces a worker
that dies, and passes a stop on to every worker, whenever the stop comes.

The signal tests run the gateway under a wrapper whose ``os.fork`` sends SIGTERM at the
one moment a race would need: right after a chosen fork, in the supervisor (before it has
noted the new worker) or in the new worker (before its event loop handles signals).  The
same wrapper can make every worker from a chosen fork on die at once, as a worker that
cannot start would, or make a chosen fork fail as the kernel's does when it is out of
processes or memory."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.gateway import PORTCULLIS, Gateway

pytestmark = pytest.mark.reliability

# argv: SIDE ("supervisor" or "worker": SIGTERM there after fork N; "crash": each worker
# from fork N on exits at once; "fail": fork N fails with EAGAIN), N, PIDS (file for the
# forked pids and the monotonic time of each fork), then the gateway's command line
# (ignored: the wrapper runs the gateway).
FORK_WRAPPER = '''
import errno, os, runpy, signal, sys, time
side, nth, pids = sys.argv[1], int(sys.argv[2]), sys.argv[3]
forks = 0
real_fork = os.fork

def fork():
    global forks
    forks += 1
    if side == "fail" and forks == nth:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    pid = real_fork()
    if pid:
        with open(pids, "a") as out:
            out.write(f"{pid} {time.monotonic()}\\n")
    if side == "crash":
        if pid == 0 and forks >= nth:
            os._exit(1)
    elif forks == nth and (pid != 0) == (side == "supervisor"):
        os.kill(os.getpid(), signal.SIGTERM)
    return pid

os.fork = fork
sys.argv = ["portcullis", "serve"]
runpy.run_module("portcullis", run_name="__main__")
'''


@contextlib.contextmanager
def wrapped_forks(tmp_path: Path, side: str, nth: int) -> Iterator[tuple[Gateway, Path]]:
    """A two-worker gateway (not started) under FORK_WRAPPER, and the file the forks are
    written to; stopped at the end, with any process it forked that is left."""
    wrapper, pids = tmp_path / "fork_wrapper.py", tmp_path / "forked"
    wrapper.write_text(FORK_WRAPPER)
    gw = Gateway(tmp_path / "gw", settings="workers = 2\n")
    gw.command_prefix = [sys.executable, str(wrapper), side, str(nth), str(pids)]
    try:
        yield gw, pids
    finally:
        gw.stop()
        for pid in forked(pids):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead, merely not yet reaped (its parent died, say).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def forks(pids: Path) -> list[tuple[int, float]]:
    """(pid, monotonic time) of each fork so far."""
    lines = pids.read_text().splitlines() if pids.exists() else []
    return [(int(pid), float(when)) for pid, when in (line.split() for line in lines)]


def forked(pids: Path) -> list[int]:
    return [pid for pid, _ in forks(pids)]


def wait_for_forks(pids: Path, count: int, timeout: float = 30) -> list[tuple[int, float]]:
    """The forks so far, once there are `count` of them or at the timeout."""
    deadline = time.monotonic() + timeout
    while len(forks(pids)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return forks(pids)


def start_and_kill_the_first_worker(gw: Gateway) -> list[int]:
    """Start the two-worker gateway and SIGKILL its first worker; the two workers' pids."""
    gw.start()
    workers = [int(pid) for pid in gw.worker_pids(2)]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    return workers


def wait_until_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def test_a_stop_while_the_workers_are_forked_stops_them_all(tmp_path):
    """SIGTERM as the supervisor starts its workers: it exits 0 and leaves none behind
    (it had not handled SIGTERM yet, died of it, and left the workers serving)."""
    with wrapped_forks(tmp_path, "supervisor", 2) as (gw, pids):
        gw.process = subprocess.Popen([*gw.command_prefix, "serve"], env=gw.env,
                                      stdout=subprocess.DEVNULL,
                                      stderr=gw.stderr_path.open("ab"))
        assert gw.process.wait(30) == 0, gw.stderr()
        assert len(forked(pids)) == 2
        assert wait_until_gone(forked(pids)) == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.port), timeout=5).close()


def test_a_stop_just_after_a_worker_is_replaced_reaches_the_new_worker(tmp_path):
    """SIGTERM right after the supervisor forks a dead worker's replacement, before it
    has noted the new worker: the stop reaches that worker too (it was passed by, and
    the supervisor waited for it for ever)."""
    with wrapped_forks(tmp_path, "supervisor", 3) as (gw, pids):
        start_and_kill_the_first_worker(gw)
        assert gw.process.wait(30) == 0, gw.stderr()
        assert len(forked(pids)) == 3
        assert wait_until_gone(forked(pids)) == []


def test_a_signal_for_a_worker_still_starting_touches_no_other_worker(tmp_path):
    """A new worker told to stop before its event loop handles signals stops alone (with
    the supervisor's handler inherited over the fork, it closed every listening socket
    and sent SIGTERM to its siblings); the supervisor replaces it, and stops cleanly."""
    with wrapped_forks(tmp_path, "worker", 3) as (gw, pids):
        workers = start_and_kill_the_first_worker(gw)
        # The replacement (fork 3) stops at once, and its own replacement (fork 4) stays.
        wait_for_forks(pids, 4)
        time.sleep(1)
        assert len(forked(pids)) == 4
        assert sorted(int(pid) for pid in gw.worker_pids(2)) == sorted(
            [workers[1], forked(pids)[3]])
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as conn:
            assert conn.recv(100).startswith(b"220")
        assert gw.stop(signal.SIGTERM) == 0
        assert not re.search(r"worker \d+ failed", gw.stderr())


def test_connections_queued_for_a_worker_that_dies_wait_for_its_replacement(tmp_path):
    """Each worker's listening socket belongs to the supervisor (as Postfix's master keeps
    its services' sockets): connections the kernel queued for a worker that is killed
    wait for its replacement instead of being reset."""
    # The queued clients come all at once from one address: no per-client limit here.
    gw = Gateway(tmp_path / "gw", settings="workers = 2\nmax_sessions_per_ip = 1000\n").start()

    def banner() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=60) as conn:
                return conn.recv(100)[:3]
        except OSError as exc:
            return repr(exc).encode()

    try:
        workers = [int(p) for p in gw.worker_pids(2)]
        assert len(workers) == 2
        # Stopped, the worker accepts nothing: the kernel queues about half of the
        # connections below for it (SO_REUSEPORT), and it holds no session when killed.
        subprocess.run(["kill", "-STOP", str(workers[0])], check=True)
        with ThreadPoolExecutor(40) as pool:
            replies = [pool.submit(banner) for _ in range(40)]
            time.sleep(1)
            subprocess.run(["kill", "-KILL", str(workers[0])], check=True)
            answers = [reply.result() for reply in replies]
        assert answers == [b"220"] * 40
        replaced = gw.worker_pids(2)
        assert len(replaced) == 2 and str(workers[0]) not in replaced
        assert gw.stop(signal.SIGTERM) == 0
    finally:
        gw.stop()


def test_a_stop_while_a_dead_worker_awaits_its_restart_starts_no_worker(tmp_path):
    """SIGTERM in the supervisor's pause before it restarts a dead worker: the stop is
    clean (status 0), and no worker is started on the listening sockets the stop closed
    (such a worker failed at once, and the stop reported a failure)."""
    gw = Gateway(tmp_path / "gw", settings="workers = 2\n")
    try:
        start_and_kill_the_first_worker(gw)
        # The supervisor waits a second before the restart; the stop comes within it.
        time.sleep(0.3)
        assert gw.stop(signal.SIGTERM) == 0
        assert not re.search(r"worker \d+ failed", gw.stderr())
    finally:
        gw.stop()


def test_a_store_that_cannot_be_opened_stops_the_start_before_any_worker(tmp_path):
    """The supervisor opens the store first: one that cannot be opened ends the start with
    a clear error (for systemd to see), instead of workers failing on it and being
    restarted every second for ever."""
    gw = Gateway(tmp_path / "gw", settings="workers = 2\n")
    (gw.state_dir / "portcullis.db").mkdir()          # no database can be opened there
    result = subprocess.run([*PORTCULLIS, "serve"], env=gw.env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "cannot open store" in result.stderr
    assert "worker" not in result.stderr


def test_a_worker_that_keeps_dying_is_restarted_ever_more_slowly(tmp_path):
    """Each replacement that dies at once doubles the pause before the next (1, 2, 4 s...,
    as Postfix's master throttles a failing service) instead of a fork every second for
    ever; the other worker runs on, and a stop in a long pause is prompt."""
    with wrapped_forks(tmp_path, "crash", 3) as (gw, pids):
        workers = start_and_kill_the_first_worker(gw)
        times = [when for _, when in wait_for_forks(pids, 5)]
        assert len(times) == 5, gw.stderr()
        # Forks 3, 4 and 5 replace worker 0; each of them exits at once.
        assert 1.7 < times[3] - times[2] < 3.5, times
        assert 3.5 < times[4] - times[3] < 6.5, times
        assert str(workers[1]) in gw.worker_pids()
        # The next replacement is 8 s away: the stop does not wait for it.
        stopped = time.monotonic()
        assert gw.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 5
        assert len(forks(pids)) == 5
        assert re.search(r"worker 0 exited with status 1 after 0 s; restarting it in 8 s",
                         gw.stderr()), gw.stderr()


def test_a_worker_that_cannot_be_forked_is_tried_again_and_the_others_serve_on(tmp_path):
    """The fork of a dead worker's replacement fails (out of processes or memory, as when
    the OOM killer took the worker): the supervisor tries again after a pause, as
    Postfix's master does, and the other worker serves meanwhile (the exception ended
    the supervisor, and with it every worker: the whole gateway stopped)."""
    with wrapped_forks(tmp_path, "fail", 3) as (gw, pids):
        workers = start_and_kill_the_first_worker(gw)
        # Fork 3 failed; the next try is the third fork written down.
        assert len(wait_for_forks(pids, 3)) == 3, gw.stderr()
        assert gw.process.poll() is None, gw.stderr()
        assert sorted(int(pid) for pid in gw.worker_pids(2)) == sorted(
            [workers[1], forked(pids)[2]])
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as conn:
            assert conn.recv(100).startswith(b"220")
        assert re.search(r"worker 0 could not be started \(Resource temporarily"
                         r" unavailable\); trying again in 2 s", gw.stderr()), gw.stderr()
        assert gw.stop(signal.SIGTERM) == 0


def test_connections_for_a_worker_that_keeps_dying_are_told_to_try_later(tmp_path):
    """While a worker that keeps dying waits for its next restart, the connections the
    kernel hands its socket get 421 from the supervisor at once (they waited, unanswered,
    for a worker that might not come for a minute); the other worker's get 220."""
    with wrapped_forks(tmp_path, "crash", 3) as (gw, pids):
        start_and_kill_the_first_worker(gw)
        wait_for_forks(pids, 3)
        time.sleep(0.5)                  # fork 3 has died: the next start is 2 s away

        def banner() -> bytes:
            try:
                with socket.create_connection(("127.0.0.1", gw.port), timeout=3) as conn:
                    return conn.recv(100)[:3]
            except OSError as exc:
                return repr(exc).encode()

        with ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(lambda _: banner(), range(30)))
        assert set(answers) == {b"220", b"421"}, answers
        assert re.search(r"restarting it in 2 s \(its connections get 421 until then\)",
                         gw.stderr()), gw.stderr()
        assert gw.stop(signal.SIGTERM) == 0


def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    """The supervisor killed outright (SIGKILL, the OOM killer): its workers stop too,
    as Postfix's children leave when the master goes, instead of serving on with no one
    to replace them or pass on a stop, holding the port against the next start."""
    gw = Gateway(tmp_path / "gw", settings="workers = 2\n").start()
    workers = [int(pid) for pid in gw.worker_pids(2)]
    try:
        assert len(workers) == 2
        gw.kill()
        assert wait_until_gone(workers, timeout=10) == []
        assert gw.stderr().count("the supervisor is gone; stopping") == 2, gw.stderr()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.port), timeout=5).close()
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
