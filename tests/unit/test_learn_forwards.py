"""Forwards to the training addresses come from our users, but what they forward was
written by strangers: finding the original must cost time linear in the forward."""

from __future__ import annotations

import time

import pytest

from portcullis.bayes.forwarded import extract_original
from portcullis.mime import parse_message

pytestmark = pytest.mark.reputation


def forward(body: str) -> bytes:
    return ("From: bob@example.com\r\nSubject: Fwd: junk\r\n\r\n" + body).encode()


def test_a_long_line_of_dashes_after_forwarded_by_costs_linear_time():
    # A spam's own text, forwarded inline: each split of the dash run was tried (the old
    # pattern took 10 s for this line, and grew with its square).
    hostile = "Please learn this.\r\n\r\n-- Forwarded by " + "-" * 30000 + "x\r\n"
    started = time.monotonic()
    original = extract_original(parse_message(forward(hostile)))
    assert time.monotonic() - started < 1.0
    assert original is not None and b"Forwarded by" in original    # no marker: whole text


def test_a_forwarded_by_marker_is_still_recognised():
    text = ("Spam again.\r\n\r\n----- Forwarded by Bob Smith/ACME on 01/02/2026 ------\r\n"
            "From: prizes@lottery.test\r\nSubject: You won\r\n\r\nclaim your prize now\r\n")
    original = parse_message(extract_original(parse_message(forward(text))))
    assert original["Subject"] == "You won" and original["From"] == "prizes@lottery.test"
    assert "claim your prize" in original.get_payload()
