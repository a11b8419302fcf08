#!/usr/bin/env bash
# The Debian packages driftless's scripts need on the machine, installed when this runs as
# root on a Debian or Ubuntu machine with apt, else checked: anything missing is listed with
# the command that installs it, and the script fails before any build starts.
#
#   scripts/system-packages.sh demo   what scripts/demo.sh needs (git, pip, a C toolchain's
#                                     pkg-config and headers for libgit2's https)
#   scripts/system-packages.sh test   what the whole suite needs besides: sshd and ssh-keygen
#                                     (Git over ssh), gpg (signed commits and tags of
#                                     GitRepository verify, the SOPS tests' PGP keys), headless chromium and chromedriver
#                                     (the review page's browser test)
#
# Rust (cargo) and Go 1.26+ are not Debian packages here (Debian's are too old): they are
# checked, and their absence is reported.
set -euo pipefail

purpose=${1:-test}
case "$purpose" in
    demo | test) ;;
    *)
        echo "system-packages: unknown purpose $purpose (demo or test)" >&2
        exit 2
        ;;
esac

# package -> how to tell it is there
declare -A present=(
    [git]="command -v git"
    [pkg-config]="command -v pkg-config"
    [libssl-dev]="pkg-config --exists openssl"
    [zlib1g-dev]="pkg-config --exists zlib"
    [python3-pip]="python3 -m pip --version"
)
order=(git pkg-config libssl-dev zlib1g-dev python3-pip)
# Installed without their recommends: headless use needs no GL drivers or printing.
lean=()
if [[ $purpose == test ]]; then
    present[openssh-server]="test -x /usr/sbin/sshd"
    present[openssh-client]="command -v ssh-keygen"
    present[gnupg]="command -v gpg && command -v gpgconf"
    present[chromium]="command -v chromium"
    present[chromium-driver]="command -v chromedriver"
    order+=(openssh-server openssh-client gnupg)
    lean=(chromium chromium-driver)
fi

missing() {
    local out=()
    for p in "${order[@]}" "${lean[@]}"; do
        bash -c "${present[$p]}" >/dev/null 2>&1 || out+=("$p")
    done
    echo "${out[@]}"
}

need=$(missing)
if [[ -n $need ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    start=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    regular=() headless=()
    for p in $need; do
        if [[ " ${lean[*]} " == *" $p "* ]]; then headless+=("$p"); else regular+=("$p"); fi
    done
    ((${#regular[@]} == 0)) || apt-get install -y -qq "${regular[@]}" >/dev/null
    ((${#headless[@]} == 0)) || apt-get install -y -qq --no-install-recommends "${headless[@]}" >/dev/null
    echo "system-packages: installed $need in $(($(date +%s) - start))s" >&2
    need=$(missing)
fi

problems=()
[[ -z $need ]] || problems+=("missing Debian packages: $need (install with: sudo apt-get install $need)")
command -v cargo >/dev/null 2>&1 || problems+=("cargo is not on PATH: install Rust (rustup) first")
if [[ $purpose == test ]]; then
    if ! command -v go >/dev/null 2>&1; then
        problems+=("go is not on PATH: Go 1.26 or later builds the test control plane")
    fi
fi
if ((${#problems[@]} > 0)); then
    for p in "${problems[@]}"; do echo "system-packages: $p" >&2; done
    exit 1
fi
