"""Small generated mail corpora for training tests: wanted mail about office work,
unwanted mail about pills and prizes, and messages that mix both (the classifier is
unsure about those, so they land in the Tag band)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

HAM_WORDS = (
    "meeting", "agenda", "budget", "quarterly", "report", "project", "schedule", "review",
    "minutes", "invoice", "colleague", "deadline", "draft", "proposal", "conference",
    "workshop", "contract", "milestone", "roadmap", "customer", "support", "release",
    "planning", "spreadsheet"
)
SPAM_WORDS = (
    "viagra", "casino", "lottery", "winner", "prize", "jackpot", "cheap", "pills",
    "refinance", "mortgage", "guaranteed", "unclaimed", "inheritance", "offshore", "bonus",
    "discount", "pharmacy", "millions", "claim", "urgent", "congratulations", "replica",
    "rolex"
)
COMMON = (
    "the", "and", "please", "regards", "thanks", "with", "for", "this", "that", "your",
    "from"
)


def text(rng: random.Random, words: tuple[str, ...], count: int) -> str:
    picked = [rng.choice(words) if i % 3 else rng.choice(COMMON) for i in range(count)]
    return " ".join(picked)


def message(subject: str, body: str, sender: str = "someone@remote.test",
            recipient: str = "user@example.com") -> bytes:
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@remote.test>\r\n"
            f"\r\n{body}\r\n").encode()


def write_corpus(folder: Path, spam: bool, count: int, seed: int = 7) -> Path:
    """A folder of ``count`` .eml files of one class."""
    rng = random.Random(seed + (1 if spam else 0))
    words = SPAM_WORDS if spam else HAM_WORDS
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        content = message(text(rng, words, 5), text(rng, words, 40),
                          sender=f"{'promo' if spam else 'colleague'}{index}@remote.test")
        (folder / f"{index:04d}.eml").write_bytes(content)
    return folder


def unsure_message(subject: str, sender: str, recipient: str, seed: int = 1) -> bytes:
    """Equal strong evidence both ways: the classifier's answer is near 0.5."""
    rng = random.Random(seed)
    body = text(rng, HAM_WORDS, 20) + "\r\n" + text(rng, SPAM_WORDS, 20)
    return message(subject, body, sender, recipient)
