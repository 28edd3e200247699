"""The gateway's check runner: concurrency, timeouts, failures, order."""

import ast
import asyncio
import inspect
import textwrap

import pytest

from portcullis.checks import CHECKS, Context
from portcullis.checks.base import Check
from portcullis.policy import Flag, Symbol, Thresholds, Verdict, decide
from portcullis.smtp.handler import run_checks

pytestmark = pytest.mark.gateway


class Probe(Check):
    """A check that waits ``delay`` seconds (the network) or none (inline), then
    answers ``name`` or raises."""

    def __init__(self, name: str, *, delay: float = 0.0, inline: bool = False,
                 error: bool = False, fail_closed: bool = False, timeout: float = 5.0,
                 log: list[str] | None = None) -> None:
        super().__init__(services=None)  # type: ignore[arg-type]
        self.name, self.delay, self.inline, self.error = name, delay, inline, error
        self.fail_closed, self.timeout = fail_closed, timeout
        self.log = log if log is not None else []

    async def check(self, ctx: Context) -> list[Symbol]:
        self.log.append(f"start {self.name}")
        if not self.inline:
            await asyncio.sleep(self.delay)
        if self.error:
            raise RuntimeError("broken")
        self.log.append(f"end {self.name}")
        return [Symbol(self.name.upper(), 1.0, self.name)]


def names(symbols: list[Symbol]) -> list[str]:
    return [s.name for s in symbols]


def test_symbols_keep_the_order_of_the_checks_and_waits_overlap():
    log: list[str] = []
    checks = [Probe("slow", delay=0.3, log=log), Probe("local", inline=True, log=log),
              Probe("slower", delay=0.4, log=log), Probe("store", inline=True, log=log)]
    symbols = asyncio.run(run_checks(checks, Context("192.0.2.1")))
    assert names(symbols) == ["SLOW", "LOCAL", "SLOWER", "STORE"]
    # The network checks waited together, not one after the other.
    assert log.index("start slower") < log.index("end slow")
    # The inline checks ran while the network checks were waiting.
    assert log.index("end store") < log.index("end slow")


@pytest.mark.parametrize("inline", [False, True])
def test_a_failing_check_yields_a_symbol_and_fail_closed_tempfails(inline):
    checks = [Probe("open", inline=inline, error=True),
              Probe("closed", inline=inline, error=True, fail_closed=True),
              Probe("fine", inline=inline)]
    symbols = asyncio.run(run_checks(checks, Context("192.0.2.1")))
    assert names(symbols) == ["CHECK_FAILED_OPEN", "CHECK_FAILED_CLOSED", "FINE"]
    assert [s.flag for s in symbols] == [None, Flag.UNSCANNED, None]
    whitelisted = decide([*symbols, Symbol("WHITELISTED", 0.0, "", Flag.WHITELIST)],
                         Thresholds(5.0, 12.0))
    assert whitelisted.verdict is Verdict.TEMPFAIL      # a sender's entry is no scan
    assert "failed" in symbols[0].reason


def test_a_network_check_is_bounded_by_its_timeout():
    checks = [Probe("hung", delay=30, timeout=0.2), Probe("local", inline=True)]
    symbols = asyncio.run(asyncio.wait_for(run_checks(checks, Context("192.0.2.1")), 5))
    assert names(symbols) == ["CHECK_FAILED_HUNG", "LOCAL"]
    assert "timed out" in symbols[0].reason


@pytest.mark.parametrize("cls", [c for c in CHECKS if c.inline], ids=lambda c: c.__name__)
def test_inline_checks_never_wait(cls):
    """Marked inline, a check that awaited the network would hold up the other checks
    and escape its timeout."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.check)))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Await | ast.AsyncWith
                                                        | ast.AsyncFor)]


def test_an_attachment_inventory_that_runs_out_of_time_defers_the_message(monkeypatch):
    from types import SimpleNamespace

    from portcullis.checks import attachments

    async def slow_inventory(ctx):     # a hostile document next to a blocked .exe
        await asyncio.sleep(5)
    monkeypatch.setattr(attachments, "shared_inventory", slow_inventory)
    check = attachments.Attachments(None)
    check.timeout = 0.1
    ctx = Context("192.0.2.1", snapshot=SimpleNamespace(settings={}))
    symbols = asyncio.run(run_checks([check], ctx))
    assert names(symbols) == ["CHECK_FAILED_ATTACHMENTS"]
    assert decide(symbols, Thresholds(5.0, 12.0)).verdict is Verdict.TEMPFAIL
