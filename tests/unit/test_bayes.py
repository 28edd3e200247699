"""The Bayes classifier: tokens, combining, learning, sources and the training mailboxes'
forward extraction."""

from __future__ import annotations

import argparse
import email
import email.policy
import mailbox
import os
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portcullis.bayes import sources, tokenizer
from portcullis.bayes.classifier import MIN_STRENGTH, chi2q, classify, combine, token_probability
from portcullis.bayes.database import (
    AUTO,
    Learnt,
    Taught,
    TokenCache,
    TokenDatabase,
    digest,
    today,
)
from portcullis.bayes.engine import Bayes, NotLearnable, message_tokens, prepare
from portcullis.bayes.evaluate import temporary_config
from portcullis.bayes.forwarded import extract_original
from portcullis.bayes.tokenizer import MAX_TOKENS, tokenize, words
from portcullis.checks.bayes import bayes_score
from portcullis.cli import bayes as cli
from portcullis.mime import decode_text, decode_words, parse_message
from portcullis.services import Services
from portcullis.store import open_store
from tests.support.delivery import as_delivered, auto_learn

pytestmark = pytest.mark.reputation


def parse(text: str | bytes) -> email.message.Message:
    return parse_message(text.encode() if isinstance(text, str) else text)


def test_words_are_lowercased_trimmed_and_long_runs_become_shape_tokens():
    assert words("Hello, WORLD! (again)") == ["hello", "world!", "again"]
    assert words("x" * 45) == ["skip:x40"]
    assert words("ab") == []


def test_characters_drawn_as_nothing_inside_a_word_leave_the_word_shown():
    # A mail client shows "viagra" and "pharmacy"; the tokens must be those words.
    assert words("vi\u200bagra ph\u00adarmacy che\u2060ap \ufeffdeal\u200d") == \
        ["viagra", "pharmacy", "cheap", "deal"]
    tokens = tokenize(_html("<p>Vi&#8203;agra ph&shy;armacy</p>"))
    assert {"viagra", "pharmacy"} <= tokens
    subject = parse("Subject: =?utf-8?q?fr=E2=80=8Bee_p=C2=ADills?=\r\n\r\nbody text\r\n")
    assert {"subject:free", "subject:pills"} <= tokenize(subject)


