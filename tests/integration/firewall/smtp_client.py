"""A real SMTP exchange with the appliance's port 25, run inside a namespace:
``python smtp_client.py SRC DST SIZE``: from SRC, EHLO then one message of about SIZE
bytes.  Prints one JSON object: the EHLO answer, the answer to the message (or the error)."""

from __future__ import annotations

import json
import smtplib
import sys


def main(src: str, dst: str, size: int) -> dict:
    body = "".join(f"line {n:07d} of the test message\r\n" for n in range(size // 32))
    message = f"From: a@sender.test\r\nTo: b@gw.test\r\nSubject: test\r\n\r\n{body}"
    try:
        with smtplib.SMTP(dst, 25, source_address=(src, 0), timeout=20) as client:
            _, ehlo = client.ehlo("client.test")
            client.mail("a@sender.test")
            client.rcpt("b@gw.test")
            code, answer = client.data(message)
            return {"ehlo": ehlo.decode(), "code": code, "answer": answer.decode()}
    except (OSError, smtplib.SMTPException) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
