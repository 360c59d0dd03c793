"""The capture reference a spider copies from a response into its items.

``spiders/middlewares/capture.py`` writes a page's WARC record and puts where
it wrote it in the request's meta under ``CAPTURE_KEY``.
"""

from __future__ import annotations

from typing import Any

from scrapy.http import Response

CAPTURE_KEY = "deportwatch_capture"


def capture_of(response: Response) -> dict[str, Any] | None:
    """Where the response an item was read from was archived, if it was."""
    ref = response.meta.get(CAPTURE_KEY) if response.request is not None else None
    return dict(ref) if ref else None
