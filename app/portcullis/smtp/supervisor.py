"""The supervisor: one process that binds the listening sockets, forks a worker per core,
replaces a worker that dies, and passes stops and log reopens on to every worker.

Like Postfix's master, it keeps the sockets and holds no mail: a worker that dies takes
only its own sessions with it, connections the kernel queued for it wait for its
replacement, and a worker that keeps dying is restarted ever more slowly.  Meanwhile the
connections the kernel hands that worker's sockets are told to try later (421) by the
supervisor itself, instead of waiting up to a minute for a worker that may not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import time
import typing
from collections.abc import Iterator

from portcullis.config import Config
from portcullis.smtp.server import SUPERVISOR_SIGNALS, bind, run_worker, tls_context
from portcullis.store import open_store

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0            # see RestartBackoff
RESTART_DELAY_MAX = 60.0       # Postfix's service_throttle_time
STABLE_AFTER = 60.0
UNAVAILABLE = b"421 4.3.2 Service temporarily unavailable, try again later\r\n"


def serve(config: Config) -> int:
    """Run the gateway until SIGTERM; with several workers, supervise them."""
    tls_context(config.smtp)        # a bad certificate stops the start, before any fork
    # So does a store that cannot be opened (StoreError): every worker would fail on it.
    # Migrated here, once, not by racing workers.
    open_store(config.store.dir, config.store.url).close()
    workers = max(1, config.smtp.workers)
    # Each worker's sockets are bound here and kept open by the supervisor: connections
    # the kernel has queued for a worker that dies wait for its replacement instead of
    # being reset.  An address that cannot be bound stops the start (ListenError), before
    # any fork.
    listeners = [[bind(address, reuse_port=workers > 1) for address in config.smtp.listen]
                 for _ in range(workers)]
    if workers == 1:
        asyncio.run(run_worker(config, 0, 1, listeners[0]))
        return 0
    return Supervisor(config, listeners).run()


class Supervisor:
    """Forks one worker per list of ``listeners`` and keeps them running until a stop."""

    def __init__(self, config: Config, listeners: list[list[socket.socket]]) -> None:
        self.config = config
        self.listeners = listeners
        self.children: dict[int, tuple[int, float]] = {}      # pid: (index, started)
        self.stopping = False
        self.status = 0
        self.backoff = RestartBackoff()
        self.due: dict[int, float] = {}   # a dead worker's index: when its replacement starts
        # Dead workers restarted after a longer pause than the first (they keep dying):
        # their connections are answered 421 here until the replacement starts.
        self.turning_away: set[int] = set()
        # Every signal (a worker's exit, a stop) writes a byte here, waking the wait in
        # run(), as Postfix's master learns of its children's exits through a pipe.
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Only the supervisor holds the writing end: when it dies (SIGKILL, the OOM
        # killer), the workers read end of file and stop, as Postfix's children leave
        # when the master's status pipe closes, rather than serve on unsupervised.
        self.life_r, self.life_w = os.pipe2(os.O_CLOEXEC)

    def run(self) -> int:
        """Start the workers, then replace each that dies until a stop; 1 if a worker
        failed while stopping."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)  # SIG_DFL writes none
        for signum in SUPERVISOR_SIGNALS:
            signal.signal(signum, self._forward)
        for index in range(len(self.listeners)):
            if not self.stopping:      # a stop during the start closed the sockets
                self._spawn(index)
        while self.children or (self.due and not self.stopping):
            self._wait()
            self._reap()
            # A stop has closed the listening sockets: a worker started now would fail
            # on them (and would never have been told to stop).
            if self.stopping:
                self.due.clear()
            for index, when in list(self.due.items()):
                if when <= time.monotonic():
                    del self.due[index]
                    self._spawn(index)
        return self.status

    def _wait(self) -> None:
        """Until a signal comes or the next replacement is due; turns away what comes
        meanwhile for a worker that keeps dying."""
        due = min(self.due.values(), default=None)
        sockets = [] if self.stopping else [
            sock for index in self.turning_away for sock in self.listeners[index]]
        try:
            readable, _, _ = select.select(
                [self.wake_r, *sockets], [], [],
                None if due is None else max(0.0, due - time.monotonic()))
        except OSError:          # a stop closed the sockets while the wait went on
            readable = [self.wake_r]
        for sock in readable:
            if sock is not self.wake_r:
                _turn_away(sock)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass

    def _reap(self) -> None:
        for pid, code in _exited_children():
            index, started = self.children.pop(pid)
            if self.stopping:
                self.status = self.status or int(code != 0)
                continue
            uptime = time.monotonic() - started
            self._restart_later(index, uptime, f"{_exit_reason(code)} after {uptime:.0f} s;"
                                               " restarting it")

    def _restart_later(self, index: int, uptime: float, what: str) -> None:
        """Start worker ``index`` again after the back-off's pause; log ``what`` befell it."""
        delay = self.backoff.delay(index, uptime)
        turn_away = delay > RESTART_DELAY
        log.error("worker %d %s in %.0f s%s", index, what, delay,
                  " (its connections get 421 until then)" if turn_away else "")
        self.due[index] = time.monotonic() + delay
        if turn_away:
            self.turning_away.add(index)

    def _forward(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:           # SIGHUP: the workers reopen their logs
            self.stopping = True
            # New clients are refused by the OS from now on, as with one worker.
            for sockets in self.listeners:
                for sock in sockets:
                    sock.close()
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _spawn(self, index: int) -> None:
        self.turning_away.discard(index)
        signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        try:
            try:
                pid = os.fork()
            except OSError as exc:
                # Out of processes or memory (EAGAIN, ENOMEM), as when the OOM killer
                # took the worker: tried again later, as Postfix's master does, while
                # the other workers serve on; raised, it ended the supervisor and them.
                self._restart_later(index, 0.0, f"could not be started ({exc.strerror});"
                                                " trying again")
                return
            if pid == 0:
                self._work(index)
            self.children[pid] = index, time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)

    def _work(self, index: int) -> typing.NoReturn:
        """The new worker's life, in the forked child: it keeps only its own sockets."""
        for signum in SUPERVISOR_SIGNALS:     # still blocked: see SUPERVISOR_SIGNALS
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.close(self.life_w)
        for other, sockets in enumerate(self.listeners):
            if other != index:
                for sock in sockets:
                    sock.close()
        code = 0
        try:
            asyncio.run(run_worker(self.config, index, len(self.listeners),
                                   self.listeners[index], lifeline=self.life_r))
        except BaseException:
            log.exception("worker %d failed", index)
            code = 1
        os._exit(code)


