//! The Dockerfile cannot be built here (no Docker engine): check what it references exists,
//! so a rename in the workspace cannot silently break the images.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

#[test]
fn every_package_and_binary_the_dockerfile_builds_exists_in_the_workspace() {
    let text = dockerfile();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifests = [root.join("Cargo.toml"), root.join("runner/Cargo.toml")].map(|p| std::fs::read_to_string(p).unwrap()).join("\n");
    let build = text.lines().find(|l| l.contains("cargo build --release")).expect("a release build step");
    let packages: Vec<&str> = build.split_whitespace().skip_while(|w| *w != "-p").filter(|w| *w != "-p").collect();
    assert!(!packages.is_empty(), "{build}");
    for p in &packages {
        assert!(manifests.contains(&format!("name = \"{p}\"")), "Dockerfile builds package {p}, which the workspace does not have");
    }
    for line in text.lines().filter(|l| l.starts_with("COPY --from=build")) {
        let src = line.split_whitespace().nth(2).unwrap();
        let bin = src.strip_prefix("/src/target/release/").expect("binaries are copied from the release target dir");
        assert!(packages.contains(&bin), "{bin} is copied but not built by `{build}`");
    }
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/driftless-runner\"]"));
}

#[test]
fn files_copied_from_the_context_exist_and_the_toolchain_is_new_enough() {
    let text = dockerfile();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(root.join(src).exists(), "Dockerfile copies {src}, which is not in the repository");
    }
    let image = text.lines().find(|l| l.starts_with("FROM rust:")).unwrap();
    let version = image.trim_start_matches("FROM rust:").split('-').next().unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let required = manifest.lines().find(|l| l.starts_with("rust-version")).unwrap().split('"').nth(1).unwrap();
    let parse = |v: &str| v.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(parse(version) >= parse(required), "rust image {version} is older than rust-version {required}");
    // The runner image must carry terraform from the same packages the tests pin.
    assert!(text.contains("scripts/setup-tools.sh") && text.contains("/usr/local/bin/terraform"));
}

/// The lines of the stage `FROM ... AS name`, its FROM line first.
fn stage<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !(l.starts_with("FROM ") && l.ends_with(&format!(" AS {name}"))));
    let from = lines.next().unwrap_or_else(|| panic!("no stage {name}"));
    std::iter::once(from).chain(lines.take_while(|l| !l.starts_with("FROM "))).collect()
}

#[test]
fn the_runner_image_defaults_to_opentofu_built_from_the_pinned_go_module() {
    let text = dockerfile();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // tofu is built by the script and go.mod the tests use, with a Go new enough for it.
    let tofu = stage(&text, "tofu");
    assert!(tofu.contains(&"COPY testkit/go/tofu testkit/go/tofu"), "{tofu:?}");
    assert!(tofu.contains(&"COPY scripts/build-go-tool.sh scripts/build-go-tool.sh"), "{tofu:?}");
    assert!(tofu.contains(&"RUN DRIFTLESS_TOOLS=/tools bash scripts/build-go-tool.sh tofu"), "{tofu:?}");
    let image = tofu[0].trim_start_matches("FROM golang:").split('-').next().unwrap();
    let go_mod = std::fs::read_to_string(root.join("testkit/go/tofu/go.mod")).unwrap();
    let required = go_mod.lines().find_map(|l| l.strip_prefix("go ")).expect("a go directive");
    let minor = |v: &str| v.split('.').take(2).map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(minor(image) >= minor(required), "golang image {image} is older than the go {required} of testkit/go/tofu/go.mod");
    assert!(go_mod.contains("require github.com/opentofu/opentofu v1."), "go.mod pins OpenTofu");
    // The terraform stage has no Go: it leaves tofu to the stage above.
    assert!(stage(&text, "terraform").iter().any(|l| l.contains("scripts/setup-tools.sh --without-go")));
    // The runner has tofu on PATH, which makes it the default engine, and keeps terraform.
    let runner = stage(&text, "runner");
    assert!(runner.contains(&"COPY --from=tofu /tools/bin/tofu /usr/local/bin/tofu"), "{runner:?}");
    assert!(runner.iter().any(|l| l.starts_with("COPY --from=terraform /tools/bin/terraform /usr/local/bin/terraform")));
    // Its CLI config serves hashicorp/* from the mirror under both registries: OpenTofu looks
    // `hashicorp/null` up as registry.opentofu.org/hashicorp/null.
    let config = runner.iter().find(|l| l.contains("/etc/terraformrc") && l.starts_with("RUN printf")).expect("the image's CLI config");
    for host in ["registry.terraform.io", "registry.opentofu.org"] {
        assert_eq!(config.matches(&format!("\"{host}/hashicorp/*\"")).count(), 2, "{host} in include and exclude: {config}");
    }
}
