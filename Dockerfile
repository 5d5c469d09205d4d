# One image for the API, the worker, the migrations and the simulator.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md cli.py settings.py logs.py ./
COPY models ./models
COPY tasks ./tasks
COPY graphql_api ./graphql_api
COPY migrations ./migrations
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app mailings \
    && mkdir -p /app/data && chown mailings /app/data
USER mailings
EXPOSE 8000
CMD ["mailings", "serve", "--host", "0.0.0.0", "--port", "8000"]
