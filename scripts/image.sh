#!/usr/bin/env bash
# Builds the sessiond container image without a Docker daemon and without
# pulling anything: the same image as the Dockerfile, written to
# sessiond-image.tar for `docker load -i` or `podman load -i`.
# Usage: bash scripts/image.sh [-o FILE] [-layout DIR] [-tag NAME:TAG] [-arch GOARCH] [-binary PATH]
# (go run ./internal/ociimage -h says more). Needs Go and Debian's ca-certificates.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/ociimage "$@"
