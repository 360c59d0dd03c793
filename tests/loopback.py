"""The HTTP server every loopback test site runs on."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """A threading server that says nothing when a client hangs up mid-answer.

    Crawls in the tests give up on purpose (a download cap, a timeout, a
    cancelled run), and the handler writing to that socket then fails with a
    reset or a broken pipe. The standard server prints that traceback to
    whatever ``sys.stderr`` is at that moment, from a thread that can outlive
    its test, into the next test's captured CLI output. Any other handler
    error is still printed.
    """

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]
