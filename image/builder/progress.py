"""Visible progress: numbered steps with timings, tool output kept in a log file."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class BuildError(Exception):
    """A failure with a message that says what to do about it."""


class Progress:
    def __init__(self, total: int, log_path: Path) -> None:
        self.total = total
        self.number = 0
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("w", encoding="utf-8")
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def step(self, title: str) -> _Step:
        self.number += 1
        return _Step(self, title)

    def info(self, text: str) -> None:
        print(f"    {text}", flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self, argv: Sequence[str], *, show: Callable[[str], bool] | None = None,
            **kwargs: object) -> None:
        """Run a command, its output to the log; lines ``show`` accepts also to the terminal."""
        self.log.write(f"$ {' '.join(str(a) for a in argv)}\n")
        self.log.flush()
        process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace",
                                   **kwargs)  # type: ignore[call-overload]
        tail: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            self.log.write(line)
            tail = [*tail[-39:], line.rstrip()]
            if show is not None and show(line):
                print(f"    {line.rstrip()}", flush=True)
        self.log.flush()
        if process.wait() != 0:
            shown = "\n".join(f"    | {t}" for t in tail)
            raise BuildError(f"{argv[0]} failed (exit {process.returncode}); last lines:\n"
                             f"{shown}\nfull log: {self.log_path}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _Step:
    def __init__(self, progress: Progress, title: str) -> None:
        self.progress = progress
        self.title = title

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        p = self.progress
        print(f"==> [{p.number}/{p.total}] {self.title}", flush=True)
        p.log.write(f"\n==> [{p.number}/{p.total}] {self.title}\n")
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        seconds = time.monotonic() - self.started
        self.progress.timings[self.title] = seconds
        if kind is None:
            print(f"    done in {seconds:.0f} s", flush=True)


def fail(message: str) -> None:
    print(f"make image: {message}", file=sys.stderr)
    raise SystemExit(1)
