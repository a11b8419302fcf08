#!/usr/bin/env bash
# The whole test suite: installs the test tools (terraform, providers, protoc) into .tools/,
# builds every binary the end-to-end tests run, then runs all tests of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh --with-drifttest
cargo build --workspace --bins
cargo test --workspace "$@"
