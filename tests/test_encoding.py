"""Which encoding a page is really in, when its declaration may be wrong."""

from __future__ import annotations

import pytest

from spiders.middlewares.encoding import actual_encoding
from tests.fault_web import EN_BODY, UK_BODY, article_html

UK = article_html("Росія вивезла дітей", UK_BODY, charset=None)


@pytest.mark.parametrize(
    ("body", "declared", "expected"),
    [
        (UK.encode("utf-8"), "utf-8", None),  # as declared
        (UK.encode("cp1251"), "cp1251", None),
        (EN_BODY.encode("ascii"), "cp1252", None),  # ASCII reads the same in all of them
        (UK.encode("koi8-u"), "utf-8", "koi8-u"),
        (UK.encode("cp1251"), "utf-8", "cp1251"),
        (UK.encode("cp1251"), "iso-8859-1", "cp1251"),
        (UK.encode("cp1251"), "cp1252", "cp1251"),
        # UTF-8 with one broken byte is still UTF-8, not a page in another encoding.
        (UK.encode("utf-8").replace("дітей".encode(), b"\xff", 1), "utf-8", None),
        # A Western page in its own encoding is left alone.
        (("Café society: " + EN_BODY).encode("cp1252"), "cp1252", None),
    ],
)
def test_actual_encoding(body: bytes, declared: str, expected: str | None) -> None:
    assert actual_encoding(body, declared) == expected
