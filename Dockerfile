# Quicksilver, the Mercure hub in C, as a container image (deploy/README.md has the details).
#
#   docker build -t quicksilver .                 (podman: add --format docker, which keeps the
#                                                  HEALTHCHECK; OCI images have none)
#   docker run -p 80:80 -e MERCURE_PUBLISHER_JWT_KEY=… -e MERCURE_SUBSCRIBER_JWT_KEY=… \
#              -v quicksilver-data:/data quicksilver
#
# The reference image's conventions: ports 80 and 443, SERVER_NAME and the MERCURE_*
# variables, /etc/caddy/Caddyfile and /etc/caddy/dev.Caddyfile, `mercure run --config …`.
# Unlike it, the hub runs as an unprivileged user, and keeps its data (the embedded store,
# the local certificate authority of `tls internal`) under the /data volume, so that the
# root file system can be read-only.

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- build: compiles the hub with the project's own bootstrap and CMake files ----
FROM ${DEBIAN_IMAGE} AS build
WORKDIR /src
# Build dependencies first, in a layer of their own (kept while the sources change).
COPY scripts/bootstrap scripts/bootstrap
RUN scripts/bootstrap build && rm -rf /var/lib/apt/lists/*
COPY . .
# The mercure target only, installed stripped into /stage; then the Debian packages holding
# the shared libraries it needs: what the final stage installs (apt brings their own
# dependencies), so that a new library needs no edit here.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build --target mercure \
 && DESTDIR=/stage cmake --install /build --component hub --strip \
 && objdump -p /stage/usr/bin/mercure | awk '$1 == "NEEDED" { print $2 }' | while read -r lib; do \
      dpkg -S "*/$lib" | cut -d: -f1; \
    done | sort -u > /stage/runtime-packages \
 && cat /stage/runtime-packages

# ---- final: the runtime libraries, the binary, its configuration ----
FROM ${DEBIAN_IMAGE}
COPY --from=build /stage/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
           /tmp/runtime-packages \
 && groupadd --system --gid 10001 quicksilver \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin quicksilver \
 && mkdir -p /data /config \
 && chown 10001:10001 /data /config \
 && chmod 0750 /data /config

COPY --from=build /stage/usr/bin/mercure /usr/bin/mercure
COPY deploy/docker/Caddyfile deploy/docker/dev.Caddyfile /etc/caddy/

# Data (the embedded store: /data/quicksilver/mercure.db) and configuration of the hub.
ENV XDG_DATA_HOME=/data \
    XDG_CONFIG_HOME=/config \
    SERVER_NAME=:80
VOLUME /data
WORKDIR /data
EXPOSE 80 443
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["mercure", "healthcheck", "--config", "/etc/caddy/Caddyfile"]

CMD ["mercure", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

# Last, so that new values rebuild no layer.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="Quicksilver" \
      org.opencontainers.image.description="A Mercure hub (Server-Sent Events pub/sub) written in C, compatible with the reference hub" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
