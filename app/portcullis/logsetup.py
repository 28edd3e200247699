"""Process logging: to stderr (the journal under systemd), quiet third-party chatter."""

from __future__ import annotations

import logging
import sys

from portcullis.printable import printable


class OneLineFormatter(logging.Formatter):
    """Each record one line, as Postfix logs: a log message may quote what a client sent
    (a HELO name, a next hop's reply), and a line break in it would add a journal entry
    of the client's making.  A traceback after the message keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every command at INFO: far too costly and noisy for a gateway.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
