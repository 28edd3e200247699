"""Serving the web UI with waitress (a production WSGI server, not bottle's own)."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import waitress

from portcullis.accounts import setup
from portcullis.config import Config
from portcullis.services import Services
from portcullis.web.app import create_app

log = logging.getLogger(__name__)

# A pasted valid-address list of an ISP can be large; anything far beyond is refused.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def serve(config: Config) -> int:
    """Run the web UI on ``[web] listen`` until SIGTERM or SIGINT."""
    services = Services.open(config)
    # First start: make sure a setup code exists (printed on stderr when we made it).
    try:
        setup.ensure_code(services.store, config.store.dir)
    except OSError as exc:
        log.error("no setup code for the first start: %s", exc)
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
