"""A progress bar on stderr for long commands (train, eval): redrawn in place on a
terminal, a line per tenth of the work otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    WIDTH = 30

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_tenth = -1

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        else:
            tenth = self.done * 10 // self.total if self.total else 10
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def say(self, text: str) -> None:
        """Print a message line without garbling the bar."""
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        if self.tty:
            self.stream.write(self._line())
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + self._line() + "\n")
            self.stream.flush()

    def _line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.WIDTH * min(fraction, 1.0))
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        return (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.done}/{self.total} ({rate:.0f}/s)")
