"""One line per decision, in the format administrators know from the FAQ:

    2007/01/04 04:17:18 - Rejected Virus: Worm.Bagle-zippwd-26 72.226.65.103 "Xyip" rcpt subject

written to the log file and to the process log (stderr, which systemd puts in the journal).
"""

from __future__ import annotations

import io
import logging
import os
import time
import typing
from pathlib import Path

from portcullis.printable import printable

log = logging.getLogger("portcullis.decisions")

# Every message's sender, recipients and subject: the gateway writes the file, the
# services' group reads it (the web UI's log page), other users never (the process umask,
# 022 under ``make run``, let them); the umask may take more away.
FILE_MODE = 0o640


def _clean(text: str, limit: int = 200) -> str:
    # Subjects and HELO names are hostile: one line per decision, whatever they contain.
    return printable(text)[:limit]


def format_line(when: float, label: str, client_ip: str, helo: str, recipients: list[str],
                subject: str) -> str:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(when))
    rcpt = ",".join(recipients) or "-"
    return (f"{stamp} - {_clean(label)} {client_ip} \"{_clean(helo, 80)}\" "
            f"{_clean(rcpt, 400)} {_clean(subject) or '-'}")


class DecisionLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None

    def write(self, label: str, client_ip: str, helo: str, recipients: list[str],
              subject: str, when: float | None = None) -> str:
        line = format_line(time.time() if when is None else when, label, client_ip, helo,
                           recipients, subject)
        log.info("%s", line)
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write(line + "\n")
        except OSError as exc:
            # A full disk must not stop mail; the journal still has the line.
            log.warning("cannot write decision log %s: %s", self.path, exc)
            self._file = None
        return line

    def _open(self) -> typing.TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT
                                   | os.O_CLOEXEC, FILE_MODE), "a+b")
        # A line cut short (a full disk, a crash mid-write) is ended first: the next
        # decision appended to it would read as part of it.
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        return io.TextIOWrapper(handle, encoding="utf-8", line_buffering=True)

    def reopen(self) -> None:
        """After log rotation (SIGHUP)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def tail(path: Path, lines: int = 200, contains: str = "") -> list[str]:
    """The last lines of the decision log, optionally only those containing a text."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 4 * 1024 * 1024))
            # Lines end at "\n" only, as they were written: splitlines() would also
            # break at characters an older release let through from a subject.
            data = handle.read().decode("utf-8", "replace").split("\n")
            if data and not data[-1]:
                data.pop()
    except FileNotFoundError:
        return []
    if contains:
        data = [line for line in data if contains.lower() in line.lower()]
    return data[-lines:]
