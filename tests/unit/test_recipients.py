"""Which internal-host refusals the callout cache may remember for every sender."""

import pytest

from portcullis.smtp.nexthop import Reply
from portcullis.smtp.recipients import lookup_key, refusal_reason, says_no_such_recipient

pytestmark = pytest.mark.gateway


@pytest.mark.parametrize(("code", "text", "about_the_recipient"), [
    (550, "5.1.1 <bob@example.com>: Recipient address rejected: User unknown", True),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", True),
    (553, "5.1.3 Bad recipient address syntax", True),
    (550, "5.1.6 Mailbox has moved", True),
    (550, "No such user here", False),                      # no enhanced code: says too little
    (550, "5.1.0 <nobody@example.com>: Sender address rejected: User unknown", False),
    (553, "5.1.8 <x@nowhere.test>: Sender address rejected: Domain not found", False),
    (550, "5.1.7 Bad sender mailbox syntax", False),
    (554, "5.7.1 <x@blocked.test>: Sender address rejected: Access denied", False),
    (552, "5.3.4 Message size exceeds fixed limit", False),
    (552, "5.2.2 Mailbox full", False),
    (550, "5.7.1 Client host rejected: cannot find your hostname", False),
    (554, "Transaction failed", False),
])
def test_only_refusals_about_the_recipient_itself_count(code, text, about_the_recipient):
    assert says_no_such_recipient(Reply(code, text)) is about_the_recipient


@pytest.mark.parametrize(("code", "text", "reason"), [
    (550, "5.1.1 <bob@example.com>: Recipient address rejected: User unknown", "unknown"),
    (550, "No such user here", "unknown"),          # an older server: taken as it reads
    (552, "5.2.2 <bob@example.com>: Mailbox full", "internal"),
    (554, "5.7.1 <bob@example.com>: Recipient address rejected: Access denied", "internal"),
    (550, "5.1.8 <x@nowhere.test>: Sender address rejected: Domain not found", "internal"),
])
def test_only_refusals_saying_the_recipient_does_not_exist_count_against_the_client(
        code, text, reason):
    # Harvest detection and MTA reputation count "unknown"; a server writing to a full
    # mailbox was counted as a dictionary attacker.
    assert refusal_reason(Reply(code, text)) == reason


def test_a_recipient_in_a_protected_international_domain_is_routed_in_either_form(tmp_path):
    from portcullis import config
    from portcullis.directory import domains
    from portcullis.directory.snapshot import load_snapshot
    from portcullis.smtp.recipients import route
    from portcullis.store import open_store
    cfg = config.parse({"smtp": {"listen": "127.0.0.1:2525"}, "web": {"listen": "127.0.0.1:8080"},
                        "store": {"dir": str(tmp_path)}})
    store = open_store(tmp_path)
    domains.add_domain(store, "bücher.example", "10.0.0.5")
    snapshot = load_snapshot(store, cfg)
    hop = config.HostPort("10.0.0.9", 25)
    for recipient in ("anna@bücher.example", "anna@BÜCHER.example", "anna@xn--bcher-kva.example"):
        found = route(snapshot, False, recipient, hop)
        assert found is not None and found.domain.name == "xn--bcher-kva.example", recipient
    assert route(snapshot, False, "anna@bücher.other", hop) is None


def test_recipients_are_looked_up_lower_case_with_an_a_label_domain():
    assert lookup_key("Dave@Bücher.Example") == "dave@xn--bcher-kva.example"
    assert lookup_key("Bob@Example.COM") == "bob@example.com"
