#!/usr/bin/env bash
# Builds the Kubernetes control plane that testkit runs (etcd, kube-apiserver,
# kube-controller-manager) from Go modules pinned in testkit/go/{go.mod,go.sum}.
#
# Binaries go into the tools directory: $DRIFTLESS_TOOLS, else <repo>/.tools/k8s.
# Idempotent: when the three binaries are there and were built from the same
# go.mod/go.sum (a stamp file records their digest), nothing is rebuilt.
# Set DRIFTLESS_REBUILD=1 to force a rebuild.
#
# Only the Go module proxy is used (through `go`'s own GOPROXY setting).
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir="$repo/testkit/go"
tools=${DRIFTLESS_TOOLS:-$repo/.tools/k8s}
[[ $tools == /* ]] || tools="$repo/$tools"   # relative: to the repo root, as testkit reads it
binaries=(etcd kube-apiserver kube-controller-manager)

log() { printf 'build-control-plane: %s\n' "$*" >&2; }
elapsed() { echo $(( $(date +%s) - start )); }

if ! command -v go >/dev/null 2>&1; then
  log "error: 'go' is not on PATH; Go 1.26 or later is needed to build the control plane"
  exit 1
fi

# Use the installed toolchain only: never fetch another one behind the user's back.
export GOTOOLCHAIN=local
# Read-only module graph: the build uses exactly what go.sum pins, and fails loudly
# (rather than editing go.mod) if the two disagree. -buildvcs=false because the
# module lives inside a git work tree whose state is irrelevant to these binaries.
export GOFLAGS="-mod=readonly -buildvcs=false"
# Static binaries, as Kubernetes releases are built: no C toolchain involved, and they
# run on any Linux machine.
export CGO_ENABLED=0
# What the build does besides go.mod/go.sum; change it when the build recipe changes so
# that existing binaries are rebuilt.
recipe="trimpath ldflags=-s,-w cgo=0"

go_version=$(go env GOVERSION)            # e.g. go1.26.8
minor=${go_version#go1.}; minor=${minor%%.*}
if [[ ! $minor =~ ^[0-9]+$ ]] || (( minor < 26 )); then
  log "error: $go_version is too old; the pinned Kubernetes needs Go 1.26 or later"
  exit 1
fi

stamp_file="$tools/.build-stamp"
stamp=$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -d' ' -f1)
stamp="$stamp $go_version $recipe"

all_present=1
for b in "${binaries[@]}"; do
  [[ -x "$tools/$b" ]] || all_present=0
done
if [[ ${DRIFTLESS_REBUILD:-0} != 1 && $all_present == 1 && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
  log "up to date in $tools (set DRIFTLESS_REBUILD=1 to rebuild)"
  log "wall time: $(elapsed) s"
  exit 0
fi

mkdir -p "$tools"
staging=$(mktemp -d "$tools/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT

k8s_version=$(cd "$mod_dir" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$mod_dir" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
log "building kube-apiserver and kube-controller-manager $k8s_version, etcd $etcd_version with $go_version into $tools"

# Niced: CI and developer machines are small and shared with cargo builds.
# -trimpath and -s -w make smaller binaries and a smaller, reusable build cache.
build() {
  local out=$1 pkg=$2
  (cd "$mod_dir" && nice -n 10 go build -trimpath -ldflags='-s -w' -o "$staging/$out" "$pkg")
  log "built $out after $(elapsed) s"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build etcd go.etcd.io/etcd/server/v3

# Move into place only when all three built, so a failed build never leaves a
# half-updated tools directory that looks current.
for b in "${binaries[@]}"; do
  mv -f "$staging/$b" "$tools/$b"
done
printf '%s\n' "$stamp" > "$stamp_file"
printf 'kubernetes %s\netcd %s\ngo %s\n' "$k8s_version" "$etcd_version" "$go_version" > "$tools/VERSIONS"

log "done: $(du -sh "$tools" | cut -f1) in $tools"
log "wall time: $(elapsed) s"
