"""The stub resolver's own transport, against a DNS server the test scripts itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import subprocess
import sys

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from portcullis import resolver as resolver_module
from portcullis.config import DnsConfig
from portcullis.resolver import FAIL_FAST_AFTER, DnsAnswer, DnsStatus, Resolver
from tests.support.dns import silent_resolver

pytestmark = pytest.mark.defenses


class ScriptedServer(asyncio.DatagramProtocol):
    """Answers A queries for *.test with 192.0.2.1 (TTL 60); ``truncate`` sets TC on UDP
    answers (the full answer is served over TCP); ``decoy`` first sends an answer to a
    different question with the same ID; names containing ``never`` are not answered
    (an authoritative server that drops queries)."""

    def __init__(self, truncate: bool = False, decoy: bool = False, never: str = "") -> None:
        self.truncate, self.decoy, self.never = truncate, decoy, never
        self.queries = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        name = query.question[0].name
        if name.to_text().endswith(".test."):
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def datagram_received(self, data, addr):
        self.queries += 1
        query = dns.message.from_wire(data)
        if self.never and self.never in query.question[0].name.to_text():
            return
        if self.decoy:
            other = dns.message.make_query("decoy.test", "A")
            other.id = query.id
            forged = dns.message.make_response(other)
            forged.answer.append(dns.rrset.from_text("decoy.test.", 60, "IN", "A", "6.6.6.6"))
            self.transport.sendto(forged.to_wire(), addr)
        response = self.answer(query)
        if self.truncate:
            response.flags |= dns.flags.TC
            response.answer = []
        self.transport.sendto(response.to_wire(), addr)

    async def serve_tcp(self, reader, writer):
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        wire = self.answer(dns.message.from_wire(await reader.readexactly(size))).to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def scripted(timeout: float = 2, **behaviour):
    loop = asyncio.get_running_loop()
    server = ScriptedServer(**behaviour)
    # The kernel picks a free UDP port; the same TCP port may be taken by another
    # test's connection, so try again with a new pair rather than fail.
    for _ in range(20):
        transport, _ = await loop.create_datagram_endpoint(lambda: server,
                                                           local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(server.serve_tcp, "127.0.0.1", port)
            break
        except OSError:
            transport.close()
    else:
        raise RuntimeError("no UDP and TCP port pair free on 127.0.0.1")
    try:
        yield server, Resolver(DnsConfig(nameservers=("127.0.0.1",), port=port,
                                         timeout=timeout))
    finally:
        transport.close()
        tcp.close()


def test_a_burst_of_lookups_is_answered_on_one_socket():
    async def run():
        async with scripted() as (_, resolver):
            answers = await asyncio.gather(*(resolver.addresses(f"h{i}.test", 4)
                                             for i in range(400)))
            return {a.records for a in answers}
    assert asyncio.run(run()) == {("192.0.2.1",)}


def test_an_answer_to_another_question_is_ignored():
    async def run():
        async with scripted(decoy=True) as (_, resolver):
            return await resolver.addresses("real.test", 4)
    assert asyncio.run(run()).records == ("192.0.2.1",)


def test_a_truncated_answer_is_asked_again_over_tcp():
    async def run():
        async with scripted(truncate=True) as (_, resolver):
            return await resolver.addresses("big.test", 4)
    answer = asyncio.run(run())
    assert answer.status is DnsStatus.OK and answer.records == ("192.0.2.1",)


def test_answers_are_cached_for_their_ttl():
    async def run():
        async with scripted() as (server, resolver):
            for _ in range(5):
                await resolver.addresses("cached.test", 4)
            await resolver.addresses("nothing.example", 4)
            await resolver.addresses("nothing.example", 4)   # no SOA: not cached
            return server.queries
    assert asyncio.run(run()) == 3


def test_names_are_cached_as_asked_and_bad_ones_never_asked():
    async def run():
        async with scripted() as (server, resolver):
            first = await resolver.addresses("cached.test", 4)
            again = await resolver.addresses("cached.test", 4)
            other_spelling = await resolver.addresses("CACHED.test.", 4)
            bad = [await resolver.addresses("a..b.test", 4) for _ in range(2)]
            return first, again, other_spelling, bad, server.queries
    first, again, other_spelling, bad, queries = asyncio.run(run())
    assert first == again == other_spelling and first.status is DnsStatus.OK
    assert [b.status for b in bad] == [DnsStatus.ERROR, DnsStatus.ERROR]
    assert queries == 2          # the other spelling is asked once; bad names never


def test_names_that_time_out_do_not_rest_a_resolver_that_answers():
    """A sender chooses names whose servers never answer (DKIM selectors, SPF includes):
    their timeouts must not switch off every other lookup."""
    async def run():
        async with scripted(timeout=0.3, never="dead") as (_, resolver):
            timed_out = await asyncio.gather(*(resolver.addresses(f"dead{i}.test", 4)
                                               for i in range(FAIL_FAST_AFTER * 2)))
            more = [await resolver.addresses(f"dead-again{i}.test", 4)
                    for i in range(FAIL_FAST_AFTER)]
            return timed_out + more, await resolver.addresses("listed.test", 4)
    timed_out, after = asyncio.run(run())
    assert {a.status for a in timed_out} == {DnsStatus.TIMEOUT}
    assert after.status is DnsStatus.OK


def test_a_silent_resolver_is_rested_after_repeated_timeouts():
    with silent_resolver() as port:
        resolver = Resolver(DnsConfig(nameservers=("127.0.0.1",), port=port, timeout=0.3))

        async def run():
            statuses = [(await resolver.addresses(f"n{i}.test", 4)).status
                        for i in range(FAIL_FAST_AFTER)]
            return [*statuses, (await resolver.addresses("next.test", 4)).status]
        statuses = asyncio.run(run())
    assert statuses == [DnsStatus.TIMEOUT] * FAIL_FAST_AFTER + [DnsStatus.UNAVAILABLE]


def test_the_answer_cache_is_bounded_by_bytes_and_keeps_no_big_answers():
    """A sender's zone may serve 60 KB of TXT under any number of names."""
    cache = resolver_module._AnswerCache(size=1000, size_bytes=20_000)
    for i in range(100):
        cache.put((f"n{i}.test", "TXT"), DnsAnswer(DnsStatus.OK, ("x" * 1000,)), 3600)
    assert cache.used_bytes <= 20_000
    assert cache.get(("n99.test", "TXT")) is not None      # the newest are kept
    assert cache.get(("n0.test", "TXT")) is None
    big = DnsAnswer(DnsStatus.OK, ("y" * 250,) * 40)
    cache.put(("big.test", "TXT"), big, 3600)
    assert cache.get(("big.test", "TXT")) is None
    assert cache.used_bytes == sum(entry[2] for entry in cache._entries.values())


