"""Process logging: to stderr (the journal under systemd), quiet third-party chatter."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every command at INFO: far too costly and noisy for a gateway.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
