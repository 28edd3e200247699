"""The clamd client against a real clamd: INSTREAM in chunks, errors, timeouts."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from portcullis.antivirus.clamd import (
    ClamdClient,
    ClamdError,
    ClamdUnavailable,
    ScanResult,
    parse_scan_reply,
)
from tests.support.clamd import EICAR, EICAR_NAME, WORM_MARKER, WORM_NAME, Clamd
from tests.support.dirs import daemon_dir

pytestmark = pytest.mark.antivirus


@pytest.fixture(scope="module")
def clamd(root_required):
    # A small StreamMaxLength, to see clamd refuse a stream.
    daemon = Clamd(daemon_dir("clamd-unit"), {"StreamMaxLength": "2M"}).start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.mark.parametrize(("reply", "signature"), [
    ("stream: OK", None),
    ("stream: Win.Test.EICAR_HDB-1 FOUND", "Win.Test.EICAR_HDB-1"),
    ("stream: Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68) FOUND", "Eicar-Signature"),
    ("1: stream: Heuristics.Encrypted.Zip FOUND", "Heuristics.Encrypted.Zip"),
])
def test_scan_replies_are_understood(reply, signature):
    assert parse_scan_reply(reply) == ScanResult(signature)


@pytest.mark.parametrize("reply", ["INSTREAM size limit exceeded. ERROR", "", "garbage"])
def test_scan_errors_are_errors_not_verdicts(reply):
    with pytest.raises(ClamdError):
        parse_scan_reply(reply)


def test_eicar_is_found_and_clean_data_is_clean(clamd):
    client = ClamdClient(str(clamd.socket))
    assert asyncio.run(client.scan(EICAR)).signature.startswith(EICAR_NAME)
    assert asyncio.run(client.scan(b"just some text")) == ScanResult(None)


def test_a_stream_larger_than_one_chunk_is_scanned_whole(clamd):
    client = ClamdClient(f"unix:{clamd.socket}", chunk_size=4096)
    data = os.urandom(1024 * 1024) + WORM_MARKER
    assert asyncio.run(client.scan(data)).signature.startswith(WORM_NAME)


def test_a_stream_clamd_refuses_is_an_error(clamd):
    client = ClamdClient(str(clamd.socket))
    # clamd answers and hangs up at once; whether its answer is still readable when the
    # hang-up is noticed is a race, but either way it is an error, never a verdict.
    with pytest.raises(ClamdError, match=r"size limit exceeded|connection lost"):
        asyncio.run(client.scan(b"x" * (3 * 1024 * 1024)))


def test_version_and_ping(clamd):
    client = ClamdClient(str(clamd.socket))
    asyncio.run(client.ping())
    assert asyncio.run(client.version()).startswith("ClamAV ")


def test_a_missing_socket_means_clamd_is_unavailable(tmp_path):
    client = ClamdClient(str(tmp_path / "nothing.ctl"))
    with pytest.raises(ClamdUnavailable):
        asyncio.run(client.scan(b"data"))


def test_a_closed_tcp_port_means_clamd_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClamdUnavailable):
        asyncio.run(ClamdClient(f"127.0.0.1:{port}").ping())


def test_a_clamd_that_never_answers_times_out(tmp_path):
    path = tmp_path / "silent.ctl"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(5)
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True)
    accepting.start()
    try:
        with pytest.raises(ClamdError, match=r"no verdict within 0\.5s"):
            asyncio.run(ClamdClient(str(path), timeout=0.5).scan(b"data"))
    finally:
        for conn in held:
            conn.close()
        server.close()
