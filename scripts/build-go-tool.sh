#!/usr/bin/env bash
# Usage: scripts/build-go-tool.sh TOOL      (TOOL: tofu | sops | registry | helm)
#
# Builds TOOL from its Go module, pinned in testkit/go/TOOL/{go.mod,go.sum}, into
# <tools>/bin/TOOL, where <tools> is $DRIFTLESS_TOOLS (a relative path is taken from the repo
# root), else <repo>/.tools. scripts/setup-tools.sh runs it for each tool; the Dockerfile's
# tofu stage runs it for tofu with the same go.mod, so the tests and the runner image run the
# same tofu. What differs between the tools is the `case` table below; the rest is common.
#
# Idempotent: when <tools>/bin/TOOL reports the pinned version and was built from the same
# go.mod/go.sum and recipe (a stamp file, <tools>/bin/.TOOL-build-stamp, records them),
# nothing is built and Go is not needed. Set DRIFTLESS_REBUILD=1 to force a rebuild.
#
# Only the Go module proxy is used (through `go`'s own GOPROXY setting).
set -euo pipefail

start=$(date +%s)
tool=${1:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_root=${DRIFTLESS_TOOLS:-$repo/.tools}
[[ $tools_root == /* ]] || tools_root="$repo/$tools_root"
bin="$tools_root/bin/$tool"

# Per tool:
#   module      the module required in go.mod; its `require MODULE vX.Y.Z` line is the pin
#   main_pkg    the package `go build` builds
#   ldflags     the tool's own release flags
#   recipe      what the build does besides go.mod/go.sum, recorded in the stamp: change it
#               when the flags change so that an existing binary is rebuilt. The Go version
#               is left out on purpose: the binary is the tool's release either way, and a
#               toolchain update should not cost every machine a rebuild.
#   min_go      the `go` directive of go.mod, for the error when Go is missing
#   ask_version prints the version $bin reports (e.g. "1.10.10"), without a leading "v"
case $tool in
tofu)
    # OpenTofu, the tests' second engine and the runner image's default one. Its release
    # flags (.goreleaser.yaml): version.dev=no makes a release build ("OpenTofu v1.10.10",
    # not "-dev"). Cold (empty GOMODCACHE and GOCACHE) it takes 451-678 s wall on the 2-core
    # machine, downloads 1.9 GB of modules and fills 1.1 GB of build cache; the binary is
    # 88 MB (figures in docs/TESTING.md).
    module=github.com/opentofu/opentofu
    main_pkg=$module/cmd/tofu
    ldflags="-s -w -X $module/version.dev=no"
    recipe="trimpath ldflags=-s,-w,dev=no cgo=0"
    min_go=1.24.13
    # `tofu version -json` still says terraform_version. A private HOME and no CLI config,
    # so that nothing of the user's is read.
    ask_version() {
        HOME=$tools_root TF_CLI_CONFIG_FILE=/dev/null "$bin" version -json |
            sed -n 's/.*"terraform_version": *"\([^"]*\)".*/\1/p'
    }
    ;;
sops)
    # The sops CLI. Only the tests need it: they encrypt fixtures with it and compare `sops
    # --decrypt` with driftless's own decryption (tests/sops_decrypt.rs); driftless itself
    # never runs it. Its release flags: .goreleaser.yaml.
    #
    # Measured on the 2-core machine (2026-12-03), cold (empty GOMODCACHE and GOCACHE): 342 s
    # wall at load 4-7 (beside a control plane build), 314 s of CPU (260 s user, 54 s sys); it
    # downloads 1.2 GB of modules (the cloud KMS SDKs) and fills 670 MB of build cache. The
    # binary is 50 MB. With the Go cache warm a rebuild takes 10 s; an up-to-date binary 0.15 s.
    module=github.com/getsops/sops/v3
    main_pkg=$module/cmd/sops
    ldflags="-s -w"
    recipe="trimpath ldflags=-s,-w cgo=0"
    min_go=1.25.8
    # The version check that would ask upstream for the newest release stays off.
    ask_version() {
        "$bin" --version --disable-version-check | sed -n '1s/^sops \([0-9][^ ]*\).*/\1/p'
    }
    ;;
registry)
    # The CNCF distribution registry, a real OCI registry the tests start on 127.0.0.1
    # (`registry serve CONFIG`). Built from testkit/go/registry/cmd/registry: upstream's
    # main without the cloud storage drivers (the tests store on the filesystem). Its release
    # flags (its Dockerfile and Makefile): -s -w and the version stamped into
    # version.version, with the "v" as its Makefile writes it (else "v3.1.2+unknown").
    #
    # Measured on the 2-core machine (2026-12-03), cold (empty GOMODCACHE and GOCACHE): 49 s
    # wall, 93 s of CPU (77 s user, 16 s sys); 277 MB of module cache, 336 MB of build cache;
    # the binary is 25 MB. Upstream's own main with every driver took 206 s and 54 MB. An
    # up-to-date binary takes 0.04 s.
    module=github.com/distribution/distribution/v3
    main_pkg=driftless.dev/testkit/registry/cmd/registry
    ldflags="-s -w -X $module/version.version=v@VERSION@"
    recipe="trimpath ldflags=-s,-w,version cgo=0"
    min_go=1.26.0
    # Prints "<argv[0]> github.com/distribution/distribution/v3 v3.1.2".
    ask_version() {
        "$bin" --version | sed -n '1s/^.* github\.com\/distribution\/distribution\/v3 v\{0,1\}\([0-9][^ ]*\)$/\1/p'
    }
    ;;
