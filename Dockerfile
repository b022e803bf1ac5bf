# syntax=docker/dockerfile:1
#
# Teflon image: `teflon-server` (the entrypoint) and the `teflon` CLI, on distroless (glibc, CA
# certificates, no shell, no package manager), as the non-root user 65532.
#
#   docker build -t ghcr.io/teflon-io/teflon:0.1.0 .
#   docker run --rm ghcr.io/teflon-io/teflon:0.1.0 --help
#   docker run --rm --entrypoint /usr/local/bin/teflon ghcr.io/teflon-io/teflon:0.1.0 check --policies …
#
# The Deployment (deploy/manifests/deployment.yaml) mounts /etc/teflon (config + policies),
# /var/run/secrets/teflon (token), /etc/teflon-tls and an emptyDir at /var/lib/teflon, with a
# read-only root filesystem.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace: every member's manifest is needed to resolve it (.dockerignore keeps
# target/ and .git out).
COPY . .
# Release binaries without the debug info the workspace keeps for profiling.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p teflon-server -p teflon-cli \
 && install -D -m 0755 target/release/teflon-server /out/teflon-server \
 && install -D -m 0755 target/release/teflon /out/teflon

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# 2804: ingest, /metrics, /healthz, /readyz. 6443: custom.metrics.k8s.io.
EXPOSE 2804 6443
ENTRYPOINT ["/usr/local/bin/teflon-server"]
CMD ["--config", "/etc/teflon/config.yaml"]
