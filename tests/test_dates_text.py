"""Dates in the sites' own forms become UTC; text is cleaned and hashed stably."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.dates import parse_date
from pipeline.language import detect_language
from pipeline.text import clean_line, clean_text, content_hash

NOW = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-04-07T15:37:50.000Z", datetime(2023, 4, 7, 15, 37, 50, tzinfo=UTC)),
        ("2023-12-28T14:12:00+02:00", datetime(2023, 12, 28, 12, 12, tzinfo=UTC)),
        ("2023-09-13T14:05:00", datetime(2023, 9, 13, 11, 5, tzinfo=UTC)),  # naive: Kyiv, summer
        ("28 December 2023, 14:12", datetime(2023, 12, 28, 12, 12, tzinfo=UTC)),  # winter +2
        ("January 18, 2023 2:34 AM", datetime(2023, 1, 18, 0, 34, tzinfo=UTC)),
        ("Monday, 20 March 2023, 11:44", datetime(2023, 3, 20, 9, 44, tzinfo=UTC)),
        ("13 вересня 2023, 14:05", datetime(2023, 9, 13, 11, 5, tzinfo=UTC)),
        ("11 червня 2019, 11:02", datetime(2019, 6, 11, 8, 2, tzinfo=UTC)),
        ("13 сентября 2023, 14:05", datetime(2023, 9, 13, 11, 5, tzinfo=UTC)),
        ("Автор — П'ятниця, 29 серпня 2025, 13:04", datetime(2025, 8, 29, 10, 4, tzinfo=UTC)),
        ("13.09.2023 14:05", datetime(2023, 9, 13, 11, 5, tzinfo=UTC)),
    ],
)
def test_site_date_forms(text: str, expected: datetime) -> None:
    assert parse_date(text, now=NOW) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "yesterday's news", "1 min read", "2031-01-01T00:00:00Z", "1944-05-18"]
)
def test_unreadable_or_implausible_dates(text: str) -> None:
    assert parse_date(text, now=NOW) is None


def test_clean_text_keeps_paragraphs_and_drops_invisibles() -> None:
    raw = "  First\u00a0 para\u00adgraph \r\n\n\n\u200bSecond\tline  \n \n"
    assert clean_text(raw) == "First paragraph\nSecond line"
    assert clean_line("  Title\n with  break ") == "Title with break"
    assert clean_line("   ") is None


def test_content_hash_folds_case_quotes_and_apostrophes() -> None:
    a = "Об\u2019єднані «Діти війни»\n  повідомили"
    b = 'об\'єднані "діти війни" повідомили'
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(a + " більше")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Росія незаконно вивезла тисячі українських дітей, повідомив уповноважений.", "uk"),
        ("Россия незаконно вывезла тысячи украинских детей, сообщил уполномоченный.", "ru"),
        ("Russia illegally removed thousands of Ukrainian children, the ombudsman said.", "en"),
    ],
)
def test_language_is_detected_from_text(text: str, lang: str) -> None:
    assert detect_language(text, fallback="xx") == lang


def test_language_falls_back_on_thin_text() -> None:
    assert detect_language("OK", fallback="uk") == "uk"


@given(st.text(max_size=300))
def test_cleaning_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once


@given(st.text(alphabet=st.sampled_from(list("аб'’ʼ «»\"\n\u00ad\u200bAb ")), max_size=60))
def test_fingerprint_is_stable_under_cleaning(text: str) -> None:
    assert content_hash(clean_text(text)) == content_hash(text)
