#!/usr/bin/env bash
# Benchmarks: builds release binaries, installs the tools, prints figures and ratios.
#
#   scripts/bench.sh              terraform and s3 benchmarks (as before)
#   scripts/bench.sh controller   the controller on the testkit cluster (also builds the
#                                 control plane); scale it with DRIFTLESS_BENCH_REAL,
#                                 DRIFTLESS_BENCH_NOOP, DRIFTLESS_BENCH_CONCURRENT (see
#                                 benches/controller.rs and docs/BENCHMARKS.md)
#   scripts/bench.sh review       the review page's overview over 1,000 objects of a local
#                                 store (benches/review.rs)
#   scripts/bench.sh notify       alert fan-out of 1,000 drift events (benches/notify.rs)
#   scripts/bench.sh all          all five
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-default}"
case "$what" in
    default | terraform | s3 | controller | review | notify | all) ;;
    *)
        echo "usage: $0 [terraform|s3|controller|review|notify|all]" >&2
        exit 2
        ;;
esac
scripts/setup-tools.sh
if [[ "$what" == controller || "$what" == all ]]; then
    scripts/build-control-plane.sh
fi
# Every binary of the workspace: the runner and the testkit's noop-runner sit next to the
# `driftless` binary the benchmarks start.
cargo build --release --workspace --bins
case "$what" in
    default) benches=(terraform s3) ;;
    all) benches=(terraform s3 controller review notify) ;;
    *) benches=("$what") ;;
esac
for bench in "${benches[@]}"; do
    cargo bench --bench "$bench"
done
