# redactd container image.
#
# Build stage: the same release build command as everywhere else
# (`cargo build --release --locked --bin redactd`); the release profile in
# Cargo.toml sets fat LTO and one codegen unit (the hot path crosses regex,
# aho-corasick and our engine, and cross-crate inlining pays there).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin redactd

# Runtime stage: distroless with glibc, no shell, runs as a non-root user.
# Nothing is written inside the image, so a read-only root filesystem works.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/redactd /usr/local/bin/redactd
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/redactd"]
