"""``portcullis firewall monitor``: the firewall's long-running helper.

It holds CAP_NET_ADMIN (and nothing else) so the unprivileged parts never need it:

- writes every scan attempt the ruleset sends to the nflog group to the log (the journal);
- answers the control socket, through which the web UI reads status and blocks/unblocks;
- keeps the black-list drop sets equal to the administrator's IP black list in the store
  (when ``[firewall] drop_black_list`` is on).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portcullis.addresses import IPNetwork
from portcullis.config import Config
from portcullis.firewall import LocalFirewall, control
from portcullis.firewall.client import MAX_REQUEST, OPERATIONS
from portcullis.firewall.nft import FirewallError
from portcullis.firewall.scanlog import ScanAttempt, ScanLogReader

log = logging.getLogger("portcullis.firewall")
scan_log = logging.getLogger("portcullis.firewall.scan")

BLACK_LIST_INTERVAL = 30.0       # seconds between black-list comparisons
CLIENT_TIMEOUT = 10.0
# Control clients served at once; each may hold a part-read request for CLIENT_TIMEOUT, so
# without a cap any member of the socket's group could make this privileged process grow
# by a megabyte per connection.  The web UI needs a few.
MAX_CLIENTS = 32


def black_list_networks(store: Any) -> list[IPNetwork]:
    """The IP entries of the administrator's black list that may be dropped."""
    from portcullis.directory import bwlists

    # An entry nft would refuse (a zone an older release stored), or one wider than lists
    # take (0.0.0.0/0 would drop every connection to 25 and 80), is left out and logged.
    return [e.network for e in bwlists.stored_entries(store, "black") if e.network is not None]


