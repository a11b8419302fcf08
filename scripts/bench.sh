#!/usr/bin/env bash
# Benchmarks: builds release binaries, installs the tools, prints figures and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh
cargo build --release --workspace --bins
cargo bench --bench terraform
cargo bench --bench s3
