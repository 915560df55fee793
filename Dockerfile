# syntax=docker/dockerfile:1
# Cadenza: one image for every role, selected by its command (docs/deploy.md):
#   serve --role all|api --host 0.0.0.0 --port 8080 · worker --host 0.0.0.0 --port 9101 ·
#   agents --host 0.0.0.0 --port 9102 · mcp-proxy --host 0.0.0.0 --port 9103 · db upgrade
# Build from the repository root (BuildKit, the default builder since Docker 23):
#   docker build -t cadenza:latest .
# The wheel is built and installed by the same scripts CI runs natively
# (scripts/build_wheel.sh, scripts/install_wheel.sh; tests/deploy/test_wheel_smoke.py).

# ---- 1. the web console (src/cadenza/web/dist) ----------------------------------------------
FROM node:20-bookworm-slim AS console
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
# vite writes ../src/cadenza/web/dist
RUN npm run build

# ---- 2. the wheel, with the console inside ---------------------------------------------------
FROM python:3.11-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN pip install --no-cache-dir "build==1.6.1"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/build_wheel.sh scripts/
COPY src/ src/
COPY --from=console /src/src/cadenza/web/dist/ src/cadenza/web/dist/
RUN bash scripts/build_wheel.sh /wheels

# ---- 3. the runtime: the wheel installed into /opt/cadenza by the install script -------------
FROM python:3.11-slim-bookworm AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="cadenza" \
      org.opencontainers.image.description="Durable AI workflow orchestration: API and web console, engine workers, agent service, MCP proxy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cadenza-dev/cadenza" \
      org.opencontainers.image.documentation="https://github.com/cadenza-dev/cadenza/blob/main/docs/deploy.md"

# pip's cache stays out of the image. Byte code is compiled at build time, never at run time
# (the root filesystem may be read-only): pip compiles what it installs, even with
# PYTHONDONTWRITEBYTECODE, and compileall does the standard library (the base image ships it
# without .pyc files), so a restarted process does not recompile it in memory at every start
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    --mount=type=bind,source=scripts/install_wheel.sh,target=/tmp/install_wheel.sh \
    bash /tmp/install_wheel.sh /opt/cadenza /tmp/wheels/cadenza-*.whl \
    && python -m compileall -q -j 0 -x '/(test|tests|idle_test)/' /usr/local/lib/python3.11

# the one writable place besides /tmp: the SQLite database and its key files, when used
RUN groupadd --system --gid 10001 cadenza \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin cadenza \
    && install -d -o 10001 -g 10001 -m 0750 /data \
    && install -d -o root -g root -m 0755 /app

ENV PATH=/opt/cadenza/bin:$PATH \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    CADENZA_DATABASE_URL=sqlite:////data/cadenza.db \
    HEALTH_PORT=8080

USER 10001:10001
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8080 9101 9102 9103

# /health of the role's port: 8080 for serve; a role on another port sets HEALTH_PORT
# (worker 9101, agents 9102, mcp-proxy 9103). The slim image has no curl: Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/health', timeout=4)"]

ENTRYPOINT ["cadenza"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
