"""Download failures as one readable line each."""

from __future__ import annotations

import re

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import response_status_message
from twisted.internet import error as twisted_errors
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

# Scrapy 2.13+ raises its own exception types; the Twisted ones can still
# surface from other download handlers, so both are named.
_DNS = (CannotResolveHostError, twisted_errors.DNSLookupError)
_TIMEOUT = (DownloadTimeoutError, twisted_errors.TimeoutError, twisted_errors.TCPTimedOutError)
_REFUSED = (DownloadConnectionRefusedError, twisted_errors.ConnectionRefusedError)
_LOST = (
    ResponseDataLossError,
    twisted_errors.ConnectionLost,
    ResponseFailed,
    ResponseNeverReceived,
)
_MESSAGES: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    (_DNS, "DNS lookup failed (unknown host or no network)"),
    (_TIMEOUT, "timed out"),
    (_REFUSED, "connection refused"),
    (_LOST, "connection lost before the response was complete"),
)
SIZE_LIMIT = "DEPORTWATCH_MAX_RESPONSE_BYTES"


def describe_failure(failure: Failure) -> str:
    """What went wrong fetching a URL, in words a user can act on."""
    exc = failure.value
    if isinstance(exc, HttpError):
        return f"HTTP {response_status_message(exc.response.status)}"
    if isinstance(exc, DownloadCancelledError):
        # Only the size limit cancels a download here; Scrapy names the sizes when
        # the server declared its length, and nothing when the body outgrew it.
        declared = re.search(r"receive (\d+) bytes .* max size \((\d+)\)", str(exc))
        if declared:
            size, limit = (int(n) for n in declared.groups())
            return (
                f"refused: over the size limit ({size:,} bytes declared, limit {limit:,}: "
                f"{SIZE_LIMIT})"
            )
        return f"refused: over the size limit ({SIZE_LIMIT}); the download was cut off"
    if isinstance(exc, IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(exc):
        return f"refused: over the size limit once decompressed ({SIZE_LIMIT})"
    for types, message in _MESSAGES:
        if isinstance(exc, types):
            return message
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request ignored"
        return "forbidden by robots.txt" if "robots" in text.lower() else text
    if isinstance(exc, DownloadFailedError):
        return f"download failed: {exc}"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
