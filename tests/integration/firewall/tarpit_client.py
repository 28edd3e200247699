"""A client caught by the tarpit, run inside a namespace:
``python tarpit_client.py SRC DST PORT CONNECTIONS``.

Opens CONNECTIONS connections to DST:PORT from SRC, one after another (SRC may be a
comma-separated list of addresses, taken in turn).  On the first it
writes until the kernel will take no more and reports what TCP says about the peer: the
window it advertises (``tcpi_snd_wnd``), how much it has acknowledged, how much is still
queued unacknowledged.  It then reads what the tarpit trickles, and reports for every
connection whether it is still open.  Prints one JSON object.
"""

from __future__ import annotations

import fcntl
import json
import select
import socket
import struct
import sys
import termios
import time

TCP_INFO_SIZE = 232
SND_WND_OFFSET = 228          # struct tcp_info.tcpi_snd_wnd (Linux 5.4+)
BYTES_ACKED_OFFSET = 120      # struct tcp_info.tcpi_bytes_acked


def tcp_info(sock: socket.socket) -> dict:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    return {"state": raw[0],
            "snd_wnd": struct.unpack_from("I", raw, SND_WND_OFFSET)[0],
            "bytes_acked": struct.unpack_from("Q", raw, BYTES_ACKED_OFFSET)[0]}


def unsent(sock: socket.socket) -> int:
    """Bytes in the send queue the peer has not acknowledged (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def still_open(sock: socket.socket) -> bool:
    """True while the peer has neither closed nor reset the connection."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def main(src: str, dst: str, port: int, count: int) -> dict:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    socks, report = [], {"connected": [], "open": []}
    sources = src.split(",")
    for number in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((sources[number % len(sources)], 0))
        sock.settimeout(3)
        try:
            sock.connect((dst, port))
            report["connected"].append(True)
        except OSError:
            report["connected"].append(False)
        socks.append(sock)
        time.sleep(0.2)          # let the tarpit accept (or refuse) before the next one
    first = socks[0]
    if report["connected"][0]:
        report["window_at_start"] = tcp_info(first)["snd_wnd"]
        first.setblocking(False)
        written = 0
        chunk = b"x" * 65536
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                written += first.send(chunk)
            except BlockingIOError:
                # The kernel took all it will; give the peer time to acknowledge what it can.
                time.sleep(1.0)
                try:
                    written += first.send(chunk)
                except BlockingIOError:
                    break
        info = tcp_info(first)
        report.update(written=written, window_after=info["snd_wnd"],
                      acknowledged=info["bytes_acked"] - 1, unacknowledged=unsent(first))
        first.setblocking(True)
        first.settimeout(5)
        try:
            report["trickled"] = first.recv(64).decode(errors="replace")
        except OSError as exc:
            report["trickled"] = f"error {exc}"
    time.sleep(0.5)
    report["open"] = [connected and still_open(s)
                      for s, connected in zip(socks, report["connected"], strict=True)]
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
