#!/usr/bin/env bash
# The whole test suite: installs the test tools (terraform, providers, protoc, moto) into
# .tools/, builds the test control plane (kube-apiserver, kube-controller-manager, etcd) from
# Go modules, builds every binary the end-to-end tests run, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh --with-drifttest
scripts/build-control-plane.sh
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
