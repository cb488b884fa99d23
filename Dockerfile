# syntax=docker/dockerfile:1
#
# Scorestream image: one image for every role, picked by the command:
#   docker build -t scorestream .
#   docker run --rm -e SCORESTREAM_KAFKA_BOOTSTRAP=broker:9092 scorestream topics create
#   docker run --rm -e SCORESTREAM_KAFKA_BOOTSTRAP=broker:9092 -p 6066:6066 scorestream worker
# docker-compose.yml runs the whole stack (Kafka, worker, simulator, Prometheus, Grafana).

# ---- build: wheels for the package and all its dependencies --------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A compiler, for any dependency without a prebuilt wheel for this platform (e.g. arm64).
# It stays in this stage: the runtime image has none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The build context is filtered by .dockerignore (sources and pyproject.toml only).
COPY . .
RUN pip wheel --wheel-dir /wheels .

# ---- runtime -------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCORESTREAM_HOME=/var/lib/scorestream

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels scorestream

# Unprivileged user; SCORESTREAM_HOME (worker state) is the only place it writes to.
RUN groupadd --system --gid 10001 scorestream \
    && useradd --system --uid 10001 --gid scorestream --no-create-home \
        --home-dir /var/lib/scorestream --shell /usr/sbin/nologin scorestream \
    && mkdir -p /var/lib/scorestream \
    && chown scorestream:scorestream /var/lib/scorestream

USER scorestream
WORKDIR /var/lib/scorestream

# Web servers with Prometheus metrics at /metrics: the worker (SCORESTREAM_WEB_PORT) and
# `scorestream challengers` (SCORESTREAM_CHALLENGERS_WEB_PORT).
EXPOSE 6066 6067

ENTRYPOINT ["scorestream"]
CMD ["worker"]
