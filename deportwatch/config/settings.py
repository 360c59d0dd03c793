"""Runtime settings: one pydantic-settings object, built once and passed down explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deportwatch.config.errors import ConfigError
from deportwatch.config.sources import check_interval

DEFAULT_USER_AGENT = (
    "deportwatch/0.1 (+https://github.com/deportwatch/deportwatch; "
    "archive of reports on deported Ukrainians)"
)


class Settings(BaseSettings):
    """Every knob of a deployment, read from DEPORTWATCH_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="DEPORTWATCH_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///data/archive.db",
        description="SQLAlchemy URL of the archive (SQLite file by default).",
    )
    sources: Path = Field(default=Path("sources.toml"), description="The sources file.")
    keywords: Path = Field(default=Path("keywords.toml"), description="The flagging taxonomy.")
    log_dir: Path = Field(default=Path("data/logs"), description="Where crawl logs are kept.")
    spool_dir: Path = Field(
        default=Path("data/spool"),
        description="Where fetched items wait while the archive cannot take them.",
    )
    capture: bool = Field(
        default=True,
        description="Keep every page the crawl keeps, as fetched, in WARC files (evidence).",
    )
    warc_dir: Path = Field(
        default=Path("data/warc"), description="Where the evidence WARC files are written."
    )
    warc_max_bytes: int = Field(
        default=1024**3, ge=1024, description="A new WARC file is begun once one reaches this."
    )
    user_agent: str = Field(default=DEFAULT_USER_AGENT, description="User-Agent of every request.")
    obey_robots: bool = True
    download_timeout: float = Field(default=30.0, gt=0)
    download_delay: float = Field(default=1.0, ge=0, description="Seconds between requests.")
    concurrent_requests_per_domain: int = Field(
        default=2, ge=1, le=2, description="Requests at once per site: 1 or 2, to stay polite."
    )
    max_response_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    duplicate_threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Estimated Jaccard similarity above which two bodies are one story.",
    )
    recheck_hours: float = Field(
        default=48,
        ge=0,
        description="Archived entries younger than this are fetched again (edits come early).",
    )
    recheck_minutes: float = Field(
        default=15,
        ge=0,
        description="Least minutes between two re-checks of one article (more as it ages).",
    )
    request_batch: int = Field(
        default=200,
        ge=1,
        description="Article requests handed to Scrapy at a time; the rest wait as plain data.",
    )
    retry_times: int = Field(default=3, ge=0, le=10)
    retry_backoff: float = Field(
        default=2.0, ge=0, description="Seconds before the first retry; doubles each time."
    )

    # The background service (deportwatch schedule).
    max_concurrent_crawls: int = Field(
        default=2, ge=1, le=32, description="Crawls (child processes) running at once."
    )
    crawl_timeout: float = Field(
        default=1800, gt=0, description="Seconds before a crawl is stopped as timed out."
    )
    crawl_start: Literal["fork", "command"] = Field(
        default="fork",
        description=(
            "How a crawl's process starts: forked from a process that has imported the "
            "crawler's libraries (fork), or a new interpreter (command)."
        ),
    )
    shutdown_grace: float = Field(
        default=60, ge=0, description="Seconds running crawls get to finish on SIGTERM."
    )
    default_interval: str = Field(
        default="1h", description="How often a source without a schedule is crawled."
    )
    schedule_jitter: float = Field(
        default=120,
        ge=0,
        description="Most seconds a run is moved at random (never over a tenth of its interval).",
    )
    misfire_grace: float = Field(
        default=900, ge=1, description="Seconds a run missed (machine asleep, busy) may be late."
    )
    alert_urls: str = Field(
        default="",
        description="Apprise URLs that receive alerts, separated by spaces or commas.",
    )
    alert_max_age_hours: float = Field(
        default=72,
        gt=0,
        description="Alerts older than this are no longer sent (a new target gets no backlog).",
    )

    # Crawl workers on several machines (deportwatch worker; service/queue.py).
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://HOST:6379/0 or amqp://USER:PASS@HOST//). Set: "
        "schedule only enqueues due crawls and deportwatch worker runs them.",
    )
    broker_visibility_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds before a crawl taken by a worker that vanished is delivered "
        "again by Redis (RabbitMQ does it when the worker's connection drops), and before "
        "schedule sends again a crawl that never started; longer than the longest crawl "
        "timeout. Unset: that timeout + 5 min.",
    )
    queue_tick: float = Field(
        default=30,
        gt=0,
        description="Seconds between two looks for due sources by a schedule that enqueues.",
    )

    # The read-only web view (deportwatch serve).
    verify_interval: str = Field(
        default="1d",
        description="service: how often flagged articles are asked again (deportwatch verify "
        "--flagged); 0 turns it off.",
    )
    web_host: str = Field(
        default="127.0.0.1", description="Address the web view listens on (0.0.0.0: everyone)."
    )
    web_port: int = Field(default=8080, ge=1, le=65535, description="Port of the web view.")
    web_database_url: str | None = Field(
        default=None,
        description="The archive as the web view opens it, e.g. with a read-only PostgreSQL "
        "role; the database URL when unset.",
    )

    @field_validator("default_interval")
    @classmethod
    def _valid_interval(cls, value: str) -> str:
        return check_interval(value)

    @field_validator("verify_interval")
    @classmethod
    def _valid_verify_interval(cls, value: str) -> str:
        return value if value == "0" else check_interval(value)


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a bad environment value into a ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"setting DEPORTWATCH_{field.upper()}: {message} (got {err.get('input')!r})"
        ) from None
