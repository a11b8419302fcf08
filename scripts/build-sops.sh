#!/usr/bin/env bash
# Builds the sops CLI from its Go module, pinned in testkit/go/sops/{go.mod,go.sum}, into
# <tools>/bin/sops, where <tools> is $DRIFTLESS_TOOLS (a relative path is taken from the repo
# root), else <repo>/.tools. scripts/setup-tools.sh runs it. Only the tests need sops: they
# encrypt fixtures with it and compare `sops --decrypt` with driftless's own decryption
# (tests/sops_decrypt.rs); driftless itself never runs it.
#
# Measured on the 2-core machine (2026-12-03), cold (empty GOMODCACHE and GOCACHE): 342 s
# wall at load 4-7 (beside a control plane build), 314 s of CPU (260 s user, 54 s sys); it
# downloads 1.2 GB of modules (the cloud KMS SDKs) and fills 670 MB of build cache. The
# binary is 50 MB. With the Go cache warm a rebuild takes 10 s; an up-to-date binary 0.15 s.
#
# Idempotent: when <tools>/bin/sops reports the pinned version and was built from the same
# go.mod/go.sum and recipe (a stamp file records them), nothing is built and Go is not
# needed. Set DRIFTLESS_REBUILD=1 to force a rebuild.
#
# Only the Go module proxy is used (through `go`'s own GOPROXY setting).
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir="$repo/testkit/go/sops"
tools_root=${DRIFTLESS_TOOLS:-$repo/.tools}
[[ $tools_root == /* ]] || tools_root="$repo/$tools_root"
bin="$tools_root/bin/sops"
stamp_file="$tools_root/bin/.sops-build-stamp"

log() { printf 'build-sops: %s\n' "$*" >&2; }
elapsed() { echo $(($(date +%s) - start)); }

# The pinned version, read from go.mod itself so it cannot disagree with what is built.
version=$(sed -n 's/^require github.com\/getsops\/sops\/v3 v\([0-9][^ ]*\)$/\1/p' "$mod_dir/go.mod")
[[ -n $version ]] || {
    log "error: $mod_dir/go.mod has no 'require github.com/getsops/sops/v3 vX.Y.Z' line"
    exit 1
}
# What the build does besides go.mod/go.sum (sops's release flags, its .goreleaser.yaml);
# change it when the recipe changes so that an existing binary is rebuilt.
recipe="trimpath ldflags=-s,-w cgo=0"
stamp="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -d' ' -f1) $recipe"

sops_version() {
    # Prints e.g. "3.13.3", or nothing if the binary is missing or broken. The version
    # check that would ask upstream for the newest release stays off.
    [[ -x $bin ]] || return 0
    "$bin" --version --disable-version-check 2>/dev/null | sed -n '1s/^sops \([0-9][^ ]*\).*/\1/p' || true
}

if [[ ${DRIFTLESS_REBUILD:-0} != 1 && $(sops_version) == "$version" && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    log "sops $version: up to date in $bin (set DRIFTLESS_REBUILD=1 to rebuild)"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    log "error: 'go' is not on PATH; Go 1.25.8 or later is needed to build sops $version"
    exit 1
fi
# As scripts/build-tofu.sh: the installed toolchain only, exactly what go.sum pins, a
# static binary.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$tools_root/bin"
staging=$(mktemp -d "$tools_root/bin/.sops-build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
log "building sops $version with $(go env GOVERSION) into $bin"
# Niced: CI and developer machines are small and shared with cargo builds.
(cd "$mod_dir" && nice -n 10 go build -trimpath -ldflags="-s -w" \
    -o "$staging/sops" github.com/getsops/sops/v3/cmd/sops)
log "built after $(elapsed) s"
mv -f "$staging/sops" "$bin"
printf '%s\n' "$stamp" >"$stamp_file"
[[ $(sops_version) == "$version" ]] || {
    log "error: the built sops does not report $version"
    exit 1
}
log "done: sops $version ($(du -h "$bin" | cut -f1)) in $(elapsed) s"
