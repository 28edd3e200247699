"""SSH handshakes completed by hand, each racing its last ACK against the client's first
data, as a real SSH client sends them (its banner at once): run inside a namespace,
``python handshake_race.py SRC DST COUNT``; prints how many handshakes completed.

The ACK and the data segment leave at the same instant from two processes on two CPUs,
so the appliance handles them on two CPUs at once.  IPv4; needs raw sockets (root there).
While it runs, the kernel's own resets to these hand-made connections are dropped.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import struct
import subprocess
import sys
import time

from spoof import checksum

MARK = 0x5ACE           # our own packets; the kernel's resets lack it
QUIET = f"""table ip handshake_race {{
	chain output {{
		type filter hook output priority filter; policy accept;
		meta mark != {MARK} tcp flags & rst == rst drop
	}}
}}"""
BANNER = b"SSH-2.0-race\r\n"
ACK, PSH_ACK, SYN, SYN_ACK, RST = 0x10, 0x18, 0x02, 0x12, 0x04


def segment(src: str, dst: str, sport: int, seq: int, ack: int, flags: int,
            payload: bytes = b"") -> bytes:
    """A TCP segment to port 22 (the kernel adds the IP header)."""
    tcp = struct.pack("!HHIIBBHHH", sport, 22, seq, ack, 5 << 4, flags, 64240, 0, 0) + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6,
                                                                         len(tcp))
    return tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]


def raw_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
    return sock


def sender(cpu: int, dst: str, jobs: multiprocessing.Queue) -> None:
    """Send each job's packet when the monotonic clock reaches its instant."""
    os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
    with raw_socket() as sock:
        while (job := jobs.get()) is not None:
            instant, packet = job
            while time.perf_counter_ns() < instant:
                pass
            sock.sendto(packet, (dst, 0))


def syn_ack(sock: socket.socket, sport: int) -> int | None:
    """The appliance's initial sequence number from its SYN-ACK to ``sport``."""
    try:
        while True:
            data = sock.recv(2048)
            header = (data[0] & 0x0F) * 4
            source, destination, seq, _ack, _off, flags = struct.unpack_from(
                "!HHIIBB", data, header)
            if source == 22 and destination == sport and flags & SYN_ACK == SYN_ACK:
                return seq
    except TimeoutError:
        return None


def open_by_hand(sock: socket.socket, src: str, dst: str, sport: int
                 ) -> tuple[int, int] | None:
    """Send a SYN from ``src``:``sport``; the sequence and acknowledgement numbers that
    complete the handshake, or None if no SYN-ACK came."""
    isn = random.getrandbits(32)
    sock.sendto(segment(src, dst, sport, isn, 0, SYN), (dst, 0))
    theirs = syn_ack(sock, sport)
    return None if theirs is None else ((isn + 1) % 2**32, (theirs + 1) % 2**32)


def main(src: str, dst: str, count: int) -> int:
    queues = [multiprocessing.Queue(), multiprocessing.Queue()]
    senders = [multiprocessing.Process(target=sender, args=(cpu, dst, queue))
               for cpu, queue in enumerate(queues)]
    subprocess.run(["nft", "-f", "-"], input=QUIET, text=True, check=True)
    try:
        for process in senders:
            process.start()
        completed = 0
        first_port = random.randint(20000, 60000 - count)
        with raw_socket() as sock:
            sock.settimeout(1.0)
            # Ports used once each: a tuple reused while its conntrack entry lives is no
            # new connection to the firewall.
            for sport in range(first_port, first_port + count):
                opened = open_by_hand(sock, src, dst, sport)
                if opened is None:
                    continue
                seq, ack = opened
                packets = [segment(src, dst, sport, seq, ack, ACK),
                           segment(src, dst, sport, seq, ack, PSH_ACK, BANNER)]
                random.shuffle(packets)
                instant = time.perf_counter_ns() + 1_000_000
                for queue, packet in zip(queues, packets, strict=True):
                    queue.put((instant, packet))
                time.sleep(0.005)
                sock.sendto(segment(src, dst, sport, (seq + len(BANNER)) % 2**32, 0, RST), (dst, 0))
                completed += 1
    finally:
        for queue in queues:
            queue.put(None)
        for process in senders:
            process.join(10)
        subprocess.run(["nft", "delete", "table", "ip", "handshake_race"], check=False)
    return completed


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
