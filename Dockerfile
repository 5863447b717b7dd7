# walletgate gateway image. Configure it with WALLETGATE_* environment variables (see
# docs/operations.md); docker-compose.yml wires it to PostgreSQL 16 and Redis 7.

# --- build: one wheel for walletgate (migrations included as package data) -------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY walletgate ./walletgate
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime ---------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WALLETGATE_HOST=0.0.0.0 \
    WALLETGATE_PORT=8545 \
    WALLETGATE_DATA_DIR=/var/lib/walletgate
RUN groupadd --system --gid 10001 walletgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/walletgate --create-home walletgate
COPY --from=build /wheels /wheels
# The dependencies are pinned in pyproject.toml, hence in the wheel's metadata.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/walletgate
EXPOSE 8545
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('WALLETGATE_PORT', '8545')}/healthz\", timeout=2)"]
ENTRYPOINT ["walletgate"]
CMD ["serve"]
