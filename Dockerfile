# One image for the API, the worker, the migrations and the simulator (provider_sim,
# a development tool that nothing else imports).
#   docker build -t mailings .
#   docker run --rm mailings mailings --help
# Only the runtime dependencies, pinned with their hashes by requirements.prod.lock
# (`make lock` writes it beside requirements.lock, which adds the development
# tools); pip refuses any download whose hash the lock does not list.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.prod.lock ./
RUN pip install --no-compile --require-hashes -r requirements.prod.lock
COPY pyproject.toml README.md cli.py settings.py logs.py tallies.py ./
COPY models ./models
COPY tasks ./tasks
COPY graphql_api ./graphql_api
COPY migrations ./migrations
COPY provider_sim ./provider_sim
RUN pip install --no-compile --no-deps . \
    && python -m compileall -q /opt/venv

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    LOG_FORMAT=json DATA_DIR=/app/data
RUN groupadd --system --gid 10001 mailings \
    && useradd --system --uid 10001 --gid mailings --home-dir /app --shell /usr/sbin/nologin mailings \
    && mkdir -p /app/data && chown mailings:mailings /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000 8001 8002
CMD ["mailings", "serve", "--host", "0.0.0.0", "--port", "8000"]
