"""The policy: symbols plus the administrator's thresholds give Accept/Tag/Reject/TempFail."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from portcullis.policy.symbols import Decision, Flag, Symbol, Verdict


@dataclass(frozen=True)
class Thresholds:
    tag: float = 5.0
    reject: float = 12.0


def decide(symbols: Iterable[Symbol], thresholds: Thresholds) -> Decision:
    """Apply the flag precedence (see ``Flag``), then the score thresholds.

    Peer protection caps a score-based verdict at Tag, so mail between correspondents is
    never lost; only malware and the administrator's black list reject a protected peer,
    and there is none, nor any relationship bonus, when sender authentication says the
    sender was forged (whoever knows one address a user writes to would otherwise be
    protected).
    """
    symbols = tuple(symbols)
    if any(s.flag is Flag.FORGED for s in symbols):
        # A relationship with a forged address proves nothing: its bonus goes with its
        # protection (a spoofed business partner's -20 outweighed SPF and DMARC failing).
        symbols = tuple(_not_counted(s) if s.trusts_sender and s.score < 0 else s
                        for s in symbols)
    score = round(sum(s.score for s in symbols), 3)
    by_flag: dict[Flag, Symbol] = {}
    for symbol in symbols:
        if symbol.flag is not None and symbol.flag not in by_flag:
            by_flag[symbol.flag] = symbol

    def forced(verdict: Verdict, symbol: Symbol) -> Decision:
        return Decision(verdict, score, symbol.reason, symbols, symbol)

    if Flag.MALWARE in by_flag:
        return forced(Verdict.REJECT, by_flag[Flag.MALWARE])
    if Flag.UNSCANNED in by_flag:
        return forced(Verdict.TEMPFAIL, by_flag[Flag.UNSCANNED])
    if Flag.WHITELIST in by_flag:
        return Decision(Verdict.ACCEPT, score, "", symbols, by_flag[Flag.WHITELIST])
    if Flag.BLACKLIST in by_flag:
        return forced(Verdict.REJECT, by_flag[Flag.BLACKLIST])
    protected = Flag.PROTECT in by_flag and Flag.FORGED not in by_flag
    if not protected:
        if Flag.REJECT in by_flag:
            return forced(Verdict.REJECT, by_flag[Flag.REJECT])
        if Flag.TEMPFAIL in by_flag:
            return forced(Verdict.TEMPFAIL, by_flag[Flag.TEMPFAIL])
    if score >= thresholds.reject and not protected:
        return Decision(Verdict.REJECT, score, f"Spam score {score:.1f}", symbols)
    if score >= thresholds.tag:
        if Flag.TEMPFAIL_IF_TAGGED in by_flag and not protected:
            return forced(Verdict.TEMPFAIL, by_flag[Flag.TEMPFAIL_IF_TAGGED])
        return Decision(Verdict.TAG, score, "", symbols)
    return Decision(Verdict.ACCEPT, score, "", symbols)


def _not_counted(symbol: Symbol) -> Symbol:
    return replace(symbol, score=0.0,
                   reason=f"{symbol.reason} (not counted: the sender is forged)")
