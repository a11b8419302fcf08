#!/usr/bin/env bash
# Builds the Kubernetes control plane that testkit runs (etcd, kube-apiserver,
# kube-controller-manager) from Go modules pinned in testkit/go/{go.mod,go.sum}.
#
# Binaries go into <tools>/k8s, where <tools> is $DRIFTLESS_TOOLS (as for
# scripts/setup-tools.sh; a relative path is taken from the repo root), else <repo>/.tools.
# Idempotent: when the three binaries are there and were built from the same
# go.mod/go.sum, Go version and recipe (a stamp file records them), nothing is rebuilt.
# Set DRIFTLESS_REBUILD=1 to force a rebuild.
#
# Only the Go module proxy is used (through `go`'s own GOPROXY setting).
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir="$repo/testkit/go"
tools_root=${DRIFTLESS_TOOLS:-$repo/.tools}
[[ $tools_root == /* ]] || tools_root="$repo/$tools_root"   # relative: to the repo root, as testkit reads it
tools="$tools_root/k8s"
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
recipe="trimpath ldflags=-s,-w,version cgo=0 one-build"

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

# Kubernetes' own build stamps its version into the binaries (hack/lib/version.sh); a plain
# `go build` would report v0.0.0-master, which kubectl refuses to parse.
k8s_minor=${k8s_version#v1.}; k8s_minor=${k8s_minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# One `go build` for all three, so the shared packages are compiled once and linking one
# binary overlaps compiling the next. Niced: CI and developer machines are small and
# shared with cargo builds. -trimpath and -s -w: smaller binaries, reusable build cache.
(cd "$mod_dir" && nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$staging/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  go.etcd.io/etcd/server/v3)
# go names the etcd binary after its package directory (server/v3 -> server).
mv "$staging/server" "$staging/etcd"
log "built after $(elapsed) s"

# Move into place only when all three built, so a failed build never leaves a
# half-updated tools directory that looks current.
for b in "${binaries[@]}"; do
  mv -f "$staging/$b" "$tools/$b"
done
printf '%s\n' "$stamp" > "$stamp_file"
printf 'kubernetes %s\netcd %s\ngo %s\n' "$k8s_version" "$etcd_version" "$go_version" > "$tools/VERSIONS"

log "done: $(du -sh "$tools" | cut -f1) in $tools"
log "wall time: $(elapsed) s"
