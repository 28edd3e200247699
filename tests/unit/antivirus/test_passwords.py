"""Passwords for encrypted attachments come from the text of the message that carries them."""

from __future__ import annotations

import pytest

from portcullis.antivirus.passwords import MAX_CANDIDATES, candidates
from portcullis.mime import parse_message
from tests.support.attachments import mail

pytestmark = pytest.mark.antivirus


def test_the_word_after_a_password_keyword_is_tried_first():
    message = parse_message(mail("Invoice", "Dear customer, see the invoice.\n"
                                            "Password: 34512\nRegards"))
    assert candidates(message)[0] == "34512"


@pytest.mark.parametrize("text", [
    "the archive password is 'inv2024'.",
    "Passwort: \u201einv2024\u201c",
    "pass - inv2024",
    "Kennwort=inv2024;",
])
def test_quotes_and_punctuation_around_a_password_are_removed(text):
    assert "inv2024" in candidates(parse_message(mail("x", text)))


def test_passwords_in_html_bodies_are_found_without_the_markup():
    raw = (b"From: a@remote.test\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
           b"<p>Your code: <b>Xk7!q</b></p>")
    assert "Xk7!q" in candidates(parse_message(raw))


def test_the_number_of_candidates_is_bounded():
    body = " ".join(f"word{n}" for n in range(10_000))
    assert len(candidates(parse_message(mail("x", body)))) == MAX_CANDIDATES


def test_a_password_ending_in_punctuation_survives_the_sentence_around_it():
    assert "Inv-2024!" in candidates(parse_message(mail("x", "The password is 'Inv-2024!'.")))
