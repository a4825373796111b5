# credbot: a static Go binary on distroless (no shell, no package manager,
# uid/gid 65532). Build with BuildKit (the default in Docker 23+):
#
#   docker build -t credbot:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/credbot:<tag> .
#
# The entrypoint is the binary and the default command serves Slack; any other
# subcommand replaces it, e.g.
#   docker run --rm credbot:dev policy test /etc/credbot/policies
#   docker run --rm credbot:dev --version
# Pass the commit so that --version and credbot_build_info name it:
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t credbot:dev .
#
# Keep GO_VERSION equal to go.mod's go line (tools/dockerfile_test.go checks).
ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles.
# Not pinned by digest: the build stage ships nothing but the binary. Pin it
# (crane digest golang:<version>-bookworm) if your supply-chain policy asks.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG REVISION=unknown
# Never download another toolchain: the image's Go must match go.mod.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 \
    go build -trimpath -ldflags="-s -X main.buildRevision=${REVISION}" -o /out/credbot ./cmd/bot

# gcr.io/distroless/static-debian12:nonroot, pinned by digest. The digest was
# taken from public Dockerfiles that pin this tag (one dated 2026-08-26); it
# was not resolved against the registry here, which this build machine cannot
# reach. Refresh it with:
#   crane digest gcr.io/distroless/static-debian12:nonroot
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/credbot /credbot
# The shipped example policy, as a default for `docker run` and local trials.
# In Kubernetes the chart mounts your policy over this directory.
COPY policies/ /etc/credbot/policies/
ENV CREDBOT_POLICY_DIR=/etc/credbot/policies
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/credbot"]
CMD ["serve"]
