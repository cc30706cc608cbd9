# Container image of the `wharf` binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wharf-gateway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/wharf --create-home wharf
COPY --from=build /src/target/release/wharf /usr/local/bin/wharf
USER wharf
WORKDIR /var/lib/wharf
ENV WHARF_LISTEN=0.0.0.0:8080 WHARF_DATA_DIR=/var/lib/wharf/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/wharf"]
CMD ["serve"]
