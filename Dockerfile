# syntax=docker/dockerfile:1
# The appliance image (docs/architecture.md#packaging): Synapse + the built-in MAS + the
# supervisor, for Cloudron and plain Docker. Pinned versions come from the files the tests use:
# rust-toolchain.toml (Rust, the builder's tag below) and start/lib/versions.sh (Synapse, read by
# start/lib/venv.sh). tests/e2e/packaging.test.mjs checks that they match.
#
#   docker build -t matrix-appliance .
#   docker run --env-file appliance.env -v appliance-data:/app/data --read-only \
#     --tmpfs /run --tmpfs /tmp -p 8000:8000 matrix-appliance

# --- 1. Both binaries, with the pinned toolchain ------------------------------------------------
FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY supervisor supervisor
COPY mas mas
COPY templates templates
COPY start/lib/versions.sh start/lib/versions.sh
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/appliance target/release/mas-cli /out/

# --- 2. The Synapse venv from PyPI, built by the script the tests use ---------------------------
# Same base image and Python as the final stage, at the same path (/app/code/venv).
FROM docker.io/library/debian:bookworm-slim AS synapse
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
COPY start/lib/common.sh start/lib/versions.sh start/lib/venv.sh /src/start/lib/
RUN bash -c 'set -euo pipefail; for f in common versions venv; do source /src/start/lib/$f.sh; done; venv_ensure_at /app/code/venv'

# --- 3. Runtime: slim Debian with only the shared libraries Synapse needs ------------------------
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1000 cloudron \
    && useradd --system --uid 1000 --gid cloudron --home-dir /app/data --no-create-home \
       --shell /usr/sbin/nologin cloudron
COPY --from=synapse /app/code/venv /app/code/venv
COPY --from=build /out/appliance /out/mas-cli /app/code/
COPY templates/mas /app/code/templates/mas
COPY assets /app/code/assets
COPY start/start.sh /app/code/start/start.sh

# Outside Cloudron (CLOUDRON unset) these are what Cloudron mode implies anyway: started as
# root, the supervisor gives /app/data to `cloudron` and drops to it; started with --user, it
# runs as that user.
ENV APPLIANCE_DATA_DIR=/app/data \
    APPLIANCE_RUN_DIR=/run/appliance \
    APPLIANCE_USER=cloudron \
    APPLIANCE_SYNAPSE_PYTHON=/app/code/venv/bin/python \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app/code
VOLUME /app/data
EXPOSE 8000
HEALTHCHECK --start-period=60s --interval=30s --timeout=10s CMD ["/app/code/appliance", "health"]
CMD ["/app/code/start/start.sh"]
