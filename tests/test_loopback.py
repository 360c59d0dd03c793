"""The loopback server stays quiet when a client hangs up, and only then."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from tests.loopback import LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    answered = threading.Event()

    def do_GET(self) -> None:
        try:
            if self.path == "/broken":
                raise ValueError("a bug in the handler")
            self.send_response(200)
            self.end_headers()
            for _ in range(2000):  # far more than the client reads
                self.wfile.write(b"x" * 65536)
        finally:
            _Handler.answered.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _server() -> Iterator[int]:
    server = LoopbackServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = False  # so server_close() waits for the handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _hang_up(port: int, path: str) -> None:
    """Ask for ``path``, read a little, and reset the connection."""
    _Handler.answered.clear()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.recv(1024)
        # SO_LINGER 0: close sends a reset, as a crawler dropping a download does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert _Handler.answered.wait(10)


def test_a_client_hanging_up_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with _server() as port:
        _hang_up(port, "/big")
    assert capsys.readouterr().err == ""


def test_a_handler_bug_is_still_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with _server() as port:
        _hang_up(port, "/broken")
    assert "ValueError: a bug in the handler" in capsys.readouterr().err