def _html(body: str) -> email.message.Message:
    return parse("Subject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("junk", ["<!--", "<script>", "<style "])
def test_unclosed_comments_and_scripts_cost_linear_time(junk):
    # 200 KB of starts without ends: each used to be searched to the end of the text
    # (minutes, holding the interpreter for every session of the worker).
    tokens = tokenize(_html("<p>visible words</p>" + junk * (200_000 // len(junk))))
    assert {"visible", "words", "html:yes"} <= tokens


def test_an_unclosed_comment_or_script_hides_the_rest_as_in_a_browser():
    tokens = tokenize(_html("<p>shown text</p><!-- hidden words <p>more hidden"))
    assert "shown" in tokens and "html:comment" in tokens and "hidden" not in tokens
    tokens = tokenize(_html("<p>shown text</p><script>secret stuff</script><b>after</b>"))
    assert {"shown", "after"} <= tokens and "secret" not in tokens


def test_cyrillic_and_greek_look_alikes_in_a_latin_word_read_as_the_word_shown():
    # vi(Cyrillic a)gra, (Cyrillic es)heap, ph(Greek alpha)rm(Greek alpha)cy, (Cyrillic BE)UY
    shown = "vi\u0430gra \u0441heap ph\u03b1rm\u03b1cy \u0412UY"
    assert words(shown) == ["viagra", "cheap", "pharmacy", "buy"]
    # Words all in one script keep their letters: Russian and Greek text are not Latin.
    russian, greek = "\u043f\u0440\u043e\u0441\u0442\u043e", "\u03ba\u03b1\u03b9"
    assert words(f"{russian} {greek}") == [russian, greek]


def test_tags_and_comments_inside_a_word_leave_the_word_a_browser_shows():
    tokens = tokenize(_html("<p>Vi<!-- x -->agra V<b></b>iagra <span>Ph</span>armacy "
                            "c<x-made-up>heap</x-made-up> pi<style>p{}</style>lls</p>"))
    assert {"viagra", "pharmacy", "cheap", "pills"} <= tokens
    assert not {"agra", "iagra", "armacy", "heap", "lls"} & tokens
    # Blocks, line breaks and table cells still part the words on either side.
    tokens = tokenize(_html("<p>first</p><p>second<br>third<BR/>fourth</p>"
                            "<table><tr><td>cell</td><td>other</td></tr></table>"))
    assert {"first", "second", "third", "fourth", "cell", "other"} <= tokens


def test_junk_words_cannot_push_a_messages_telling_tokens_out():
    # Thousands of distinct words sorting before every other token, after the spam's text.
    junk = " ".join(f"0{i:05d}" for i in range(MAX_TOKENS + 500))
    message = parse("From: Pharmacy <sales@pills.example>\r\nSubject: cheap pills\r\n"
                    "Content-Type: text/plain\r\n\r\nbuy viagra online\r\n" + junk + "\r\n")
    tokens = tokenize(message)
    assert len(tokens) == MAX_TOKENS
    assert {"subject:cheap", "from:domain:pills.example", "viagra", "online"} <= tokens


def test_text_a_mail_client_does_not_show_is_not_read():
    tokens = tokenize(_html(
        '<div style="display:none">weekly minutes <div>agenda</div> budget</div>'
        '<p>buy Vi<span style="visibility: hidden">xyzzy</span>agra</p>'
        '<font style="FONT-SIZE: 0px">quarterly</font><p hidden>report</p>'
        '<img style="display:none" src="x.gif"> <b>today</b> '
        '<a href="http://shown.example/">x</a><div style="display:none">'
        '<a href="http://ham.example/">ham</a> the rest of the text is hidden'))
    assert {"buy", "viagra", "today", "html:hidden", "url:shown.example"} <= tokens
    assert not {"weekly", "minutes", "agenda", "budget", "xyzzy", "quarterly", "report",
                "url:ham.example", "rest"} & tokens
    shown = tokenize(_html('<p style="font-size:0.5em">small print</p>'))
    assert {"small", "print"} <= shown and "html:hidden" not in shown


@pytest.mark.timeout(60)
def test_many_hidden_elements_cost_linear_time():
    tokens = tokenize(_html('<div style="display:none">x' * 7_000 + "<p>shown words"))
    assert "html:hidden" in tokens and "shown" not in tokens      # all unclosed: hidden
    tokens = tokenize(_html('<span style="display:none">x</span>' * 5_000 + "shown words"))
    assert {"shown", "words"} <= tokens


def test_large_parts_a_reader_is_not_shown_cannot_use_up_the_text_read():
    # A mail client shows the last alternative (the HTML); three large plain ones before
    # it used up what the tokenizer reads of a message.
    filler = "--b\r\nContent-Type: text/plain\r\n\r\n" + "minutes agenda " * 14_000 + "\r\n"
    message = parse("Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
                    + filler * 3 + "--b\r\nContent-Type: text/html\r\n\r\n"
                    "<p>cheap viagra</p>\r\n--b--\r\n")
    assert {"minutes", "cheap", "viagra"} <= tokenize(message)


def test_a_pictures_alt_text_shown_in_its_place_is_read():
    tokens = tokenize(_html('<img src="http://pics.example/offer.gif" ALT="Cheap V1agra &amp; '
                            "Ci&#97;lis\"><img alt='today only' src=x.gif><img alt=now>"))
    assert {"alt:cheap", "alt:v1agra", "alt:cialis", "alt:today", "alt:only", "alt:now"} <= \
        tokens


def test_the_parting_tags_are_the_layout_elements_and_only_those():
    layout = {"address", "article", "aside", "blockquote", "body", "br", "button", "caption",
              "center", "dd", "div", "dl", "dt", "fieldset", "figure", "footer", "form", "h1",
              "h2", "h3", "h4", "h5", "h6", "head", "header", "hr", "html", "iframe", "img",
              "input", "li", "menu", "ol", "option", "p", "pre", "section", "select", "table",
              "tbody", "td", "textarea", "tfoot", "th", "thead", "title", "tr", "ul"}
    inline = {"a", "b", "i", "u", "s", "em", "font", "span", "strong", "sub", "sup", "small",
              "big", "label", "abbr", "ins", "del", "x-y", "tt", "h7", "bd", "tdx", "pa"}
    for name in layout | inline:
        for tag in (f"<{name}>", f"</{name.upper()}>", f"< {name} class=x>"):
            assert bool(tokenizer._PARTING_TAG.fullmatch(tag)) is (name in layout), tag


def test_cjk_and_thai_text_gives_character_bigrams():
    assert words("免费发票") == ["免费", "费发", "发票"]
    assert "ราค" not in words("ราคาถูก") and "รา" in words("ราคาถูก")
    assert words("Привет мир всем") == ["привет", "мир", "всем"]


def test_subject_is_decoded_and_html_is_stripped_with_its_links_kept():
    message = parse(
        "From: Shop <deals@shop.example>\r\n"
        "Subject: =?utf-8?b?R3Jvw59lIEFuZ2Vib3Rl?=\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><style>.x{color:red}</style><p>Cheap&nbsp;watches "
        "<a href=\"http://www.cheap-watches.biz/buy/now\">here</a></p></html>\r\n")
    tokens = tokenize(message)
    assert {"subject:große", "subject:angebote", "cheap", "watches"} <= tokens
    assert {"url:cheap-watches.biz", "url:biz", "url:buy", "html:yes"} <= tokens
    assert "color:red}" not in tokens and not any("<p>" in t for t in tokens)
    assert "from:domain:shop.example" in tokens


def test_links_are_read_as_a_browser_reads_them():
    links = ['<a href=" http://one.example/a">', '<a href="http:&#47;&#47;two.example/b">',
             "<a href='//three.example/c'>", '<a href="http:\\\\four.example\\d">',
             '<a href="http://five&#46;example/e">', '<img src="ht\ntp://six.example/f">',
             "<p>see http&#58;//seven.example/g</p>"]
    tokens = tokenize(_html("".join(links)))
    assert {f"url:{n}.example" for n in
            ("one", "two", "three", "four", "five", "six", "seven")} <= tokens
    # A link in a comment is no link a reader can follow.
    tokens = tokenize(_html('<!-- <a href="http://hidden.example/">x</a> http://text.example/ -->'))
    assert not {"url:hidden.example", "url:text.example"} & tokens


def test_one_undecodable_encoded_word_leaves_the_subjects_other_words_decoded():
    # An unknown charset, or bytes invalid in theirs, used to leave the whole subject
    # encoded: one "=?x-nonsense?q?zz?=" hid the words a mail client shows beside it.
    message = parse("Subject: =?utf-8?q?cheap_viagra?= =?x-nonsense?q?zz?= and\r\n"
                    "  =?utf-8?q?pills_caf=C3?=\r\n\r\nbody text\r\n")
    assert {"subject:cheap", "subject:viagra", "subject:and", "subject:pills"} <= \
        tokenize(message)
    # The word in a charset nobody knows stays as it is, apart from its neighbours.
    assert decode_words("=?utf-8?q?caf=C3=A9?= =?x-nonsense?q?caf=E9?=") == \
        "café =?x-nonsense?q?caf=E9?="


@pytest.mark.parametrize("host", ["3232235777", "0xC0A80101", "0300.0250.1.1", "1.2.3.4.",
                                  "192.168.0x1.1"])
def test_a_link_to_an_address_written_as_a_number_is_a_link_to_an_address(host):
    tokens = tokenize(_html(f'<a href="http://{host}/login">x</a> see http://{host}/x'))
    assert "url:ip" in tokens and not any(host.lower().rstrip(".") in t for t in tokens)
    # A relative link that is a number names no host.
    assert "url:ip" not in tokenize(_html('<a href="2002">x</a>'))


def test_a_link_host_is_read_with_its_escapes_undone_as_a_browser_opens_it():
    tokens = tokenize(_html('<a href="http://evil%2Eexample/a">x</a>'
                            '<a href="http://pay\u00adpal.example/b">y</a>'
                            "<p>see http://sh%6Fp.example/c</p>"))
    assert {"url:evil.example", "url:paypal.example", "url:shop.example"} <= tokens


def test_our_own_status_headers_and_collection_artefacts_are_not_tokens():
    message = parse("X-Spam-Status: Yes, score=20\r\nX-Keywords: junk\r\nStatus: RO\r\n"
                    "Subject: hi\r\n\r\nbody text here\r\n")
    assert not any("yes" in t or "junk" in t for t in tokenize(message))


def test_wrongly_declared_charset_still_gives_words():
    latin1 = "Café crème brûlée".encode("latin-1")
    assert decode_text(latin1, "utf-8") == "Café crème brûlée"
    assert decode_text(latin1, "x-no-such-charset") == "Café crème brûlée"
    # A multi-byte character cut by a size limit is dropped, not mangled.
    assert decode_text("naïve".encode()[:3], "utf-8") == "na"


def test_chi_square_combining_is_sure_only_when_evidence_agrees():
    assert combine([0.99] * 20) > 0.99
    assert combine([0.01] * 20) < 0.01
    assert 0.4 < combine([0.99] * 10 + [0.01] * 10) < 0.6
    assert combine([]) == 0.5
    assert chi2q(0.0, 4) == pytest.approx(1.0)


def test_token_probability_is_balanced_between_unequal_classes_and_shrunk_when_rare():
    # Seen in 10% of 100 spam and 10% of 1000 ham: no evidence either way.
    assert token_probability(10, 100, 100, 1000) == pytest.approx(0.5)
    assert 0.5 < token_probability(1, 0, 10, 10) < token_probability(20, 0, 40, 40) < 1.0


@given(st.dictionaries(st.text(min_size=1, max_size=6),
                       st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=40),
       st.integers(0, 10**7), st.integers(0, 10**7))
def test_classify_takes_each_token_probability_exactly_as_token_probability_gives_it(
        counts, nspam, nham):
    # classify computes it inline, for speed: the two must never drift apart.
    result = classify(counts, counts.keys(), nspam, nham)
    probabilities = {t: token_probability(s, h, nspam, nham)
                     for t, (s, h) in counts.items() if s + h}
    assert {c.token: c.probability for c in result.clues} == \
        {t: p for t, p in probabilities.items() if abs(p - 0.5) >= MIN_STRENGTH}
    assert result.probability == combine(c.probability for c in result.clues)


def test_classify_ignores_unknown_and_weak_tokens():
    counts = {"pills": (30, 0), "meeting": (0, 30), "the": (30, 30)}
    result = classify(counts, ["pills", "the", "unknown"], 30, 30)
    assert result.probability > 0.9
    assert [c.token for c in result.clues] == ["pills"]


def test_bayes_score_rises_with_probability_and_caps():
    scores = [bayes_score(p) for p in (0.0, 0.1, 0.3, 0.5, 0.9, 0.999, 1.0)]
    assert scores == sorted(scores)
    assert scores[0] < 0 < scores[2] and scores[-1] >= 12


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path)


def test_learning_is_idempotent_and_relearning_moves_the_message(store):
    db = TokenDatabase(store)
    tokens = frozenset({"alpha", "beta", "gamma"})
    message = Learnt(digest(tokens), tokens, spam=True)
    assert db.learn([message], "cli") == (1, 0)
    assert db.learn([message], "cli") == (0, 1)
    assert db.counts(tokens) == {t: (1, 0) for t in tokens}
    assert db.learn([Learnt(message.digest, tokens, spam=False)], "mailbox") == (1, 0)
    assert db.counts(tokens) == {t: (0, 1) for t in tokens}
    assert (db.totals()["spam"], db.totals()["ham"]) == (0, 1)


def test_auto_learning_never_moves_what_a_person_taught_but_a_person_moves_anything(store):
    db = TokenDatabase(store)
    trained, auto, legacy = (frozenset({f"{name}1", f"{name}2", "shared"})
                             for name in ("trained", "auto", "legacy"))

    def learnt(tokens: frozenset[str], spam: bool) -> Learnt:
        return Learnt(digest(tokens), tokens, spam)

    # A user's ham stays ham whatever the auto-learner later thinks, also when the user's
    # training lands between the learner's look and its write (learn reads in its
    # transaction).
    assert db.learn([learnt(trained, False)], "mailbox") == (1, 0)
    assert db.learn([learnt(trained, True)], AUTO) == (0, 1)
    assert db.counts(trained)["trained1"] == (0, 1)
    # A person moves what the auto-learner learnt; and once a person confirms an
    # auto-learnt message it is theirs, so the auto-learner cannot take it back.
    db.learn([learnt(auto, True)], AUTO)
    assert db.learn([learnt(auto, True)], "cli") == (0, 1)
    assert db.learn([learnt(auto, False)], AUTO) == (0, 1)
    assert db.counts(auto)["auto1"] == (1, 0)
    assert db.learn([learnt(auto, False)], "mailbox") == (1, 0)
    assert db.counts(auto)["auto1"] == (0, 1)
    # A person's newer training moves their older one.
    assert db.learn([learnt(trained, True)], "cli") == (1, 0)
    assert db.counts(trained)["trained1"] == (1, 0)
    # Rows an earlier version wrote keep their source, and any source but the
    # auto-learner's counts as a person's.
    store.execute("INSERT INTO bayes_learned (digest, class, source, learned)"
                  " VALUES (?, 'ham', 'mailbox', 0)", (digest(legacy),))
    assert db.learn([learnt(legacy, True)], AUTO) == (0, 1)
    assert db.taught(digest(legacy)) == Taught(spam=False, source="mailbox")
    assert db.taught(digest(trained)) == Taught(spam=True, source="cli")
    assert db.taught(digest(auto)) == Taught(spam=False, source="mailbox")
    # The auto-learnt message is a person's now: no longer counted as auto-learnt.
    assert db.totals() == {"spam": 1, "ham": 1, "auto_spam": 0, "auto_ham": 0}


def test_auto_learnt_totals_count_only_what_the_auto_learner_still_taught(store):
    """auto_spam/auto_ham are the messages of each class the auto-learner is the teacher
    of: a person moving or confirming one of them takes it off, the auto-learner moving
    its own moves it across."""
    db = TokenDatabase(store)
    messages = [frozenset({f"m{i}a", f"m{i}b", "shared"}) for i in range(5)]

    def learn(i: int, spam: bool, source: str) -> None:
        db.learn([Learnt(digest(messages[i]), messages[i], spam)], source)

    def auto_rows() -> dict[str, int]:
        return dict(store.query_values("SELECT class, count(*) FROM bayes_learned"
                                       " WHERE source = ? GROUP BY class", (AUTO,)))

    for i in range(4):
        learn(i, True, AUTO)
    learn(4, False, AUTO)
    learn(0, False, "mailbox")      # a person moves an auto-learnt spam to ham
    learn(1, True, "cli")           # a person confirms one: theirs now
    learn(2, False, AUTO)           # the auto-learner moves its own
    learn(4, True, "cli")
    assert db.totals() == {"spam": 3, "ham": 2, "auto_spam": 1, "auto_ham": 1}
    assert auto_rows() == {"spam": 1, "ham": 1}


def test_expiry_forgets_old_and_one_off_tokens_and_bounds_the_table(store):
    db = TokenDatabase(store)
    db.learn([Learnt(digest({f"t{i}"}), frozenset({f"t{i}", "common"}), i % 2 == 0)
              for i in range(20)], AUTO)
    store.execute("UPDATE bayes_tokens SET seen = seen - 40 WHERE token IN ('t1', 't2')")
    assert db.expire(hapax_days=30, max_days=180, max_tokens=1000) == 2
    left = db.token_count()
    assert db.expire(hapax_days=30, max_days=180, max_tokens=5) == left - 5
    assert db.token_count() == 5
    assert db.counts(["common"]) == {"common": (10, 10)}   # the busiest token stays


def test_a_persons_training_outlives_expiry_that_forgets_the_auto_learners(store):
    """Tokens a person taught (spam@/ham@, portcullis train) are never forgotten for
    their age; the size bound takes every auto-learnt-only token before them, then the
    least recently taught.  A person's record of a message stays, so the auto-learner
    still cannot learn it the other way."""
    db = TokenDatabase(store)

    def learn(tokens: set[str], spam: bool, source: str) -> Learnt:
        message = Learnt(digest(tokens), frozenset(tokens), spam)
        db.learn([message], source)
        return message

    trained = learn({"invoice", "overdue", "shared"}, False, "mailbox")
    learn({"bulk", "cli1"}, True, "cli")
    auto = learn({"casino", "winner", "shared"}, True, AUTO)
    confirmed = learn({"lottery", "prize"}, True, AUTO)
    learn({"lottery", "prize"}, True, "cli")           # a person confirms it: theirs
    assert db.taught(confirmed.digest) == Taught(True, "cli")
    store.execute("UPDATE bayes_tokens SET seen = seen - 400")
    store.execute("UPDATE bayes_learned SET learned = learned - 400 * 86400")
    assert db.expire(hapax_days=30, max_days=180, max_tokens=1000) == 2   # casino, winner
    assert set(db.counts(["invoice", "overdue", "bulk", "cli1", "lottery", "prize",
                          "casino", "winner", "shared"])) \
        == {"invoice", "overdue", "bulk", "cli1", "lottery", "prize", "shared"}
    assert db.counts(["shared"]) == {"shared": (1, 1)}   # a shared token stays whole
    assert db.taught(trained.digest) == Taught(False, "mailbox")
    assert db.taught(auto.digest) is None
    assert db.learn([Learnt(trained.digest, trained.tokens, True)], AUTO) == (0, 1)
    assert db.counts(["invoice"]) == {"invoice": (0, 1)}
    # Over the size bound: the auto-learner's own tokens go first, however recent ...
    learn({"fresh1", "fresh2", "fresh3"}, True, AUTO)
    store.execute("UPDATE bayes_tokens SET taught = taught - 10"
                  " WHERE token IN ('bulk', 'cli1')")      # taught longest ago
    assert db.expire(hapax_days=30, max_days=180, max_tokens=5) == 5
    assert set(db.counts(["fresh1", "fresh2", "fresh3", "bulk", "cli1"])) == set()
    assert set(db.counts(["invoice", "overdue", "shared", "lottery", "prize"])) \
        == {"invoice", "overdue", "shared", "lottery", "prize"}


def test_tokens_an_older_release_stored_are_kept_and_expired_after_the_migration(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import bayes

    monkeypatch.setitem(migrations.COMPONENTS, "bayes", bayes.STEPS[:2])
    old = open_store(tmp_path)
    old.executemany("INSERT INTO bayes_tokens (token, spam, ham, seen) VALUES (?, 1, 0, ?)",
                    [("old1", today()), ("old2", today())])
    monkeypatch.undo()
    store = open_store(tmp_path)
    db = TokenDatabase(store)
    # Whose counts they were is not known: they age as the auto-learner's.
    assert db.counts(["old1", "old2"]) == {"old1": (1, 0), "old2": (1, 0)}
    _learn(db, {"old1", "new1"}, False, "mailbox")
    store.execute("UPDATE bayes_tokens SET seen = seen - 400")
    assert db.expire(hapax_days=30, max_days=180, max_tokens=1000) == 1
    assert set(db.counts(["old1", "old2", "new1"])) == {"old1", "new1"}


def _learn(db: TokenDatabase, tokens: set[str], spam: bool, source: str = "cli") -> None:
    db.learn([Learnt(digest(tokens), frozenset(tokens), spam)], source)


def test_cached_counts_equal_the_stores_and_absent_tokens_stay_absent(store):
    plain, cached = TokenDatabase(store), TokenDatabase(store, TokenCache())
    _learn(plain, {"alpha", "beta"}, True)
    _learn(plain, {"beta", "gamma"}, False)
    wanted = ["alpha", "beta", "gamma", "delta"]
    generation = cached.totals_and_generation()[1]
    for _ in range(2):     # the first read fills the cache, the second is answered by it
        assert cached.counts(wanted, generation) == plain.counts(wanted) \
            == {"alpha": (1, 0), "beta": (1, 1), "gamma": (0, 1)}
    store.execute("DELETE FROM bayes_tokens")      # behind its back: still answered
    assert cached.counts(wanted, generation) == {"alpha": (1, 0), "beta": (1, 1),
                                                 "gamma": (0, 1)}
    assert cached.counts(wanted) == {}             # no generation: the store itself


def test_training_and_expiry_reach_a_cached_classifier_at_once(store):
    plain, cached = TokenDatabase(store), TokenDatabase(store, TokenCache())

    def counts() -> dict:
        return cached.counts(["alpha", "omega"], cached.totals_and_generation()[1])

    _learn(plain, {"alpha", "one"}, True)
    assert counts() == {"alpha": (1, 0)}
    _learn(plain, {"alpha", "omega"}, False, "mailbox")
    assert counts() == {"alpha": (1, 1), "omega": (0, 1)}
    store.execute("UPDATE bayes_tokens SET seen = seen - 400")
    assert plain.expire(hapax_days=30, max_days=180, max_tokens=0) == 3
    assert counts() == {}
    # The auto-learner's changes wait for the cache to age (CACHE_SECONDS).
    _learn(plain, {"alpha", "two"}, True, "auto")
    assert counts() == {}
    cached.cache.seconds = 0
    assert counts() == {"alpha": (1, 0)}


def test_a_fill_for_an_older_generation_is_dropped_and_the_cache_is_bounded(store):
    cache = TokenCache(limit=3)
    assert cache.split(["a", "b"], 1) == ({}, ["a", "b"])
    assert cache.split(["c"], 2) == ({}, ["c"])     # the counts moved on meanwhile
    cache.add(1, ["a", "b"], {"a": (1, 0)})         # a slow reader of generation 1
    assert cache.split(["a", "b"], 2) == ({}, ["a", "b"])
    cache.add(2, ["a", "b"], {"a": (1, 0)})
    assert cache.split(["a", "b"], 2) == ({"a": (1, 0)}, [])
    cache.add(2, ["c", "d"], {})                    # over the limit: starts again empty
    assert cache.split(["a", "c", "d"], 2) == ({}, ["a"])


def test_the_gateways_classifier_gives_what_an_uncached_one_gives(store):
    messages = [parse(f"Subject: offer {i}\r\n\r\nbuy cheap pills number{i % 7} now "
                      f"{'meeting agenda' if i % 2 else 'winner prize'}\r\n")
                for i in range(40)]
    for i, message in enumerate(messages[:20]):
        _learn(TokenDatabase(store), set(message_tokens(message)), i % 2 == 0)
    plain, cached = Bayes(store, 1), Bayes(store, 1, cached=True)
    cached.db.cache.limit = 50                          # refills along the way
    for message in messages * 2:
        assert cached.classify(message) == plain.classify(message)


def test_prepare_refuses_what_is_not_mail():
    with pytest.raises(NotLearnable, match="too large"):
        prepare(b"Subject: x\r\n\r\n" + b"x" * 100, True, max_bytes=50)
    with pytest.raises(NotLearnable, match="not a mail message"):
        prepare(bytes(range(256)) * 10, True)
    with pytest.raises(NotLearnable, match="empty"):
        prepare(b"\r\n\r\n", False)


def test_truncated_multipart_is_learnt_from_its_readable_parts_with_a_note():
    content = (b"From: a@b.example\r\nSubject: offer of the week\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
               b"Content-Type: text/plain\r\n\r\ncheap pills today only\r\n--XX\r\n"
               b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5n")
    prepared = prepare(content, True)
    assert "cheap" in prepared.learnt.tokens
    assert prepared.notes and "damaged" in prepared.notes[0]


def test_sources_read_maildir_mbox_folders_and_list_files(tmp_path):
    one = b"From: a@b.example\nSubject: one\n\nfirst body\n"
    two = b"From: a@b.example\nSubject: two\n\nFrom the start, a body line\n"
    box = mailbox.Maildir(tmp_path / "maildir")
    box.add(one)
    box.add(two)
    mbox = mailbox.mbox(tmp_path / "box.mbox")
    mbox.add(one)
    mbox.add(two)
    mbox.flush()
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.eml").write_bytes(one)
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "names.txt").write_text("folder/a.eml\n# comment\n")
    for source, expected in (("maildir", 2), ("box.mbox", 2), ("folder", 1),
                             ("list/names.txt", 1)):
        items = list(sources.messages(tmp_path / source))
        assert len(items) == expected == sources.count(tmp_path / source)
        assert all(isinstance(content, bytes) for _, content in items)
    bodies = [c for _, c in sources.messages(tmp_path / "box.mbox")]
    assert b"From the start, a body line" in bodies[1]
    with pytest.raises(sources.SourceError):
        list(sources.messages(tmp_path / "missing"))


def test_a_symbolic_link_in_a_listed_folder_is_reported_not_followed(tmp_path):
    """Training runs as root over folders others may write to (a user's maildir)."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$y$j9T$secret:19000:0:99999:7:::\n")
    box = mailbox.Maildir(tmp_path / "maildir")
    box.add(b"From: a@b.example\nSubject: one\n\nfirst body\n")
    (tmp_path / "maildir" / "cur" / "planted").symlink_to(secret)
    items = dict(sources.messages(tmp_path / "maildir"))
    assert len(items) == 2 == sources.count(tmp_path / "maildir")
    refused = items[str(tmp_path / "maildir" / "cur" / "planted")]
    assert isinstance(refused, OSError) and "symbolic link" in str(refused)
    assert sum(isinstance(c, bytes) and c.startswith(b"From: a@b") for c in items.values()) == 1
    # A link the administrator names is theirs to follow.
    (tmp_path / "named.eml").symlink_to(secret)
    assert list(sources.messages(tmp_path / "named.eml")) == [
        (str(tmp_path / "named.eml"), secret.read_bytes())]


def test_forward_as_attachment_yields_the_original():
    original = EmailMessage()
    original["From"] = "spammer@pills.example"
    original["Subject"] = "Cheap pills"
    original.set_content("Buy cheap pills now")
    forward = EmailMessage()
    forward["From"] = "bob@example.com"
    forward["Subject"] = "Fwd: Cheap pills"
    forward.set_content("Look at this spam")
    forward.add_attachment(original)
    extracted = parse(extract_original(parse(forward.as_bytes())))
    assert extracted["From"] == "spammer@pills.example"
    assert "Buy cheap pills now" in extracted.get_payload()
    assert "Look at this" not in extracted.as_string()


def test_inline_forward_takes_the_text_after_the_marker_with_its_headers():
    forward = ("From: bob@example.com\r\nSubject: FW: prize\r\n\r\nSpam again, sorry.\r\n\r\n"
               "-----Original Message-----\r\nFrom: Lottery <win@prize.example>\r\n"
               "Sent: Monday\r\nSubject: You won the jackpot\r\n\r\n"
               "Claim your jackpot now\r\n")
    extracted = parse(extract_original(parse(forward)))
    assert extracted["Subject"] == "You won the jackpot"
    assert extracted["From"] == "Lottery <win@prize.example>"
    assert "Claim your jackpot" in extracted.get_payload()
    assert "sorry" not in extracted.get_payload()
    tokens = message_tokens(extracted)
    assert "subject:jackpot" in tokens and "from:domain:prize.example" in tokens


def test_forward_without_marker_uses_its_text_and_drops_the_fwd_prefix():
    forward = "From: bob@example.com\r\nSubject: Fwd: Fwd: hot stocks\r\n\r\nbuy stocks\r\n"
    extracted = parse(extract_original(parse(forward)))
    assert extracted["Subject"] == "hot stocks"
    assert extract_original(parse("From: bob@example.com\r\n\r\n\r\n")) is None


@settings(max_examples=150)
@given(st.binary(max_size=3000))
def test_tokenizing_arbitrary_bytes_never_fails(content):
    tokens = tokenize(parse_message(b"Subject: x\r\nContent-Type: multipart/mixed; "
                                    b"boundary=b\r\n\r\n--b\r\n" + content))
    assert len(tokens) <= 4000


def test_hostile_messages_are_scored_without_failing(tmp_path):
    from portcullis.bayes.evaluate import temporary_config
    from portcullis.checks.offline import ContentScorer
    from portcullis.policy import Thresholds
    from portcullis.services import Services

    scorer = ContentScorer(Services.open(temporary_config(tmp_path)), Thresholds())
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                      for i in range(200))
    for content in (os.urandom(20 * 1024 * 1024),
                    b"Subject: =?x-unknown?q?caf=E9?=\r\nContent-Type: text/plain; "
                    b"charset=x-unknown\r\n\r\ncaf\xe9\r\n",
                    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                    b"!!!not*base64",
                    nested):
        decision = scorer.score(content)
        assert decision.verdict.value in ("accept", "tag", "reject")
    scorer.close()


def test_training_a_users_mailbox_moves_what_auto_learning_learnt_on_arrival(
        tmp_path, monkeypatch):
    """A maildir holds messages as delivered: under the gateway's Received (and the
    internal host's fields above it), tagged if they were.  Trained as they are, each was
    another message than the one auto-learning learnt on arrival: a junk folder trained
    as spam left the auto-learnt ham in place, and an inbox counted every message twice
    as ham."""
    services = Services.open(temporary_config(tmp_path / "state"))
    monkeypatch.setattr(cli, "open_services", lambda args: services)
    arrival = (b"From: Shop <news@shop.test>\r\nTo: bob@example.com\r\n"
               b"Subject: Your order has shipped\r\n\r\n"
               b"Your parcel with the blue kettle is on its way today.\r\n")
    auto_learn(services.store, arrival, spam=False)
    database = TokenDatabase(services.store)
    hostname = services.config.smtp.hostname
    delivered = as_delivered(arrival, hostname, tag_phrase="[SPAM?]")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "1.eml").write_bytes(b"Return-Path: <news@shop.test>\r\n" + delivered)
    assert cli.run_train(argparse.Namespace(spam=[junk], ham=[], json=True)) == 0
    totals = database.totals()
    assert (totals["spam"], totals["ham"]) == (1, 0)


@pytest.mark.parametrize("cover", [
    "<!-- " + "filler " * 30_000 + "-->",                       # 210 KB of comment
    "<style>" + "p.x{margin:0} " * 15_000 + "</style>",           # or of style sheet
    "<script>" + "var x = 1; " * 20_000 + "</script>"])           # or of script
def test_a_long_comment_before_the_text_does_not_use_up_what_is_read(cover):
    """What a browser does not show was read as part of a part's share of the text: a
    200 KB comment in front of the text used it all, and the spam's words went unread."""
    tokens = tokenize(_html(cover + "<p>buy cheap viagra</p>"))
    assert {"buy", "cheap", "viagra"} <= tokens
    assert "filler" not in tokens


@pytest.mark.timeout(60)
@pytest.mark.parametrize("junk", ["<!--", "<!---->", "<script>", "<style></style>"])
def test_skipping_what_is_not_shown_costs_linear_time_up_to_the_source_read(junk):
    source = junk * (tokenizer.MAX_HTML_SOURCE // len(junk))
    tokens = tokenize(_html("<p>visible words</p>" + source + "<p>after</p>"))
    assert {"visible", "words", "html:yes"} <= tokens


def test_text_hidden_by_a_style_sheets_class_is_not_read():
    """Only inline styles were seen: a <style> rule hiding a class (display:none,
    visibility:hidden, a font size of zero) hid ham words from the reader, and the
    tokenizer read them as the message's."""
    tokens = tokenize(_html(
        "<html><head><style type='text/css'>\n.x { display: none }\n"
        "span.q, .other{visibility:hidden !important} div .nested{display:none}\n"
        "@media (max-width: 600px) { .mobile { display: none } }\n"
        ".tiny{font-size:0px}</style></head><body>"
        "<p>buy Vi<span class=x>weekly</span>agra <span class='a q'>minutes</span>"
        "<font class=\"TINY\">agenda</font> today</p>"
        "<div class=nested>shown1</div><p class=mobile>shown2</p></body></html>"))
    assert {"buy", "viagra", "today", "shown1", "shown2", "html:hidden"} <= tokens
    assert not {"weekly", "minutes", "agenda"} & tokens
    # A style sheet in old browsers' comment marks is read; one commented out is not.
    tokens = tokenize(_html("<style><!-- .x{display:none} --></style><p class=x>hidden</p>"))
    assert "hidden" not in tokens and "html:hidden" in tokens
    tokens = tokenize(_html("<!-- <style>.x{display:none}</style> --><p class=x>shown</p>"))
    assert "shown" in tokens and "html:hidden" not in tokens


@pytest.mark.parametrize("page", [
    "<style>.s{display:none} span.s{display:inline}</style><span class=s>shown</span>",
    "<style>.s{display:none} span{display:inline!important}</style><span class=s>shown</span>",
    "<style>.s{display:none}</style><span class=s style='display:inline'>shown</span>",
    "<style>.s{display:none} @media screen{.s{display:block}}</style><p class=s>shown</p>"])
def test_a_class_another_rule_may_show_is_read(page):
    """Only hiding that is sure counts (no cascade is worked out): a spammer's words
    behind a class that another rule shows again must not be left unread."""
    tokens = tokenize(_html(page))
    assert "shown" in tokens and "html:hidden" not in tokens


def test_text_in_the_colour_of_the_background_is_not_read():
    """White text on a white page (or any colour on itself) is shown as nothing."""
    tokens = tokenize(_html(
        "<html><body><p>buy viagra</p><font color=#ffffff>weekly minutes</font>"
        "<span style='color: #FFF'>agenda</span><div style='COLOR:white'>budget</div>"
        "<span style='color:rgb(255, 255, 254)'>meeting</span>"
        "<p>today</p></body></html>"))
    assert {"buy", "viagra", "today", "html:hidden"} <= tokens
    assert not {"weekly", "minutes", "agenda", "budget", "meeting"} & tokens
    tokens = tokenize(_html("<p>buy viagra <span style='color:#123456;background-color:"
                            "#123456'>report</span> today</p>"))
    assert {"buy", "viagra", "today", "html:hidden"} <= tokens and "report" not in tokens
    # On a black page white text is shown, black text is not.
    tokens = tokenize(_html("<body bgcolor='#000000'><font color=white>shown</font>"
                            "<font color=black>hidden</font></body>"))
    assert "shown" in tokens and "hidden" not in tokens


def test_white_text_where_the_page_has_other_backgrounds_is_read():
    """Newsletters write white text on coloured cells and buttons: where anything but
    the page has a background, the colour rule is not applied (no CSS engine here);
    nor when what the element holds sets a colour of its own."""
    for page in ("<table><tr><td bgcolor='#003366'><font color='#ffffff'>shown</font>"
                 "</td></tr></table>",
                 "<style>.b{background:#c00}</style><a class=b style='color:#fff'>shown</a>",
                 "<div style='color:#fff'><font color='#000'>shown</font></div>",
                 "<body background='paper.jpg'><font color=white>shown</font></body>",
                 "<p style='color:#333'>shown</p>",
                 # A link is drawn in the link colour, whatever its text colour.
                 "<body bgcolor=#000><font color=#000> <a href='x'>shown</a></font></body>"):
        tokens = tokenize(_html(page))
        assert "shown" in tokens and "html:hidden" not in tokens, page


def test_colours_written_as_attributes_among_others_are_read():
    tokens = tokenize(_html("<body bgcolor=#FFFFFF text=#000000><font size=2 color=#ffffff "
                            "face=Arial>weekly minutes</font> buy viagra</body>"))
    assert {"buy", "viagra", "html:hidden"} <= tokens and "weekly" not in tokens


def test_text_of_no_opacity_is_not_read():
    """An element of opacity 0 is drawn as nothing, as one of font size 0 is: inline or
    by a class, its words were read as the message's."""
    tokens = tokenize(_html("<p>buy viagra <span style='opacity: 0'>weekly</span> today"
                            "<style>.o{opacity:0.0}</style><b class=o>minutes</b></p>"))
    assert {"buy", "viagra", "today", "html:hidden"} <= tokens
    assert not {"weekly", "minutes"} & tokens
    tokens = tokenize(_html("<p style='opacity:0.5'>shown</p><p style='opacity:1'>too</p>"))
    assert {"shown", "too"} <= tokens and "html:hidden" not in tokens


def test_transparent_text_is_not_read():
    """Text of no colour (transparent, or rgba with an alpha of 0) is drawn as nothing,
    on any background; a transparent background shows the page's."""
    tokens = tokenize(_html("<p>buy viagra <span style='color:transparent'>weekly</span> "
                            "<span style='color: rgba(0, 0, 0, 0)'>minutes</span> today</p>"
                            "<table><tr><td style='background-color:transparent'>"
                            "<font color=white>agenda</font></td></tr></table>"))
    assert {"buy", "viagra", "today", "html:hidden"} <= tokens
    assert not {"weekly", "minutes", "agenda"} & tokens
    for page in ("<p style='color:rgba(0,0,0,0.8)'>shown</p>",
                 # Black text on a transparent background (a newsletter's footer links).
                 "<style>.f{color:#000000;background-color:transparent}</style>"
                 "<a class=f href='x'>shown</a>"):
        tokens = tokenize(_html(page))
        assert "shown" in tokens and "html:hidden" not in tokens, page
