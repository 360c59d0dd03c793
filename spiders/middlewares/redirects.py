"""Redirects a monitor must not follow: back where it came from, or to another site.

Scrapy follows a loop until its redirect limit unless its duplicate filter
silently drops the repeated URL (then the run shows nothing at all), and it
drops a redirect to another host without telling the spider. This downloader
middleware sits before Scrapy's redirect middleware and refuses both, so the
request's errback records a reason on the run.
"""

from __future__ import annotations

from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from spiders.base import off_site, on_sites

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RedirectGuardMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        location = response.headers.get("Location")
        if response.status not in REDIRECTS or not location:
            return response
        target = response.urljoin(location.decode("latin-1").strip())
        visited = [*request.meta.get("redirect_urls", []), request.url]
        if target in visited:
            raise IgnoreRequest(f"redirect loop: {request.url} leads back to {target}")
        domains = list(getattr(self.crawler.spider, "allowed_domains", None) or [])
        if domains and not on_sites(target, domains):
            raise IgnoreRequest(f"redirected to {target}: {off_site(target, domains)}")
        return response
