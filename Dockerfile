# Image for the jobs ELT pipeline: the `extract` CLI (Kafka/users file -> Postgres raw)
# and the dbt project (raw -> staging -> marts). One image, many commands:
#   docker compose run --rm extractor python -m extract --help
# Pinned to an exact release; bump deliberately (tests/e2e/test_compose.py checks every image is pinned).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DBT_USE_COLORS=false \
    DBT_PROFILES_DIR=/app/dbt_project \
    DBT_PROJECT_DIR=/app/dbt_project \
    ELT_SOURCES_FILE=/app/sources.yml \
    ELT_ARCHIVE_DIR=/archive \
    ELT_STATE_DIR=/state

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies and package first so code-only changes to dbt_project keep this layer cached.
COPY pyproject.toml README.md ./
COPY extract ./extract
# /archive: raw retention's archive files; /state: the manifest of the last successful dbt build, which a
# rule change is measured against (volumes in compose; created here so the volumes belong to app).
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && mkdir -p /archive /state \
    && chown app:app /app /archive /state

# dbt writes target/, logs/ and .user.yml inside the project dir, so the runtime user owns it.
COPY --chown=app:app dbt_project ./dbt_project
# Every command reads the declared sources (ELT_SOURCES_FILE): topics, files, raw tables.
COPY sources.yml ./

USER app

CMD ["python", "-m", "extract", "--help"]
