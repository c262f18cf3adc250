# The sessiond image: one static binary on an empty base, run as an
# unprivileged user. scripts/image.sh builds the same image without a Docker
# daemon (internal/ociimage), and its test checks that this file says the
# same. docs/deploy.md, "Container image", tells how to run it.
#
#   docker build -t sessiond \
#     --build-arg VERSION="$(git describe --tags --always)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static, so it runs with no libc. `sessiond version` reads the version and
# commit from the build information Go records from the git clone in the
# build context (nothing when the context has no .git directory).
RUN CGO_ENABLED=0 go build -buildvcs=auto -trimpath -ldflags='-s -w' -o /rootfs/sessiond ./cmd/sessiond
# Everything the final image holds, with its owners and modes: COPY --from
# keeps them for what lies below the copied directory.
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/data /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && cp internal/ociimage/etc/passwd internal/ociimage/etc/group /rootfs/etc/ \
 && chmod 0755 /rootfs/sessiond /rootfs/etc /rootfs/etc/ssl /rootfs/etc/ssl/certs \
 && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/etc/ssl/certs/ca-certificates.crt \
 && chown 65532:65532 /rootfs/data && chmod 0700 /rootfs/data \
 && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/sessiond/sessiond" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /rootfs/ /
# The admin listener (SESSIOND_ADMIN_ADDR) binds every interface inside the
# container so it can be published, but it must stay on a private network:
# never publish 8081 where the public can reach it.
ENV SESSIOND_ADDR=:8080 SESSIOND_DATA_DIR=/data SESSIOND_ADMIN_ADDR=:8081
EXPOSE 8080 8081
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/sessiond", "healthcheck"]
ENTRYPOINT ["/sessiond"]
