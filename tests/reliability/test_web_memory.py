"""A pasted valid-address list costs the web process bounded memory, whatever its size:
a real ``portcullis web`` process, a real HTTP client, the peak resident size of the
process while it answers (its high-water mark reset first).

Before: the form of a 500,000-address paste (14 MB sent) peaked at about 400 MB, bottle
splitting the value at each of its million escapes; one 12 MB line of words took 300 MB;
each view of a domain with 500,000 addresses (imported with the CLI) took 140 MB, and of
the Defenses page, after a dictionary attack from 200,000 clients, 380 MB; eight pastes
of 16 MiB at once, from one administrator, 410 MB (each thread kept its last form, and
malloc its heaps).
The service runs under MemoryMax=512M with eight threads.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from portcullis.store import open_store
from portcullis.web.app import MAX_FORM_BYTES
from portcullis.web.server import BODIES_DIR
from tests.reliability.conftest import rss_peak_kib
from tests.support.gateway import Gateway
from tests.support.web import Response, WebUI

pytestmark = [pytest.mark.reliability, pytest.mark.webui]

PASSWORD = "correct horse battery"
# Generous: what is left now is the form as text (twice) and the checked lines, 20-40 MiB.
GROWTH_BOUND_KIB = 128 * 1024
T = TypeVar("T")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    gateway = Gateway(tmp_path_factory.mktemp("web-memory"))
    web = WebUI(gateway).start()
    gateway.cli("domain", "add", "example.com", "--mail-host", "192.0.2.25")
    gateway.cli("user", "add", "root", "--role", "super", "--password-stdin",
                input=PASSWORD + "\n")
    yield web
    web.stop()


@pytest.fixture
def admin(web):
    client = web.client()
    assert client.login("root", PASSWORD).status == 303
    return client


def measured(web, request: Callable[[], T]) -> tuple[T, int]:
    """The reply to ``request`` and how far the web process's resident size rose above
    where it was before (KiB)."""
    pid = web.process.pid
    status = Path(f"/proc/{pid}/status").read_text()
    before = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    Path(f"/proc/{pid}/clear_refs").write_text("5")       # VmHWM := VmRSS
    reply = request()
    return reply, rss_peak_kib(pid) - before


def paste(web, admin, text: str) -> tuple[Response, int]:
    """Post ``text`` as the domain's valid-address list (see ``measured``)."""
    token = admin.get("/domains/example.com").csrf()
    return measured(web, lambda: admin.post("/domains/example.com/addresses",
                                            {"addresses": text, "csrf_token": token}))


def listed(web) -> list[str]:
    return web.gateway.cli("valid", "list", "example.com").stdout.split()


def test_a_paste_of_500000_addresses_is_refused_whole_saying_what_to_do_in_bounded_memory(
        web, admin):
    text = "\n".join(f"u{n:06d}@example.com" for n in range(500_000))
    reply, growth = paste(web, admin, text)
    assert reply.status == 413, reply.body[-1000:]
    assert "500,000 lines" in reply.body and "at most 100,000" in reply.body
    assert "portcullis valid import example.com FILE" in reply.body
    assert "u000000@example.com" not in listed(web)
    assert growth < GROWTH_BOUND_KIB, f"{growth // 1024} MiB"


def test_a_paste_of_99000_addresses_is_stored_whole_in_bounded_memory(web, admin):
    text = "\n".join(f"big{n:06d}@example.com" for n in range(99_000))
    reply, growth = paste(web, admin, text)
    assert reply.status == 303, reply.body[-1000:]
    assert sum(a.startswith("big") for a in listed(web)) == 99_000
    assert growth < GROWTH_BOUND_KIB, f"{growth // 1024} MiB"


def test_a_line_far_longer_than_any_address_is_refused_before_it_is_split(web, admin):
    text = "good@example.com\n" + "ab " * 4_000_000        # 12 MB of words in line 2
    reply, growth = paste(web, admin, text)
    assert reply.status == 400
    assert "line 2 is longer than 1000 characters" in reply.body
    assert "good@example.com" not in listed(web)
    assert growth < GROWTH_BOUND_KIB, f"{growth // 1024} MiB"


def test_a_paste_of_many_bad_lines_stores_nothing_and_lists_the_first_hundred(web, admin):
    text = "\n".join([*(f"ok{n:05d}@example.com" for n in range(50_000)),
                      *(f"bad line {n}" for n in range(49_000))])
    reply, growth = paste(web, admin, text)
    assert reply.status == 400
    assert "49000 line(s) could not be used" in reply.body
    assert reply.body.count("<li>line ") == 100
    assert "line 50001:" in reply.body and "line 50101:" not in reply.body
    assert "and 48900 more line(s)" in reply.body
    assert not any(a.startswith("ok") for a in listed(web))
    assert growth < GROWTH_BOUND_KIB, f"{growth // 1024} MiB"