helm)
    # The helm CLI. The tests package their charts with it (`helm package`), push them to
    # the test registry and read releases back (`helm history`, `helm get`); the runner image
    # carries the same build for HelmRelease runs. Its release flags (its Makefile): -s -w and
    # the version stamped into internal/version.version.
    #
    # Measured on the 2-core machine (2026-12-04), cold (empty GOMODCACHE and GOCACHE): 342 s
    # wall beside a cargo test run, 448 s of CPU; 542 MB of module cache, 1.2 GB of build
    # cache; the binary is 64 MB.
    module=helm.sh/helm/v4
    main_pkg=$module/cmd/helm
    ldflags="-s -w -X $module/internal/version.version=v@VERSION@"
    recipe="trimpath ldflags=-s,-w,version cgo=0"
    min_go=1.26.0
    # `helm version --template` prints "v4.3.2"; a private HOME so that nothing of the
    # user's is read.
    ask_version() {
        HOME=$tools_root HELM_CONFIG_HOME=$tools_root/.helm "$bin" version --template '{{.Version}}' | sed -n '1s/^v//p'
    }
    ;;
*)
    printf 'usage: %s TOOL   (TOOL: tofu | sops | registry | helm)\n' "$0" >&2
    exit 2
    ;;
esac

mod_dir="$repo/testkit/go/$tool"
stamp_file="$tools_root/bin/.$tool-build-stamp"

log() { printf 'build-go-tool(%s): %s\n' "$tool" "$*" >&2; }
elapsed() { echo $(($(date +%s) - start)); }

# The pinned version, read from go.mod itself so it cannot disagree with what is built.
version=$(awk -v m="$module" '$1 == "require" && $2 == m && NF == 3 && $3 ~ /^v[0-9]/ { print substr($3, 2) }' "$mod_dir/go.mod")
[[ -n $version ]] || {
    log "error: $mod_dir/go.mod has no 'require $module vX.Y.Z' line"
    exit 1
}
ldflags=${ldflags//@VERSION@/$version}
stamp="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -d' ' -f1) $recipe"

tool_version() {
    # The version the binary reports, or nothing if it is missing or broken.
    [[ -x $bin ]] || return 0
    ask_version 2>/dev/null || true
}

if [[ ${DRIFTLESS_REBUILD:-0} != 1 && $(tool_version) == "$version" && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    log "$tool $version: up to date in $bin (set DRIFTLESS_REBUILD=1 to rebuild)"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    log "error: 'go' is not on PATH; Go $min_go or later is needed to build $tool $version"
    exit 1
fi
# As scripts/build-control-plane.sh: the installed toolchain only, exactly what go.sum pins,
# static binaries.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$tools_root/bin"
staging=$(mktemp -d "$tools_root/bin/.$tool-build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
log "building $tool $version with $(go env GOVERSION) into $bin"
# Niced: CI and developer machines are small and shared with cargo builds.
(cd "$mod_dir" && nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$staging/$tool" "$main_pkg")
log "built after $(elapsed) s"
mv -f "$staging/$tool" "$bin"
printf '%s\n' "$stamp" >"$stamp_file"
[[ $(tool_version) == "$version" ]] || {
    log "error: the built $tool does not report $version"
    exit 1
}
log "done: $tool $version ($(du -h "$bin" | cut -f1)) in $(elapsed) s"
