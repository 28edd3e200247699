"""A small mail world for integration tests, built once per module:

    lan     the protected internal host (Postfix) for example.com: alice, bob
    lan2    a second internal host for example.net: dave
    wan     the Internet: an MX for remote.test (friend) and, beside it, the local
            outbound Postfix the gateway hands relay mail to (port 2525)
    sender  an Internet MTA (Postfix) that relays to the gateway and retries on 4xx

The gateway runs in the root namespace, listening on loopback and on the root side of
the lan and sender links.  The root namespace does not forward between namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.dirs import daemon_dir
from tests.support.gateway import Gateway
from tests.support.netns import Netns, network
from tests.support.postfix import Postfix


@dataclass
class MailWorld:
    lan: Netns
    lan_ip: str
    lan_root_ip: str
    internal: Postfix
    lan2_ip: str
    internal2: Postfix
    wan_ip: str
    internet: Postfix
    outbound: Postfix
    sender_ns: Netns
    sender_ip: str
    sender_root_ip: str
    sending_mta: Postfix | None = None


@pytest.fixture(scope="module")
def world(root_required):
    with network() as net:
        lan, lan_ip, lan_root_ip = net.host("lan")
        lan2, lan2_ip, _ = net.host("lan2")
        wan, wan_ip, _ = net.host("wan")
        sender_ns, sender_ip, sender_root_ip = net.host("sender")
        internal = Postfix.mailbox_server(daemon_dir("internal"), lan, lan_ip,
                                          ["example.com"],
                                          ["alice@example.com", "bob@example.com"]).start()
        internal2 = Postfix.mailbox_server(daemon_dir("internal2"), lan2, lan2_ip,
                                           ["example.net"], ["dave@example.net"]).start()
        # The Internet MX needs an address of its own, or the outbound Postfix next to it
        # would see mail for itself ("loops back to myself").
        mx_ip = wan.add_address(wan_ip.rsplit(".", 1)[0] + ".3/24")
        internet = Postfix.mailbox_server(daemon_dir("internet"), wan, mx_ip,
                                          ["remote.test"], ["friend@remote.test"]).start()
        outbound = Postfix(daemon_dir("outbound"), wan, wan_ip, port=2525,
                           hostname="out.gw.test", settings={
                               "relayhost": f"[{mx_ip}]:25",
                               "mynetworks": "10.0.0.0/8, 127.0.0.0/8",
                           }).start()
        world = MailWorld(lan, lan_ip, lan_root_ip, internal, lan2_ip, internal2, wan_ip,
                          internet, outbound, sender_ns, sender_ip, sender_root_ip)
        try:
            yield world
        finally:
            for postfix in (internal, internal2, internet, outbound, world.sending_mta):
                if postfix is not None:
                    postfix.stop()


@pytest.fixture
def gateway(world, tmp_path):
    """A fresh gateway with example.com (lan) and example.net (lan2) protected."""
    gw = Gateway(tmp_path / "state", listen=[world.lan_root_ip, world.sender_root_ip])
    gw.add_config(f'[outbound]\nrelay_host = "{world.wan_ip}:2525"\n'
                  "[delivery]\nconnect_timeout = 5\ncommand_timeout = 20\n")
    gw.cli("domain", "add", "example.com", "--mail-host", f"{world.lan_ip}:25")
    gw.cli("domain", "add", "example.net", "--mail-host", f"{world.lan2_ip}:25")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
