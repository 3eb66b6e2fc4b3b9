# syntax=docker/dockerfile:1

# casarray container image, built in two stages:
#   build    the official Rust image (Debian bookworm) compiles the release
#            binary from the locked dependencies (Cargo.lock, --locked);
#   runtime  Debian bookworm-slim with the binary, a health check script and
#            an unprivileged user: no compiler, no sources, no shell tools
#            beyond what bookworm-slim has.
#
#   docker build -t casarray .
#   docker run -d --name casarray \
#     -p 443:8443 \
#     -v /srv/casarray:/etc/casarray:ro \
#     -v casarray-state:/var/lib/casarray \
#     --read-only --cap-drop ALL --security-opt no-new-privileges \
#     --stop-timeout 40 \
#     casarray
#
# /etc/casarray holds casarray.toml, the certificates and the admin token
# (see deploy/casarray.toml); in the container the config listens on
# 0.0.0.0:8443 for HTTPS and keeps the admin listener on 127.0.0.1:9090,
# where only the health check inside the container reaches it. The stop
# timeout must exceed [proxy] drain_timeout (default 30 s): SIGTERM lets
# in-flight requests finish, then casarray exits 0. See README, "Deploying".

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest, the lock file and the sources
# (benches/ because Cargo.toml declares a bench target). .dockerignore
# keeps everything else, keys included, out of the context.
# protoc: the etcd client crate compiles etcd's API (.proto) at build time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Cache mounts keep the crate downloads and the build directory between
# builds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked --bin casarray \
    && install -D -m 0755 target/release/casarray /out/casarray

FROM debian:bookworm-slim AS runtime
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it and
# host directories can be given to it.
RUN groupadd --gid 10001 casarray \
    && useradd --no-log-init --uid 10001 --gid casarray --no-create-home \
       --home-dir /var/lib/casarray --shell /usr/sbin/nologin casarray \
    && install -d -o casarray -g casarray -m 0750 /var/lib/casarray \
    && install -d -m 0755 /etc/casarray
COPY --from=build /out/casarray /usr/local/bin/casarray
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/casarray-healthcheck

# The admin address the health check asks (GET /healthz); keep it in step
# with [listen] admin. A wildcard admin address is reached on 127.0.0.1 too.
ENV CASARRAY_ADMIN=127.0.0.1:9090
USER 10001:10001
WORKDIR /var/lib/casarray
# HTTPS (listen.https = "0.0.0.0:8443": no privilege needed to bind it) and
# the admin listener. EXPOSE publishes nothing: the admin port answers from
# outside the container only if the config listens on a non-loopback
# address, which casarray refuses without [admin] token_file.
EXPOSE 8443 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/casarray-healthcheck"]
ENTRYPOINT ["/usr/local/bin/casarray"]
CMD ["serve", "--config", "/etc/casarray/casarray.toml"]
