#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs (as root with apt) or checks the
# Debian packages the tests use, installs the test tools (terraform, providers, protoc, moto,
# and tofu built from its Go module) into .tools/, builds the test control plane
# (kube-apiserver, kube-controller-manager, etcd) from Go modules, checks formatting and
# lints, builds every binary the end-to-end tests run, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf 'test.sh: %s\n' "$*" >&2; }
start=$(date +%s)
# A CI machine builds once from a clean clone: incremental compilation would only add
# gigabytes of caches to the disk the test binaries need.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi
scripts/system-packages.sh test
scripts/setup-tools.sh --with-drifttest
scripts/build-control-plane.sh
step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "build"
cargo build --workspace --bins
step "tests (setup and build took $(($(date +%s) - start)) s)"
cargo test --workspace --no-fail-fast "$@"
