"""A TCP proxy in front of a real internal mail host that can misbehave on request.

The gateway is pointed at the proxy instead of the host.  Modes:

- ``pass``: bytes flow both ways untouched;
- ``hang_after_data``: once the gateway has sent ``DATA`` and had its 354, the proxy stops
  reading from the gateway and forwards nothing more (a host that hangs mid-DATA: it
  never sees the message);
- ``hang_before_reply``: the whole message, final dot included, reaches the host, but its
  reply is swallowed (the host has the message, the gateway never hears so);
- ``hang_at_rset``: the gateway's ``RSET`` and anything after it are not passed on, so
  the host never answers it (the proxy keeps reading, to see the gateway close);
- ``refuse``: new connections are closed at once (a host that is down).

A mode applies to connections opened after it is set.  ``hung`` counts connections that
reached their hanging point, so a test can wait for the fault to have happened;
``open_connections()`` those the gateway has not closed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

MODES = ("pass", "hang_after_data", "hang_before_reply", "hang_at_rset", "refuse")


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], listen_host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((listen_host, 0))
        self.listener.listen(128)
        self.host, self.port = self.listener.getsockname()
        self.mode = "pass"
        self.hung = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._open: set[socket.socket] = set()     # gateway sides not seen closed
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode

    def wait_hung(self, count: int = 1, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.hung >= count:
                return True
            time.sleep(0.05)
        return False

    def open_connections(self) -> int:
        """Connections from the gateway it has not closed (as far as the proxy still reads
        them: one left hanging after DATA counts as open)."""
        with self._lock:
            return len(self._open)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            mode = self.mode
            self.connections += 1
            if mode == "refuse":
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
                self._open.add(client)
            state = {"data_sent": False, "final_dot": False}
            threading.Thread(target=self._client_to_server, args=(client, server, mode, state),
                             daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client, mode, state),
                             daemon=True).start()

    def _hang(self) -> None:
        with self._lock:
            self.hung += 1

    def _client_to_server(self, client: socket.socket, server: socket.socket, mode: str,
                          state: dict) -> None:
        pending, in_data, tail, hanging = b"", False, b"", False
        try:
            while chunk := client.recv(65536):
                if hanging:
                    continue                    # read only to see the gateway close
                if in_data:
                    window = tail + chunk
                    tail = window[-5:]
                    if b"\r\n.\r\n" in window:
                        # Flagged before the dot leaves, so the reply cannot slip through.
                        in_data = False
                        state["final_dot"] = True
                    server.sendall(chunk)
                    continue
                pending += chunk
                while b"\r\n" in pending and not in_data:
                    line, pending = pending.split(b"\r\n", 1)
                    if mode == "hang_at_rset" and line.strip().upper() == b"RSET":
                        self._hang()
                        hanging, pending = True, b""
                        break
                    server.sendall(line + b"\r\n")
                    if line.strip().upper() == b"DATA":
                        in_data, tail = True, b"\r\n"
                        state["data_sent"] = True
                        if mode == "hang_after_data":
                            self._hang()
                            return              # stop reading: the gateway's writes stall
                if in_data and pending:
                    chunk, pending = pending, b""
                    tail = (b"\r\n" + chunk)[-5:]
                    if b"\r\n.\r\n" in b"\r\n" + chunk:
                        in_data = False
                        state["final_dot"] = True
                    server.sendall(chunk)
        except OSError:
            pass
        finally:
            if mode != "hang_after_data" or not state["data_sent"]:
                with contextlib.suppress(OSError):
                    server.shutdown(socket.SHUT_WR)
        with self._lock:
            self._open.discard(client)          # end of input or reset: the gateway closed

    def _server_to_client(self, server: socket.socket, client: socket.socket, mode: str,
                          state: dict) -> None:
        try:
            while chunk := server.recv(65536):
                if mode == "hang_before_reply" and state["final_dot"]:
                    self._hang()
                    return                      # the reply to the final dot is lost
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            if mode == "pass":
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
