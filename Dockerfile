# syntax=docker/dockerfile:1
# The `wharf` image: the registry binary on a slim Debian, as a non-root user.
#
#   docker build -t wharf .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://... -v wharf:/var/lib/wharf wharf
#
# The build stage runs exactly the release build the test suite checks
# (tests/deploy): `cargo build --release --locked -p wharf-gateway --bin wharf`,
# so the image holds the binary of the locked dependency set the tests ran.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# Caches keep the crate downloads and the target directory between builds; the
# binary is copied out of the cache so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wharf-gateway --bin wharf \
    && install -D -m 0755 target/release/wharf /out/wharf

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: TLS to S3 and to PostgreSQL. Nothing else: the health check
# is `wharf probe`, not curl. Debian's point releases replace package
# versions, so they are not pinned here; rebuild to take security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wharf \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/wharf \
        --no-create-home --shell /usr/sbin/nologin wharf \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/wharf
COPY --from=build /out/wharf /usr/local/bin/wharf
USER 10001:10001
WORKDIR /var/lib/wharf
# Filesystem blobs (/var/lib/wharf/storage), the token-signing key
# (/var/lib/wharf/secrets) and, without a database URL, the embedded
# PostgreSQL's files (which this image cannot run: it has no PostgreSQL).
VOLUME ["/var/lib/wharf"]
EXPOSE 8080
# GET /api/v2.0/health on the configured listen address (8080 by default):
# healthy when the database and the blob store answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["wharf", "probe"]
ENTRYPOINT ["wharf"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/wharf"]
