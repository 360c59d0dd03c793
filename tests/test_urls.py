"""Canonical URLs: the spellings of one page meet; different pages never do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.urls import canonical_url

BASE = "https://kyivindependent.com/ombudsman-31-children-brought-back"


@pytest.mark.parametrize(
    "variant",
    [
        BASE,
        BASE + "/",
        "https://www.kyivindependent.com/ombudsman-31-children-brought-back/",
        "HTTPS://KyivIndependent.COM./ombudsman-31-children-brought-back",
        "https://kyivindependent.com:443/ombudsman-31-children-brought-back/",
        BASE + "/?utm_source=rss&utm_medium=feed",
        BASE + "/?fbclid=IwAR0abc&gclid=xyz",
        BASE + "/#comments",
        BASE + "/amp/",
        BASE + "/amp",
        BASE + "/?amp=1",
        "https://amp.kyivindependent.com/ombudsman-31-children-brought-back/",
        "https://m.kyivindependent.com/ombudsman-31-children-brought-back",
    ],
)
def test_variants_meet(variant: str) -> None:
    assert canonical_url(variant) == BASE


def test_meaningful_query_is_kept_and_sorted() -> None:
    assert canonical_url("https://suspilne.media/latest/?page=2&lang=uk&utm_campaign=x") == (
        "https://suspilne.media/latest?lang=uk&page=2"
    )


def test_ukrinform_amp_path() -> None:
    assert canonical_url(
        "https://www.ukrinform.net/amp/rubric-ato/3666208-children.html"
    ) == canonical_url("https://www.ukrinform.net/rubric-ato/3666208-children.html")


def test_non_default_port_is_kept() -> None:
    assert canonical_url("http://127.0.0.1:8080/a/") == "http://127.0.0.1:8080/a"


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(st.lists(segment, min_size=1, max_size=4), st.booleans())
def test_canonicalization_is_idempotent(parts: list[str], slash: bool) -> None:
    url = "https://www.pravda.com.ua/" + "/".join(parts) + ("/" if slash else "")
    once = canonical_url(url)
    assert canonical_url(once) == once


@given(st.lists(segment, min_size=1, max_size=3), st.lists(segment, min_size=1, max_size=3))
def test_different_article_paths_never_meet(a: list[str], b: list[str]) -> None:
    a = [p for p in a if p != "amp"] or ["x"]
    b = [p for p in b if p != "amp"] or ["y"]
    if a == b:
        return
    assert canonical_url("https://nv.ua/" + "/".join(a)) != canonical_url(
        "https://nv.ua/" + "/".join(b)
    )
