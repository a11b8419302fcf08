//! `driftless migrate` on a repository of Flux and tofu-controller YAML: the real binary, in a
//! temporary directory. Objects move to `driftless.dev/v1alpha1` with their comments, other
//! documents and unreadable files stay byte for byte, every field that does not carry over is
//! listed (exit 1), a second run changes nothing, and what it wrote applies to a local store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A Flux sync: the repository and the Kustomization of its apps, one file, older versions.
const SYNC: &str = "\
# The staging cluster's sync, as Flux 0.x wrote it.
---
apiVersion: source.toolkit.fluxcd.io/v1 # GA since Flux 2.0
kind: GitRepository
metadata:
  name: shop
  namespace: flux-system
spec:
  interval: 1m
  url: https://git.example.com/team/shop.git
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata:
  name: shop-apps
  namespace: flux-system
  annotations:
    reconcile.fluxcd.io/requestedAt: \"2024-05-01T10:00:00Z\"
spec:
  interval: 10m0s
  path: ./deploy/staging
  prune: true
  validation: client
  sourceRef:
    apiVersion: source.toolkit.fluxcd.io/v1beta2
    kind: GitRepository
    name: shop
  # staging runs a single replica
  patchesStrategicMerge:
    - apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: storefront
      spec:
        replicas: 1 # three in production
  patchesJson6902:
    - target:
        kind: Deployment
        name: storefront
      patch:
        - op: add
          path: /metadata/labels/stage
          value: staging
";

/// A tofu-controller Terraform with a field driftless refuses.
const NETWORK: &str = "\
apiVersion: infra.contrib.fluxcd.io/v1alpha2
kind: Terraform
metadata:
  name: network
  namespace: flux-system
spec:
  interval: 1h
  path: ./terraform/network
  approvePlan: auto
  sourceRef:
    kind: GitRepository
    name: shop
  # policy checks before any apply
  webhooks:
    - stage: post-planning
      url: https://policy.example.com/check
";

/// An application's own manifests: not the migration's business.
const STOREFRONT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: storefront   # the shop's web front
spec:
  replicas: 3
  selector:
    matchLabels: {app: storefront}
  template:
    metadata:
      labels: {app: storefront}
    spec:
      containers:
        - name: web
          image: registry.example.com/storefront:1.4.2
";

