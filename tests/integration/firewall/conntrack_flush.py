"""Forget every connection the namespace's conntrack table holds, as if they had all
expired: ``python conntrack_flush.py`` inside it (root there).  A ctnetlink flush, for
want of the conntrack tool."""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def flush() -> None:
    # No tuple and family AF_UNSPEC: every entry of every family.
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
    message = struct.pack("=IHHII", 16 + len(body), NFNL_SUBSYS_CTNETLINK << 8
                          | IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.send(message)
        answer = sock.recv(4096)
    kind = struct.unpack_from("=H", answer, 4)[0]
    code = struct.unpack_from("=i", answer, 16)[0] if kind == NLMSG_ERROR else 0
    if code:
        raise OSError(-code, "conntrack flush refused")


if __name__ == "__main__":
    flush()
