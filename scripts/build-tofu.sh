#!/usr/bin/env bash
# Builds OpenTofu's `tofu` from its Go module, pinned in testkit/go/tofu/{go.mod,go.sum},
# into <tools>/bin/tofu, where <tools> is $DRIFTLESS_TOOLS (a relative path is taken from
# the repo root), else <repo>/.tools. scripts/setup-tools.sh runs it; the Dockerfile's tofu
# stage runs it with the same go.mod, so the tests and the runner image run the same tofu.
#
# Idempotent: when <tools>/bin/tofu reports the pinned version and was built from the same
# go.mod/go.sum and recipe (a stamp file records them), nothing is built and Go is not
# needed. Set DRIFTLESS_REBUILD=1 to force a rebuild.
#
# Only the Go module proxy is used (through `go`'s own GOPROXY setting).
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir="$repo/testkit/go/tofu"
tools_root=${DRIFTLESS_TOOLS:-$repo/.tools}
[[ $tools_root == /* ]] || tools_root="$repo/$tools_root"
bin="$tools_root/bin/tofu"
stamp_file="$tools_root/bin/.tofu-build-stamp"

log() { printf 'build-tofu: %s\n' "$*" >&2; }
elapsed() { echo $(($(date +%s) - start)); }

# The pinned version, read from go.mod itself so it cannot disagree with what is built.
version=$(sed -n 's/^require github.com\/opentofu\/opentofu v\([0-9][^ ]*\)$/\1/p' "$mod_dir/go.mod")
[[ -n $version ]] || {
    log "error: $mod_dir/go.mod has no 'require github.com/opentofu/opentofu vX.Y.Z' line"
    exit 1
}
# What the build does besides go.mod/go.sum (OpenTofu's release flags, .goreleaser.yaml);
# change it when the recipe changes so that an existing binary is rebuilt. The Go version is
# left out on purpose: the binary is OpenTofu's release either way, and a toolchain update
# should not cost every machine a rebuild.
recipe="trimpath ldflags=-s,-w,dev=no cgo=0"
stamp="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -d' ' -f1) $recipe"

tofu_version() {
    # Prints e.g. "1.10.10", or nothing if the binary is missing or broken.
    [[ -x $bin ]] || return 0
    HOME=$tools_root TF_CLI_CONFIG_FILE=/dev/null "$bin" version -json 2>/dev/null |
        sed -n 's/.*"terraform_version": *"\([^"]*\)".*/\1/p' || true
}

if [[ ${DRIFTLESS_REBUILD:-0} != 1 && $(tofu_version) == "$version" && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    log "tofu $version: up to date in $bin (set DRIFTLESS_REBUILD=1 to rebuild)"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    log "error: 'go' is not on PATH; Go 1.24.13 or later is needed to build tofu $version"
    exit 1
fi
# As scripts/build-control-plane.sh: the installed toolchain only, exactly what go.sum pins,
# static binaries.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$tools_root/bin"
staging=$(mktemp -d "$tools_root/bin/.tofu-build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
log "building tofu $version with $(go env GOVERSION) into $bin"
# version.dev=no: a release build ("OpenTofu v1.10.10", not "-dev"), as OpenTofu's own.
# Niced: CI and developer machines are small and shared with cargo builds.
(cd "$mod_dir" && nice -n 10 go build -trimpath \
    -ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    -o "$staging/tofu" github.com/opentofu/opentofu/cmd/tofu)
log "built after $(elapsed) s"
mv -f "$staging/tofu" "$bin"
printf '%s\n' "$stamp" >"$stamp_file"
[[ $(tofu_version) == "$version" ]] || {
    log "error: the built tofu does not report $version"
    exit 1
}
log "done: tofu $version ($(du -h "$bin" | cut -f1)) in $(elapsed) s"