class RestartBackoff:
    """When to replace a worker that exited: RESTART_DELAY after its first exit, twice as
    long after each replacement that dies within STABLE_AFTER of its start (up to
    RESTART_DELAY_MAX), as Postfix's master throttles a service that keeps failing
    instead of forking it again every second for ever."""

    def __init__(self) -> None:
        self._next: dict[int, float] = {}

    def delay(self, index: int, uptime: float) -> float:
        """Seconds to wait before replacing worker ``index``, which ran ``uptime`` s."""
        if uptime >= STABLE_AFTER:
            self._next.pop(index, None)
        delay = self._next.get(index, RESTART_DELAY)
        self._next[index] = min(2 * delay, RESTART_DELAY_MAX)
        return delay


def _turn_away(listener: socket.socket) -> None:
    """Answer 421 to each connection waiting on ``listener``, and close it."""
    while True:
        try:
            conn, _ = listener.accept()
        except ConnectionAbortedError:  # the client left before its turn
            continue
        except OSError:                 # none waiting (EAGAIN), or no fd left for one
            return
        with conn:
            conn.setblocking(False)
            with contextlib.suppress(OSError):   # a full buffer or a reset: it is gone
                conn.send(UNAVAILABLE)


def _exited_children() -> Iterator[tuple[int, int]]:
    """(pid, exit code) of each child that has exited and not been reaped yet; the code
    is negative for a signal, as from ``os.waitstatus_to_exitcode``."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


def _exit_reason(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:             # a real-time signal has no name of its own
        return f"was killed by signal {-code}"
