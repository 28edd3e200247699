"""The MAIL FROM parameters a release sends, read from the archived message."""

import pytest

from portcullis.archive.release import mail_parameters

pytestmark = pytest.mark.gateway

ASCII = b"Subject: hello\r\n\r\nbody\r\n"


@pytest.mark.parametrize(("sender", "recipients", "content", "expected"), [
    ("a@x.test", ["b@y.test"], ASCII, ([], False)),
    ("a@x.test", ["b@y.test"], b"Subject: hello\r\n\r\nK\xc3\xb6ln\r\n",
     (["BODY=8BITMIME"], False)),
    # A UTF-8 address: the message came with SMTPUTF8, its UTF-8 header needs it too.
    ("j\u00f6rg@x.test", ["b@y.test"], b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nbody\r\n",
     (["BODY=8BITMIME", "SMTPUTF8"], True)),
    ("a@x.test", ["d@b\u00fccher.example"], ASCII, (["SMTPUTF8"], False)),
    # A UTF-8 header with ASCII addresses: SMTPUTF8 where offered, legacy text elsewhere.
    ("a@x.test", ["b@y.test"], b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nbody\r\n",
     (["BODY=8BITMIME", "SMTPUTF8"], False)),
    # Latin-1 in a header is no UTF-8: legacy 8-bit, no SMTPUTF8.
    ("a@x.test", ["b@y.test"], b"Subject: K\xf6ln\r\n\r\nbody\r\n", (["BODY=8BITMIME"], False)),
])
def test_parameters_follow_what_the_message_holds(sender, recipients, content, expected):
    assert mail_parameters(sender, recipients, content) == expected
