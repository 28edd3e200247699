"""An SSH connection whose entry conntrack keeps after sshd's side is gone, then a new SYN
on its addresses and ports: run inside a namespace, ``python lingering.py SRC DST``.

Completes a handshake by hand, sends a byte (the appliance's stand-in sshd reads one and
closes), and leaves sshd's FIN unanswered, so conntrack holds the connection (FIN_WAIT)
while sshd forgets it; prints ``lingering``.  On a line on stdin it sends a bare SYN on
the same addresses and ports and prints ``sent``.  IPv4; raw sockets (root there).
"""

from __future__ import annotations

import random
import subprocess
import sys

from handshake_race import ACK, PSH_ACK, QUIET, SYN, raw_socket, segment, syn_ack

FIN = 0x01


def wait_for_fin(sock, sport: int) -> None:
    while True:
        data = sock.recv(2048)
        header = (data[0] & 0x0F) * 4
        if (int.from_bytes(data[header:header + 2]) == 22
                and int.from_bytes(data[header + 2:header + 4]) == sport
                and data[header + 13] & FIN):
            return


def main(src: str, dst: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=QUIET, text=True, check=True)
    try:
        sport = random.randint(20000, 60000)
        isn = random.getrandbits(32)
        with raw_socket() as sock:
            sock.settimeout(10)
            sock.sendto(segment(src, dst, sport, isn, 0, SYN), (dst, 0))
            theirs = syn_ack(sock, sport)
            assert theirs is not None, "no SYN-ACK"
            ack = (theirs + 1) % 2**32
            sock.sendto(segment(src, dst, sport, isn + 1, ack, ACK), (dst, 0))
            sock.sendto(segment(src, dst, sport, isn + 1, ack, PSH_ACK, b"x"), (dst, 0))
            wait_for_fin(sock, sport)
            print("lingering", flush=True)
            sys.stdin.readline()
            sock.sendto(segment(src, dst, sport, random.getrandbits(32), 0, SYN), (dst, 0))
            print("sent", flush=True)
            sys.stdin.readline()
    finally:
        subprocess.run(["nft", "delete", "table", "ip", "handshake_race"], check=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
