"""Retries that back off: a failing site gets more breathing room at every attempt."""

from __future__ import annotations

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.settings import BaseSettings
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import reactor
from twisted.internet.task import deferLater

BACKOFF_META = "deportwatch_backoff"


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry middleware, with an exponential delay before each retry.

    The delay is ``RETRY_BACKOFF_BASE * 2**(attempt-1)``, raised to the
    server's ``Retry-After`` when it sends one, and capped at
    ``RETRY_BACKOFF_MAX`` so a crawl never stalls for long.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.base = settings.getfloat("RETRY_BACKOFF_BASE", 2.0)
        self.cap = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)
        self._retry_after: float = 0.0

    def process_response(self, request, response, spider=None):  # type: ignore[no-untyped-def]
        header = response.headers.get("Retry-After")
        try:
            self._retry_after = float(header) if header else 0.0
        except ValueError:
            self._retry_after = 0.0  # an HTTP date: fall back to our own backoff
        return super().process_response(request, response)

    def _retry(self, request, reason):  # type: ignore[no-untyped-def]
        retry = super()._retry(request, reason)
        if isinstance(retry, Request):
            attempt = int(retry.meta.get("retry_times", 1))
            delay = max(self.base * 2 ** (attempt - 1), self._retry_after)
            retry.meta[BACKOFF_META] = min(delay, self.cap)
        self._retry_after = 0.0
        return retry

    async def process_request(self, request: Request) -> None:
        delay = request.meta.pop(BACKOFF_META, 0.0)
        if delay > 0:
            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))
