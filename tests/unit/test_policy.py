import pytest

from portcullis.policy import Flag, Symbol, Thresholds, Verdict, decide
from portcullis.smtp.handler import decide_for_recipients

pytestmark = pytest.mark.gateway
T = Thresholds(tag=5.0, reject=12.0)


@pytest.mark.parametrize(("score", "verdict"), [
    (0.0, Verdict.ACCEPT), (4.9, Verdict.ACCEPT), (5.0, Verdict.TAG),
    (11.9, Verdict.TAG), (12.0, Verdict.REJECT),
])
def test_scores_map_to_actions_by_threshold(score, verdict):
    assert decide([Symbol("X", score)], T).verdict is verdict


def test_malware_rejects_even_whitelisted_and_protected_senders():
    decision = decide([Symbol("WHITELIST", -100, "white", Flag.WHITELIST),
                       Symbol("PEER", -20, "peer", Flag.PROTECT),
                       Symbol("VIRUS", 0, "Virus: Worm.X", Flag.MALWARE)], T)
    assert decision.verdict is Verdict.REJECT
    assert decision.reason == "Virus: Worm.X"


def test_whitelist_accepts_despite_blacklist_and_score():
    decision = decide([Symbol("BLACKLIST", 100, "black", Flag.BLACKLIST),
                       Symbol("WHITELIST", -100, "white", Flag.WHITELIST),
                       Symbol("SPAMMY", 300)], T)
    assert decision.verdict is Verdict.ACCEPT


def test_a_protected_peer_is_never_rejected_or_tempfailed_below_malware():
    symbols = [Symbol("PEER", -3, "peer", Flag.PROTECT),
               Symbol("DNSBL", 0, "RBL Block: zone 1.2.3.4", Flag.REJECT),
               Symbol("GREY", 0, "greylisted", Flag.TEMPFAIL), Symbol("SPAMMY", 40)]
    assert decide(symbols, T).verdict is Verdict.TAG


@pytest.mark.parametrize("forged", [
    Symbol("SPF_FAIL", 3.5, "SPF fail", Flag.FORGED),
    Symbol("DMARC_FAIL_REJECT", 6.0, "DMARC fail", Flag.FORGED)])
def test_a_forged_sender_gets_no_peer_protection(forged):
    # Whoever knows one address a user writes to would otherwise never be rejected.
    symbols = [Symbol("PEER", -3, "peer", Flag.PROTECT), forged, Symbol("SPAMMY", 40)]
    assert decide(symbols, T).verdict is Verdict.REJECT
    symbols = [Symbol("PEER", -3, "peer", Flag.PROTECT), forged,
               Symbol("DNSBL", 0, "RBL Block: zone 1.2.3.4", Flag.REJECT)]
    assert decide(symbols, T).reason == "RBL Block: zone 1.2.3.4"


def test_a_forged_sender_s_relationship_bonuses_do_not_count():
    """A spoofed business partner (business e-mail compromise): its -20 outweighed SPF
    and DMARC failing and the content's own score."""
    from portcullis.reputation import oneway, peers

    [peer] = peers.symbols(peers.Peer(outbound=30, inbound=30, domain_partners=1), 3)
    [one_way] = oneway.symbols(oneway.OneWay(40, 0.0), 3)
    forged = [Symbol("SPF_FAIL", 3.5, "SPF fail", Flag.FORGED),
              Symbol("DMARC_FAIL_REJECT", 6.0, "DMARC fail", Flag.FORGED)]
    content = Symbol("URGENT_WIRE", 4.0, "asks for a wire transfer")
    decision = decide([peer, one_way, *forged, content], T)
    assert (decision.verdict, decision.score) == (Verdict.REJECT, 13.5)
    assert [s.reason.endswith("(not counted: the sender is forged)") for s in
            decision.symbols] == [True, True, False, False, False]
    # Not forged: the bonuses count as ever, and an administrator's -100 is no relationship.
    assert decide([peer, one_way, content], T).verdict is Verdict.ACCEPT
    white = Symbol("WHITELIST", -100, "White list: client 192.0.2.1", Flag.WHITELIST)
    assert decide([white, *forged, content], T).score == -86.5


def test_blacklist_beats_peer_protection():
    symbols = [Symbol("PEER", -3, "peer", Flag.PROTECT),
               Symbol("BLACKLIST", 100, "Black list: x", Flag.BLACKLIST)]
    assert decide(symbols, T).verdict is Verdict.REJECT


def test_several_recipients_get_the_most_lenient_judgement():
    common = [Symbol("SPAMMY", 7.0)]
    per_recipient = {"peer@ex.com": [Symbol("PEER", -10, "peer", Flag.PROTECT)],
                     "other@ex.com": []}
    decision = decide_for_recipients(common, per_recipient, ["other@ex.com", "peer@ex.com"], T)
    assert decision.verdict is Verdict.ACCEPT
    assert decide_for_recipients(common, per_recipient, ["other@ex.com"], T).verdict \
        is Verdict.TAG


def test_sender_authentication_marks_only_a_proven_forgery():
    from portcullis.checks.authentication import dmarc_symbols, spf_symbols
    from portcullis.mailauth.dmarc import DmarcOutcome, DmarcResult
    from portcullis.mailauth.spf import SpfOutcome, SpfResult

    def flag(symbols):
        return symbols[0].flag
    assert flag(spf_symbols(SpfOutcome(SpfResult.FAIL, "bank.example"))) is Flag.FORGED
    for result in (SpfResult.SOFTFAIL, SpfResult.NEUTRAL, SpfResult.PASS):
        assert flag(spf_symbols(SpfOutcome(result, "bank.example"))) is None
    for policy, expected in (("reject", Flag.FORGED), ("quarantine", Flag.FORGED),
                             ("none", None)):
        outcome = DmarcOutcome(DmarcResult.FAIL, "bank.example", policy)
        assert flag(dmarc_symbols(outcome)) is expected