class Monitor:
    def __init__(self, config: Config, firewall: LocalFirewall,
                 store_opener: Callable[[], Any] | None = None,
                 on_scan: Callable[[ScanAttempt], None] | None = None) -> None:
        self.config = config
        self.firewall = firewall
        self.store_opener = store_opener
        self.on_scan = on_scan or (lambda attempt: scan_log.info("%s", attempt.line()))
        self._pushed: tuple[list[str], int | None] | None = None
        self._clients = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    # -- scan log ------------------------------------------------------------------------
    def _read_scans(self, reader: ScanLogReader) -> None:
        for attempt in reader.receive():
            self.on_scan(attempt)

    # -- control socket ------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        peer = writer.get_extra_info("socket")
        uid = _peer_uid(peer) if peer is not None else -1
        self._clients += 1
        try:
            if self._clients > MAX_CLIENTS:
                answer = {"ok": False, "error": "firewall control is busy; try again"}
            else:
                try:
                    line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
                except ValueError:         # the line outgrew the reader's limit
                    line = None
                answer = ({"ok": False, "error": "request too large"} if line is None
                          else self.handle(line, uid))
            writer.write(json.dumps(answer).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def handle(self, line: bytes, uid: int = -1) -> dict[str, Any]:
        """Answer one control request (a JSON line)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or request.get("op") not in OPERATIONS:
                raise FirewallError(f"unknown request; expected op in {', '.join(OPERATIONS)}")
            op = request["op"]
            if op == "status":
                return {"ok": True, "result": self.firewall.status().to_dict()}
            if op == "push_black_list":
                return {"ok": True, "result": self.sync_black_list(force=True)}
            address = request.get("address")
            if not isinstance(address, str):
                raise FirewallError("address must be a string")
            if op == "block":
                minutes = request.get("minutes")
                if minutes is not None and (isinstance(minutes, bool)
                                            or not isinstance(minutes, int | float)):
                    raise FirewallError("minutes must be a number")
                entry = self.firewall.block(address, minutes)
                log.info("blocked %s from SSH for %ss (control socket, uid %d)",
                         entry.address, entry.expires, uid)
                return {"ok": True, "result": {"address": entry.address,
                                               "expires": entry.expires}}
            removed = self.firewall.unblock(address)
            log.info("unblocked %s (control socket, uid %d)", address, uid)
            return {"ok": True, "result": removed}
        except (ValueError, RecursionError):   # RecursionError: JSON nested too deep
            return {"ok": False, "error": "request is not valid JSON"}
        except FirewallError as exc:
            return {"ok": False, "error": str(exc)}

    async def _serve_control(self) -> asyncio.AbstractServer | None:
        path = self.config.firewall.control_socket
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            server = await asyncio.start_unix_server(self._client, path=str(path),
                                                     limit=MAX_REQUEST)
            group = self.config.firewall.control_group
            try:
                gid = grp.getgrnam(group).gr_gid if group else -1
            except KeyError:
                log.warning("control group %s does not exist; socket is owner-only", group)
                gid = -1
            if gid >= 0:
                os.chown(path, -1, gid)
            os.chmod(path, 0o660 if gid >= 0 else 0o600)
        except OSError as exc:
            log.error("control socket %s: %s (web UI cannot reach the firewall)", path, exc)
            return None
        return server

    # -- black list ----------------------------------------------------------------------
    def sync_black_list(self, force: bool = False) -> int | None:
        """Push the store's IP black list (if changed, or ``force``); return how many
        networks the drop sets hold, None when ``drop_black_list`` is off."""
        if not self.config.firewall.drop_black_list:
            self._clear_black_list()
            return None
        if self.store_opener is None:
            return None
        try:
            store = self.store_opener()
            try:
                networks = black_list_networks(store)
            finally:
                store.close()
        except Exception as exc:   # noqa: BLE001 - any store failure: report, keep the old set
            raise FirewallError(f"cannot read the black list from the store: {exc}") from None
        texts = sorted(str(n) for n in networks)
        # A re-applied ruleset is a new table (new handle): push again even if unchanged.
        handle = control.table_handle(self.firewall.nft)
        if (texts, handle) == self._pushed and not force:
            return len(texts)
        control.push_black_list(self.firewall.nft, networks)
        self._pushed = (texts, handle)
        log.info("black list pushed to the firewall: %d networks", len(texts))
        return len(texts)

    def _clear_black_list(self) -> None:
        """With the feature off, nothing an earlier configuration pushed stays dropped."""
        nft = self.firewall.nft
        handle = control.table_handle(nft)
        if handle is None or self._pushed == ([], handle):
            return
        if any(control.set_entries(nft, f"blacklist_{family}") for family in ("v4", "v6")):
            control.push_black_list(nft, [])
            log.info("black list taken off the firewall: drop_black_list is off")
        self._pushed = ([], handle)

    async def _black_list_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sync_black_list()
            except Exception as exc:   # noqa: BLE001 - keep monitoring; retry next round
                self._pushed = None
                log.warning("black list not pushed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), BLACK_LIST_INTERVAL)

    # -- all together --------------------------------------------------------------------
    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        reader = ScanLogReader(self.config.firewall.scan_log_group)
        loop.add_reader(reader.fileno(), self._read_scans, reader)
        server = await self._serve_control()
        black_list = asyncio.create_task(self._black_list_loop())
        log.info("firewall monitor: scan log group %d, control socket %s",
                 self.config.firewall.scan_log_group, self.config.firewall.control_socket)
        if ready:
            ready()
        try:
            await self._stopping.wait()
        finally:
            black_list.cancel()
            loop.remove_reader(reader.fileno())
            reader.close()
            if server is not None:
                server.close()
                with contextlib.suppress(FileNotFoundError):
                    Path(self.config.firewall.control_socket).unlink()


def _peer_uid(sock: socket.socket) -> int:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    except OSError:
        return -1


def run(monitor: Monitor) -> int:
    """Serve until SIGTERM or SIGINT."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, monitor.stop)
        await monitor.serve(ready=lambda: print("firewall monitor ready", flush=True))

    asyncio.run(main())
    return 0