def test_record_ttls_are_capped_at_a_day():
    query = dns.message.make_query("long.test", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("long.test.", 2**31 - 1, "IN", "A",
                                               "192.0.2.1"))
    answer, ttl = resolver_module._interpret(response, query.question[0].name,
                                             dns.rdatatype.A)
    assert answer.records == ("192.0.2.1",)
    assert ttl == resolver_module.POSITIVE_TTL_CAP == 86400


def test_lookup_all_answers_in_order_and_asks_only_what_is_not_cached():
    async def run():
        async with scripted() as (server, resolver):
            await resolver.addresses("b.test", 4)
            asked = server.queries
            names = ["a.test", "b.test", "c.example", "b.test"]
            together = await resolver.lookup_all([(n, "A") for n in names])
            one_by_one = [await resolver.addresses(n, 4) for n in names]
            return together, one_by_one, server.queries - asked
    together, one_by_one, queries = asyncio.run(run())
    assert together == one_by_one
    assert [a.status for a in together] == [DnsStatus.OK, DnsStatus.OK, DnsStatus.NXDOMAIN,
                                            DnsStatus.OK]
    # b.test came from the cache; c.example (no SOA, not cached) was asked twice.
    assert queries == 3


# A nameserver off the host, in a network namespace of the test's own (an address on its
# loopback interface that is not 127/8): the server records the source port of each query.
_PORTS_SEEN = """
import asyncio, sys
import dns.message, dns.rrset
from portcullis.config import DnsConfig
from portcullis.resolver import Resolver

ports = []

class Server(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        ports.append(addr[1])
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                   "192.0.2.1"))
        self.transport.sendto(response.to_wire(), addr)

async def main(nameserver):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Server, local_addr=(nameserver, 5353))
    resolver = Resolver(DnsConfig(nameservers=(nameserver,), port=5353, timeout=2))
    for i in range(10):
        assert (await resolver.addresses(f"h{i}.test", 4)).records == ("192.0.2.1",)
    print(len(set(ports)))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize(("nameserver", "ports"), [("10.53.0.1", 10), ("127.0.0.1", 1)])
def test_each_query_to_a_nameserver_off_the_host_has_its_own_source_port(
        root_required, nameserver, ports):
    """RFC 5452: with one long-lived socket, an off-path attacker who floods forged
    answers has only the 16-bit ID to guess; the appliance's own unbound on loopback
    keeps the cheap shared socket."""
    setup = "ip link set lo up && ip addr add 10.53.0.1/32 dev lo && exec \"$0\" \"$@\""
    run = subprocess.run(["unshare", "--net", "sh", "-c", setup, sys.executable, "-c",
                          _PORTS_SEEN, nameserver],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == ports
