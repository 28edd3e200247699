"""Serving the web UI with waitress (a production WSGI server, not bottle's own)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import waitress

from portcullis.accounts import setup
from portcullis.config import Config
from portcullis.services import Services
from portcullis.web.app import MAX_FORM_BYTES, create_app

log = logging.getLogger(__name__)

# Waitress receives a request's whole body before the application sees it, so whoever
# can connect makes the process hold this much, logged in or not: no more than the
# largest form the application takes (a longer body is refused as its headers arrive).
MAX_REQUEST_BYTES = MAX_FORM_BYTES + 1          # waitress refuses this size and above
BODIES_DIR = "web-bodies"
M_MMAP_THRESHOLD = -3                           # glibc's mallopt parameter


def buffer_bodies_under(state_dir: Path) -> None:
    """Have waitress keep the bodies it buffers (those beyond 512 KiB) in files under the
    state directory.  In /tmp, the appliance's RAM tmpfs (hardening role), they are
    memory charged to this service's MemoryMax=512M, and take the space clamd unpacks
    mail in: sixteen connections sending 32 MiB bodies, no login needed, would fill it."""
    directory = state_dir / BODIES_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(directory)       # waitress calls tempfile.TemporaryFile()


def return_large_blocks_to_the_system() -> None:
    """Have glibc's malloc give blocks of 128 KiB and more back to the system once freed.
    By default it raises that threshold to the largest block freed so far, so after one
    large paste each later one came from heaps that keep what they grew to: eight pastes
    of 16 MiB left the process 118 MB larger, against 69 MB with the threshold fixed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError, TypeError):      # not glibc: its own ways
        log.info("malloc's mmap threshold left as it is")


def serve(config: Config) -> int:
    """Run the web UI on ``[web] listen`` until SIGTERM or SIGINT."""
    services = Services.open(config)
    # First start: make sure a setup code exists (printed on stderr when we made it).
    try:
        setup.ensure_code(services.store, config.store.dir)
    except OSError as exc:
        log.error("no setup code for the first start: %s", exc)
    return_large_blocks_to_the_system()
    try:
        buffer_bodies_under(config.store.dir)
    except OSError as exc:
        log.warning("request bodies are buffered in %s: %s", tempfile.gettempdir(), exc)
    listen = " ".join(str(address) for address in config.web.listen)
    server = waitress.create_server(
        create_app(services), listen=listen, threads=max(1, config.web.threads),
        ident="Portcullis", max_request_body_size=MAX_REQUEST_BYTES,
        clear_untrusted_proxy_headers=True, channel_timeout=60)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the web UI", signum)
        server.close()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for address in config.web.listen:
        print(f"portcullis: web administration listening on http://{address}/",
              file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        services.close()
    return 0