/// Not YAML at all (a template engine's file).
const BROKEN: &str = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: {{ .Name }\n";

struct Repo {
    dir: tempfile::TempDir,
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::Builder::new().prefix("driftless-migrate-").tempdir().unwrap();
        let repo = Repo { dir };
        for (path, text) in [
            ("repo/clusters/staging/sync.yaml", SYNC),
            ("repo/infra/network.yaml", NETWORK),
            ("repo/deploy/staging/storefront.yaml", STOREFRONT),
            ("repo/charts/shop/templates/source.yaml", BROKEN),
        ] {
            let p = repo.path(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        repo
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Every file of the repository, by path.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.path(), std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.path("repo"), &mut out);
        out
    }

    fn driftless(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("--store")
            .arg(self.path("store"))
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("DRIFTLESS_STORE")
            .env_remove("DRIFTLESS_TERRAFORM")
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn migrate(&self, args: &[&str]) -> Run {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        self.driftless(&all, None)
    }
}

impl Run {
    fn status(self, expected: i32) -> Self {
        assert_eq!(self.status, expected, "exit status\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

#[test]
fn a_repository_is_migrated_in_place_with_its_comments_and_what_did_not_carry_over_is_listed() {
    let repo = Repo::new();
    let run = repo.migrate(&["repo"]).status(1);

    let sync = repo.read("repo/clusters/staging/sync.yaml");
    let expected = "\
# The staging cluster's sync, as Flux 0.x wrote it.
---
apiVersion: driftless.dev/v1alpha1 # GA since Flux 2.0
kind: GitRepository
metadata:
  name: shop
  namespace: flux-system
spec:
  interval: 1m
  url: https://git.example.com/team/shop.git
  ref:
    branch: main
---
apiVersion: driftless.dev/v1alpha1
kind: Kustomization
metadata:
  name: shop-apps
  namespace: flux-system
  annotations:
    reconcile.fluxcd.io/requestedAt: \"2024-05-01T10:00:00Z\"
spec:
  interval: 10m0s
  path: ./deploy/staging
  prune: true
  sourceRef:
    apiVersion: driftless.dev/v1alpha1
    kind: GitRepository
    name: shop
  # staging runs a single replica
  patches:
    - patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: storefront
        spec:
          replicas: 1 # three in production
    - target:
        kind: Deployment
        name: storefront
      patch: |
        - op: add
          path: /metadata/labels/stage
          value: staging
";
    assert_eq!(sync, expected);
    let network = repo.read("repo/infra/network.yaml");
    assert_eq!(
        network,
        NETWORK.replace("infra.contrib.fluxcd.io/v1alpha2", "driftless.dev/v1alpha1"),
        "the refused field stays for a person"
    );
    assert_eq!(repo.read("repo/deploy/staging/storefront.yaml"), STOREFRONT, "another kind is untouched");
    assert_eq!(repo.read("repo/charts/shop/templates/source.yaml"), BROKEN, "a file that does not parse is untouched");

    // What changed, per object, on stdout.
    for expected in [
        "repo/clusters/staging/sync.yaml: GitRepository/flux-system/shop: apiVersion source.toolkit.fluxcd.io/v1 -> driftless.dev/v1alpha1",
        "Kustomization/flux-system/shop-apps: apiVersion kustomize.toolkit.fluxcd.io/v1beta2 -> driftless.dev/v1alpha1",
        "spec.validation removed",
        "spec.patchesStrategicMerge -> spec.patches (1)",
        "spec.patchesJson6902 -> spec.patches (1)",
        "spec.sourceRef.apiVersion source.toolkit.fluxcd.io/v1beta2 -> driftless.dev/v1alpha1",
        "repo/infra/network.yaml: Terraform/flux-system/network: apiVersion infra.contrib.fluxcd.io/v1alpha2",
    ] {
        assert!(run.stdout.contains(expected), "{expected:?} missing in stdout:\n{}", run.stdout);
    }
    // What did not carry over, one line each, on stderr.
    let refused: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with("error:")).collect();
    assert_eq!(refused.len(), 2, "{}", run.stderr);
    assert!(
        refused[0].starts_with("repo/charts/shop/templates/source.yaml: not changed: invalid YAML"),
        "the unparsable file is named: {}",
        run.stderr
    );
    assert!(
        refused[1].starts_with("repo/infra/network.yaml: Terraform/flux-system/network: spec.webhooks: unknown field:")
            && refused[1].contains("use Alerts and Providers"),
        "the refused field, with the message apply gives: {}",
        run.stderr
    );
    let summary = run.stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(summary.contains("changed 2 of 4 files") && summary.contains("1 field(s) not carried over"), "{summary}");
}

#[test]
fn a_second_run_changes_nothing_and_still_lists_what_is_left() {
    let repo = Repo::new();
    repo.migrate(&["repo"]).status(1);
    let once = repo.snapshot();
    let run = repo.migrate(&["repo"]).status(1);
    assert_eq!(repo.snapshot(), once);
    assert!(!run.stdout.contains("->"), "nothing to change: {}", run.stdout);
    assert!(run.stdout.contains("changed 0 of 4 files") || run.stderr.contains("changed 0 of 4 files"), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("spec.webhooks"), "{}", run.stderr);
}

#[test]
fn what_migrate_wrote_applies_to_a_local_store_except_the_object_with_a_refused_field() {
    let repo = Repo::new();
    repo.migrate(&["repo"]).status(1);

    let run = repo.driftless(&["apply", "-f", "repo/clusters/staging/sync.yaml"], None).status(0);
    assert!(run.stdout.contains("gitrepository/shop created") && run.stdout.contains("kustomization/shop-apps created"), "{}", run.stdout);
    let stored = repo.driftless(&["get", "kustomization", "shop-apps", "-n", "flux-system", "-o", "json"], None).status(0);
    let stored: serde_json::Value = serde_json::from_str(&stored.stdout).unwrap();
    let patches = stored["spec"]["patches"].as_array().unwrap();
    assert_eq!(patches.len(), 2, "{stored}");
    assert!(patches[0]["patch"].as_str().unwrap().contains("replicas: 1"), "{stored}");
    assert_eq!(patches[1]["target"]["name"], "storefront");

    let run = repo.driftless(&["apply", "-f", "repo/infra/network.yaml"], None).status(1);
    assert!(run.stderr.contains("Terraform/flux-system/network") && run.stderr.contains("spec.webhooks"), "{}", run.stderr);
}

#[test]
fn a_dry_run_changes_no_file_and_prints_what_apply_takes() {
    let repo = Repo::new();
    let before = repo.snapshot();
    let run = repo.migrate(&["--dry-run", "repo/clusters"]).status(0);
    assert_eq!(repo.snapshot(), before, "no file changed");
    assert!(run.stdout.starts_with("# repo/clusters/staging/sync.yaml\n"), "{}", run.stdout);
    assert!(run.stderr.contains("GitRepository/flux-system/shop: apiVersion"), "changes are told on stderr: {}", run.stderr);
    assert!(run.stderr.contains("would change 1 of 1 files"), "{}", run.stderr);
    let applied = repo.driftless(&["apply", "-f", "-"], Some(&run.stdout)).status(0);
    assert!(applied.stdout.contains("kustomization/shop-apps created"), "{}", applied.stdout);
}

#[test]
fn everything_carried_over_exits_zero() {
    let repo = Repo::new();
    let run = repo.migrate(&["repo/clusters", "repo/deploy"]).status(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(run.stdout.contains("changed 1 of 2 files"), "{}", run.stdout);
}

#[test]
fn a_path_that_does_not_exist_is_a_usage_error() {
    let repo = Repo::new();
    let before = repo.snapshot();
    let run = repo.migrate(&["repo/clusters", "repo/nowhere"]).status(2);
    assert!(run.stderr.contains("repo/nowhere"), "{}", run.stderr);
    repo.migrate(&[]).status(2);
    assert_eq!(repo.snapshot(), before, "nothing changed, not even the paths that exist");
}

#[test]
fn the_help_says_what_it_does_and_what_its_exit_status_means() {
    let repo = Repo::new();
    let run = repo.migrate(&["--help"]).status(0);
    for expected in
        ["driftless.dev/v1alpha1", "in place", "--dry-run", "patchesStrategicMerge", "Exit status: 0", "A second run changes nothing"]
    {
        assert!(run.stdout.contains(expected), "{expected:?} missing in:\n{}", run.stdout);
    }
}

#[test]
fn an_oci_repository_and_the_kustomization_reading_it_move_together() {
    let repo = Repo::new();
    let flux = "\
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: OCIRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 5m
  url: oci://ghcr.io/stefanprodan/manifests/podinfo
  ref:
    semver: \">=6.0.0\"
  layerSelector:
    mediaType: application/vnd.cncf.flux.content.v1.tar+gzip
    operation: extract
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 10m
  path: ./
  prune: true
  sourceRef:
    apiVersion: source.toolkit.fluxcd.io/v1beta2
    kind: OCIRepository
    name: podinfo
";
    std::fs::write(repo.dir.path().join("repo/oci.yaml"), flux).unwrap();
    repo.migrate(&["repo/oci.yaml"]).status(0);
    let migrated = std::fs::read_to_string(repo.dir.path().join("repo/oci.yaml")).unwrap();
    assert_eq!(migrated.matches("apiVersion: driftless.dev/v1alpha1").count(), 3, "{migrated}");
    let run = repo.driftless(&["apply", "-f", "repo/oci.yaml"], None).status(0);
    assert!(run.stdout.contains("ocirepository/podinfo created") && run.stdout.contains("kustomization/podinfo created"), "{}", run.stdout);
}

#[test]
fn a_helm_repository_and_its_charts_move_together() {
    let repo = Repo::new();
    // As Flux's own documentation writes them (v1 and v1beta2 objects in one file).
    let flux = "\
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 5m0s
  url: https://stefanprodan.github.io/podinfo
---
apiVersion: source.toolkit.fluxcd.io/v1beta2
kind: HelmRepository
metadata:
  name: podinfo-oci
  namespace: flux-system
spec:
  type: oci
  interval: 5m0s
  url: oci://ghcr.io/stefanprodan/charts
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata:
  name: podinfo
  namespace: flux-system
spec:
  interval: 5m0s
  chart: podinfo
  reconcileStrategy: ChartVersion
  sourceRef:
    apiVersion: source.toolkit.fluxcd.io/v1
    kind: HelmRepository
    name: podinfo
  version: '6.x'
  valuesFiles:
  - values.yaml
  - values-prod.yaml
";
    std::fs::write(repo.dir.path().join("repo/helm.yaml"), flux).unwrap();
    repo.migrate(&["repo/helm.yaml"]).status(0);
    let migrated = std::fs::read_to_string(repo.dir.path().join("repo/helm.yaml")).unwrap();
    assert_eq!(migrated.matches("apiVersion: driftless.dev/v1alpha1").count(), 4, "{migrated}");
    let run = repo.driftless(&["apply", "-f", "repo/helm.yaml"], None).status(0);
    for created in ["helmrepository/podinfo created", "helmrepository/podinfo-oci created", "helmchart/podinfo created"] {
        assert!(run.stdout.contains(created), "{created}: {}", run.stdout);
    }
}
