"""AutoThrottle that counts a 304 Not Modified as a real answer.

Scrapy's AutoThrottle never lets a non-200 response lower the delay between
requests, so that small error pages do not speed a crawl up against a
struggling server. A 304 is different: it is the server's genuine answer to a
conditional request, and as cheap for it as it looks. Without this, a re-crawl
of an unchanged site (almost all 304s) kept the delay set by the one large
feed download for its whole length and took longer than the first crawl.
"""

from __future__ import annotations

from typing import Any

from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Response


class ConditionalAwareAutoThrottle(AutoThrottle):
    def _adjust_delay(self, slot: Any, latency: float, response: Response) -> None:
        if response.status == 304:
            response = response.replace(status=200)
        super()._adjust_delay(slot, latency, response)
