# deportwatch: the background service (deportwatch schedule) and its one-off commands.
# Build: docker compose build · Run: docker compose up -d (see README "Running as a service").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Every dependency ships a manylinux wheel (lxml, psycopg[binary]): no compiler.
# The project's own files only; data, logs and secrets never enter the image.
COPY pyproject.toml README.md ./
COPY deportwatch ./deportwatch
COPY service ./service
COPY spiders ./spiders
COPY pipeline ./pipeline
COPY db ./db
COPY scheduler.py sources.toml keywords.toml frames.toml ./
RUN pip install . \
    && useradd --create-home --uid 10001 deportwatch \
    && mkdir -p /app/data \
    && chown deportwatch:deportwatch /app/data

USER deportwatch

# simplemma's word lists as compact tries, built once into the service user's
# cache (pipeline/lexicon.py), so no crawl pays the few seconds to build them.
RUN python -m pipeline.lexicon

# The sources, keywords and frames files are mounted over these by docker-compose.yml,
# so users edit them on the host. The database URL and alert URLs come from the
# environment at run time.
ENV DEPORTWATCH_SOURCES=/app/sources.toml \
    DEPORTWATCH_KEYWORDS=/app/keywords.toml \
    DEPORTWATCH_LOG_DIR=/app/data/logs \
    DEPORTWATCH_SPOOL_DIR=/app/data/spool
VOLUME ["/app/data"]

# Unhealthy when the archive cannot be read or any enabled source is unhealthy.
HEALTHCHECK --interval=5m --timeout=60s --start-period=15m --retries=1 \
    CMD ["deportwatch", "status"]

CMD ["deportwatch", "schedule"]
