"""A fresh schema of the given PostgreSQL database for one benchmark's archive."""

from __future__ import annotations

from sqlalchemy import text

from db.engine import make_engine


def fresh_schema(url: str, schema: str) -> str:
    """Drop and recreate ``schema``; the URL that puts every table in it."""
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return schema_url(url, schema)


def schema_url(url: str, schema: str) -> str:
    """The URL that puts every table in ``schema`` (as filled by an earlier run)."""
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
