"""SSH handshakes completed by hand and reset at once, before sshd can answer: run inside
a namespace, ``python reset_after_handshake.py SRC DST COUNT``; prints how many handshakes
completed.  The ACK and the RST leave back to back, so the appliance's TCP takes the
connection and loses it before sshd writes a byte.  IPv4; needs raw sockets (root there).
While it runs, the kernel's own resets to these hand-made connections are dropped."""

from __future__ import annotations

import random
import subprocess
import sys

from handshake_race import ACK, QUIET, RST, open_by_hand, raw_socket, segment


def main(src: str, dst: str, count: int) -> int:
    subprocess.run(["nft", "-f", "-"], input=QUIET, text=True, check=True)
    completed = 0
    try:
        with raw_socket() as sock:
            sock.settimeout(1.0)
            first_port = random.randint(20000, 60000 - count)
            for sport in range(first_port, first_port + count):
                opened = open_by_hand(sock, src, dst, sport)
                if opened is None:
                    continue
                seq, ack = opened
                sock.sendto(segment(src, dst, sport, seq, ack, ACK), (dst, 0))
                sock.sendto(segment(src, dst, sport, seq, 0, RST), (dst, 0))
                completed += 1
    finally:
        subprocess.run(["nft", "delete", "table", "ip", "handshake_race"], check=False)
    return completed


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
