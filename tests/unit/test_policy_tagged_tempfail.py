"""The policy's TEMPFAIL_IF_TAGGED flag: greylisting of uncertain mail."""

from __future__ import annotations

import pytest

from portcullis.policy import Flag, Symbol, Thresholds, Verdict, decide

pytestmark = pytest.mark.defenses

UNVERIFIED = Symbol("GREYLIST_UNVERIFIED", 0.0, "Greylisted", Flag.TEMPFAIL_IF_TAGGED)
T = Thresholds(tag=5, reject=12)


def test_tag_zone_message_from_an_unverified_sender_is_tempfailed() -> None:
    decision = decide([Symbol("X", 6.0), UNVERIFIED], T)
    assert decision.verdict is Verdict.TEMPFAIL and decision.reason == "Greylisted"


def test_the_flag_changes_nothing_outside_the_tag_zone() -> None:
    assert decide([Symbol("X", 1.0), UNVERIFIED], T).verdict is Verdict.ACCEPT
    assert decide([Symbol("X", 20.0), UNVERIFIED], T).verdict is Verdict.REJECT


def test_a_protected_peer_is_tagged_not_tempfailed() -> None:
    peer = Symbol("PEER", 0.0, "peer", Flag.PROTECT)
    assert decide([Symbol("X", 6.0), UNVERIFIED, peer], T).verdict is Verdict.TAG
