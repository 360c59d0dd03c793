"""Download failures as one readable line each."""

from __future__ import annotations

from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import response_status_message
from twisted.internet.error import (
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived


def describe_failure(failure: Failure) -> str:
    """What went wrong fetching a URL, in words a user can act on."""
    exc = failure.value
    if isinstance(exc, HttpError):
        return f"HTTP {response_status_message(exc.response.status)}"
    if isinstance(exc, DNSLookupError):
        return "DNS lookup failed (host unknown or no network)"
    if isinstance(exc, TimeoutError | TCPTimedOutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionLost | ResponseFailed | ResponseNeverReceived):
        return "connection lost before the response was complete"
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request ignored"
        return "forbidden by robots.txt" if "robots" in text.lower() else text
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
