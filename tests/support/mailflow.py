"""Mail through the real gateway from the test world's namespaces (see
tests/integration/conftest.py): a gateway for an organisation (example.com on the lan's
Postfix, the lan's mail server as its relay, the wan's Postfix as its outbound relay), and
Internet mail, replies and forwards sent to it."""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from tests.support.gateway import Gateway


def organisation_gateway(world, state_dir: Path, config: str = "") -> Gateway:
    """A gateway (not started) protecting example.com, with the lan's mail server as a
    relay and the wan's Postfix as the outbound relay; ``config`` adds to its file."""
    gateway = Gateway(state_dir, listen=[world.lan_root_ip, world.sender_root_ip])
    gateway.add_config(f'[outbound]\nrelay_host = "{world.wan_ip}:2525"\n'
                       "[delivery]\nconnect_timeout = 5\ncommand_timeout = 20\n" + config)
    gateway.cli("domain", "add", "example.com", "--mail-host", f"{world.lan_ip}:25")
    gateway.cli("relay", "add", f"{world.lan_ip}/32", "--note", "Exchange")
    return gateway


SEND = """
import json, smtplib, sys
host, port, sender, rcpts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
try:
    with smtplib.SMTP(host, port, timeout=60) as client:
        refused = client.sendmail(sender, rcpts, sys.stdin.buffer.read())
    print(json.dumps({"code": 250, "refused": sorted(refused)}))
except smtplib.SMTPRecipientsRefused as exc:
    code, text = next(iter(exc.recipients.values()))
    print(json.dumps({"code": code, "text": text.decode(errors="replace")}))
except smtplib.SMTPResponseException as exc:
    print(json.dumps({"code": exc.smtp_code, "text": exc.smtp_error.decode(errors="replace")}))
"""


def send_from(ns, gateway_ip: str, port: int, sender: str, recipients: list[str],
              content: bytes) -> dict:
    """Send one message from a host in a namespace; return the gateway's answer."""
    result = ns.run("python3", "-c", SEND, gateway_ip, str(port), sender, ",".join(recipients),
                    input=content)
    return json.loads(result.stdout.decode())


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:8]}"


def delivered(postfix, address: str, subject: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in postfix.messages(address) if subject in str(m["Subject"])]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def symbols(entry: dict) -> dict[str, float]:
    return {s["name"]: s["score"] for s in entry["symbols"]}


def inbound(world, gw, sender: str, recipient: str, content: bytes) -> dict:
    return send_from(world.sender_ns, world.sender_root_ip, gw.port, sender, [recipient],
                     content)


def forward_as_attachment(original: bytes, sender: str, to: str) -> bytes:
    forward = EmailMessage()
    forward["From"] = sender
    forward["To"] = to
    forward["Subject"] = "Fwd: spam"
    forward.set_content("This got through, please learn it.")
    forward.add_attachment(email.message_from_bytes(original, policy=email.policy.default))
    return forward.as_bytes()