def test_viewing_a_domain_of_500000_addresses_reads_only_those_shown(web, admin, tmp_path):
    web.gateway.cli("domain", "add", "big.example", "--mail-host", "192.0.2.25")
    listing = tmp_path / "big.txt"
    listing.write_text("\n".join(f"user.{n:07d}@big.example" for n in range(500_000)))
    web.gateway.cli("valid", "import", "big.example", str(listing))
    admin.get("/domains/big.example")
    page, growth = measured(web, lambda: admin.get("/domains/big.example"))
    assert page.status == 200 and "(500000)" in page.body
    assert page.body.count("@big.example</td>") == 500
    assert "user.0000499@big.example" in page.body and "Only the first 500" in page.body
    assert growth < 32 * 1024, f"{growth // 1024} MiB"
    found, growth = measured(web, lambda: admin.get("/domains/big.example?filter=R.049999"))
    assert found.body.count("@big.example</td>") == 10     # user.0499990 to user.0499999
    assert "Only the first" not in found.body
    assert growth < 32 * 1024, f"{growth // 1024} MiB"


def test_the_defenses_page_after_a_dictionary_attack_from_200000_clients_stays_small(
        web, admin):
    # What the SMTP side writes when 200,000 clients each try invalid recipients (half of
    # them blocked) and 50,000 networks passed greylisting often enough to be trusted.
    now = time.time()
    store = open_store(web.gateway.state_dir)
    with store.transaction():
        store.executemany(
            "INSERT INTO harvest (client, invalid, window_start, blocked_until)"
            " VALUES (?, ?, ?, ?)",
            [(f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}", 1 + n % 7, now,
              now + 3600 if n % 2 else 0) for n in range(200_000)])
        store.executemany(
            "INSERT INTO greylist_awl (network, passes, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?)",
            [(f"100.{n >> 8}.{n & 255}.0/24", 5 + n % 9, now, now)
             for n in range(50_000)])
    store.close()
    page, growth = measured(web, lambda: admin.get("/defenses"))
    assert page.status == 200
    assert page.body.count('name="ip"') == 200
    assert "The first 200 of 200000, blocked ones first" in page.body
    assert "The first 200 of 50000;" in page.body
    # Blocked clients come first: every one shown is blocked.
    assert page.body.count(">Unblock</button>") == 200
    assert growth < 32 * 1024, f"{growth // 1024} MiB"


def _post_head(length: int) -> bytes:
    return (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type:"
            f" application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n").encode()


def test_a_body_being_received_waits_on_disk_under_the_state_directory(web):
    # Waitress holds a body whole before the application reads it; on the appliance /tmp
    # is a RAM tmpfs charged to the service's memory, so the body must not wait there.
    pid = web.process.pid
    bodies = str(web.gateway.state_dir / BODIES_DIR)
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as client:
        client.sendall(_post_head(8 * 2**20) + b"a" * 2 * 2**20)   # no login needed
        deadline = time.monotonic() + 20
        held: list[str] = []
        while not held and time.monotonic() < deadline:
            targets = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:                  # closed meanwhile
                    continue
            held = [t for t in targets if t.endswith("(deleted)")]
            time.sleep(0.1)
    assert held, "no buffer file seen"
    assert all(t.startswith(bodies + "/") for t in held), held


def test_a_body_larger_than_any_form_is_refused_before_it_is_received(web):
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as client:
        client.sendall(_post_head(MAX_FORM_BYTES + 1))     # and not one byte of it
        assert client.recv(200).startswith(b"HTTP/1.1 413")


def test_eight_large_pastes_at_once_from_one_administrator_stay_in_bounded_memory(
        web, admin):
    # 16 MiB each, every line refused: the costliest paste the limits let through.
    text = "\n".join(f"Jane Doe Junior the {n}{' ' * 40}{'x' * 100}" for n in range(99_000))
    token = admin.get("/domains/example.com").csrf()

    def paste_once(_: int) -> int:
        client = web.client()
        client.cookies = dict(admin.cookies)
        return client.post("/domains/example.com/addresses",
                           {"addresses": text, "csrf_token": token}).status

    with ThreadPoolExecutor(8) as pool:
        statuses, growth = measured(web, lambda: list(pool.map(paste_once, range(8))))
    assert statuses == [400] * 8
    assert growth < GROWTH_BOUND_KIB + 32 * 1024, f"{growth // 1024} MiB"   # one: 65 MiB
