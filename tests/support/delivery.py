"""A message as the gateway passes it on to the internal host: its own Received field on
top, the sender's copies of the gateway's fields stripped, the Subject tagged if asked;
and the message as auto-learning learnt it on arrival.  What training must recognise as
the message that arrived."""

from __future__ import annotations

from portcullis.bayes.database import AUTO, Learnt, TokenDatabase, digest
from portcullis.bayes.engine import message_tokens
from portcullis.mime import parse_message
from portcullis.smtp.rewrite import received_header, rewrite
from portcullis.store import Store


def as_delivered(arrival: bytes, hostname: str, *, tag_phrase: str | None = None,
                 helo: str = "mx.sender.test", client_ip: str = "198.51.100.7",
                 recipient: str = "bob@example.com") -> bytes:
    return rewrite(arrival, prepend=[received_header(
        helo=helo, client_ip=client_ip, hostname=hostname, queue_id="20261201T000000-aa",
        recipient=recipient)], tag_phrase=tag_phrase, authserv_id=hostname)


def auto_learn(store: Store, arrival: bytes, spam: bool) -> tuple[int, int]:
    """Learn ``arrival`` as the auto-learner does on arrival; (newly learnt, known)."""
    tokens = message_tokens(parse_message(arrival))
    return TokenDatabase(store).learn([Learnt(digest(tokens), tokens, spam)], AUTO)
