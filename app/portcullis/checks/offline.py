"""Judging a message file by its content alone: what ``portcullis score`` and
``portcullis eval`` run.  Only checks marked ``offline`` take part (no network, no
session), through the same ``run_checks`` and ``decide`` as the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from portcullis.checks import Context, Stage, build_checks
from portcullis.policy import Decision, Thresholds, decide

if TYPE_CHECKING:
    from portcullis.services import Services


class ContentScorer:
    def __init__(self, services: Services, thresholds: Thresholds) -> None:
        from portcullis.smtp.handler import run_checks  # the gateway's own runner

        self._run_checks = run_checks
        self.checks = [c for c in build_checks(services)
                       if c.offline and c.stage is Stage.DATA]
        self.thresholds = thresholds
        self._loop = asyncio.new_event_loop()

    def score(self, content: bytes) -> Decision:
        """The decision content checks alone give these raw message bytes."""
        from portcullis.bayes.engine import strip_envelope_line
        from portcullis.smtp.hygiene import SmugglingAttempt, normalise_line_endings

        content = strip_envelope_line(content)
        with contextlib.suppress(SmugglingAttempt):
            content = normalise_line_endings(content)
        ctx = Context(client_ip="", content=content)
        symbols = self._loop.run_until_complete(self._run_checks(self.checks, ctx))
        return decide(symbols, self.thresholds)

    def close(self) -> None:
        self._loop.close()
