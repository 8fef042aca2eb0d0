# redactd container image.
#
#   docker build -t redactd:0.1.0 .
#
# Build stage: scripts/build-release.sh, the same script CI runs before its
# end-to-end tests (so the image holds the binary that was tested, built with
# the same command and profile). The release profile in Cargo.toml sets fat
# LTO and one codegen unit: the hot path crosses regex, aho-corasick and our
# engine, and cross-crate inlining pays there.
FROM rust:1.95-slim-bookworm AS build
# librdkafka (bundled by the rdkafka crate) builds with make and links
# OpenSSL; zlib is built in statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN sh scripts/build-release.sh \
 && mkdir -p /out/var/lib/redactd \
 && cp target/release/redactd /out/redactd

# Runtime stage: distroless with glibc and OpenSSL 3 (the build stage's
# Debian 12; `ldd redactd`: libssl, libcrypto, libgcc_s, libc), no
# shell, no package manager; runs as the non-root user 65532 by default. The
# agent writes only under its data dir, a volume, so the root filesystem can
# be read-only. (The DaemonSet runs it as uid 0 with every capability
# dropped, because the kubelet's log files are root-only: see
# deploy/kubernetes/daemonset.yaml.)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/redactd /usr/local/bin/redactd
COPY --from=build --chown=65532:65532 /out/var/lib/redactd /var/lib/redactd
ENV REDACTD_DATA_DIR=/var/lib/redactd
VOLUME ["/var/lib/redactd"]
USER 65532:65532
EXPOSE 9598
# Without arguments: a stdin-to-stdout filter (`docker run -i redactd < app.log`).
ENTRYPOINT ["/usr/local/bin/redactd"]
