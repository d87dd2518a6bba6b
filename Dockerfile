# Multi-stage build: a release binary on a slim Debian base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY assets ./assets
COPY templates ./templates
COPY migrations ./migrations
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
COPY tools ./tools
RUN cargo build --release --locked --bin leadchat

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /srv/leadchat leadchat
WORKDIR /srv/leadchat
COPY --from=build /src/target/release/leadchat /usr/local/bin/leadchat
COPY config ./config
COPY assets ./assets
COPY templates ./templates
RUN mkdir -p data outbox reports && chown -R leadchat data outbox reports
USER leadchat
ENV LEADCHAT_LISTEN=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["leadchat"]
CMD ["serve"]
