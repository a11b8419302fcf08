//! Benchmark: driftless plan+apply of a 50-resource null module against bare terraform
//! init/plan/apply in the same run, and a no-change reconcile of an unchanged revision.
//!
//! Run with `scripts/bench.sh` (it builds the release binaries and installs the tools).
//! Prints figures and ratios; targets (ratio <= 1.15, no-change < 100 ms) are reported,
//! not asserted: timing on a shared 2-core machine is not a pass/fail signal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use driftless::api::{GitRepository, Terraform};
use driftless::dispatch::{BackendSpec, ProcessDispatch};
use driftless::reconcile::{Clusters, Context};
use driftless::source::ArtifactStore;
use driftless::store::{EventLog, LocalStore, ObjectStore};

const ROUNDS: usize = 3;

const MODULE: &str = r#"
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}
variable "seed" {
  type = string
}
resource "null_resource" "r" {
  count = 50
  triggers = {
    seed  = var.seed
    index = count.index
  }
}
output "ids" {
  value = null_resource.r[*].id
}
"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn tools() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("DRIFTLESS_TOOLS").map(PathBuf::from).unwrap_or_else(|| root.join(".tools"));
    let terraform = tools.join("bin/terraform");
    let rc = tools.join("terraformrc");
    assert!(terraform.exists() && rc.exists(), "run scripts/setup-tools.sh first");
    (terraform, rc)
}

fn terraform(tf: &Path, rc: &Path, home: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(tf)
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("TF_CLI_CONFIG_FILE", rc)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "terraform {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn bare(tf: &Path, rc: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let module = dir.path().join("m");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(module.join("main.tf"), MODULE).unwrap();
    let start = Instant::now();
    terraform(tf, rc, &home, &module, &["init", "-input=false", "-no-color"]);
    terraform(tf, rc, &home, &module, &["plan", "-input=false", "-no-color", "-var", "seed=a", "-out=p.tfplan"]);
    terraform(tf, rc, &home, &module, &["apply", "-input=false", "-no-color", "p.tfplan"]);
    start.elapsed()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@example.invalid")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@example.invalid")
        .output()
        .unwrap();
    assert!(out.status.success());
}

struct World {
    _dir: tempfile::TempDir,
    ctx: Context<LocalStore, ProcessDispatch>,
}

fn world(tf: &Path) -> World {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("main.tf"), MODULE).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "m"]);
    let store = LocalStore::open(dir.path().join("store")).unwrap();
    let runner = PathBuf::from(env!("CARGO_BIN_EXE_driftless")).with_file_name("driftless-runner");
    assert!(runner.exists(), "build the runner first: cargo build --release -p driftless-runner");
    let objects = format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata:\n  name: bench\n  namespace: default\nspec:\n  url: file://{}\n  interval: 1h\n  ref:\n    branch: main\n",
        repo.display()
    );
    let tfobj = "apiVersion: driftless.dev/v1alpha1\nkind: Terraform\nmetadata:\n  name: bench\n  namespace: default\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: bench\n  interval: 1h\n  approvePlan: auto\n  vars:\n    - name: seed\n      value: a\n";
    let ctx = Context {
        backend: BackendSpec::Local { root: store.backend_dir() },
        artifacts: ArtifactStore::new(store.artifacts_dir()),
        artifact_access: driftless::source::ArtifactAccess::unsigned(),
        git_cache: store.cache_dir().join("git"),
        events: EventLog::new(store.events_path()),
        dispatch: ProcessDispatch::new(runner),
        terraform_path: Some(tf.to_path_buf()),
        tofu_path: None,
        identity: "bench".into(),
        run_timeout: Duration::from_secs(600),
        clusters: Clusters::lazy(|| async { Err("the benchmark applies no manifests".to_string()) }),
        tenancy: driftless::api::Tenancy::LOCAL,
        store,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let g: driftless::api::GitRepository = serde_yaml::from_str(&objects).unwrap();
        ctx.store.apply(&g).await.unwrap();
        let t: driftless::api::Terraform = serde_yaml::from_str(tfobj).unwrap();
        ctx.store.apply(&t).await.unwrap();
        driftless::reconcile::object::<GitRepository, _, _>(&ctx, "default", "bench", true).await.unwrap();
    });
    World { _dir: dir, ctx }
}

fn main() {
    let (tf, rc) = tools();
    let home = tempfile::tempdir().unwrap();
    // The runner inherits these: terraform must use the offline mirror and a clean HOME.
    // SAFETY of intent: set before any thread is started.
    unsafe_free_env(&rc, home.path());
    let rt = tokio::runtime::Runtime::new().unwrap();

    bare(&tf, &rc); // warm the page cache
    let mut bare_times = Vec::new();
    let mut driftless_times = Vec::new();
    let mut no_change = Vec::new();
    for _ in 0..ROUNDS {
        bare_times.push(bare(&tf, &rc));
        let w = world(&tf);
        let start = Instant::now();
        rt.block_on(driftless::reconcile::object::<Terraform, _, _>(&w.ctx, "default", "bench", false)).unwrap();
        driftless_times.push(start.elapsed());
        let tfobj = rt.block_on(w.ctx.store.get::<driftless::api::Terraform>("default", "bench")).unwrap().unwrap();
        let ready = tfobj.status.as_ref().and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Ready")).unwrap();
        assert_eq!(ready.reason, "Succeeded", "{}", ready.message);
        for _ in 0..10 {
            let start = Instant::now();
            rt.block_on(driftless::reconcile::object::<GitRepository, _, _>(&w.ctx, "default", "bench", false)).unwrap();
            rt.block_on(driftless::reconcile::object::<Terraform, _, _>(&w.ctx, "default", "bench", false)).unwrap();
            no_change.push(start.elapsed());
        }
    }
    let (b, d, n) = (median(bare_times), median(driftless_times), median(no_change));
    println!("terraform 50 null resources, median of {ROUNDS} rounds");
    println!("  bare terraform init+plan+apply: {:>8.0} ms", b.as_secs_f64() * 1000.0);
    println!("  driftless reconcile (plan+apply, auto approval): {:>8.0} ms", d.as_secs_f64() * 1000.0);
    println!("  ratio driftless/bare: {:.2}x (target <= 1.15x)", d.as_secs_f64() / b.as_secs_f64());
    println!("  no-change reconcile of an unchanged revision (source + terraform): {:.1} ms (target < 100 ms)", n.as_secs_f64() * 1000.0);
}

/// Sets the runner's environment through the command line of child processes instead of
/// `std::env::set_var` (unsafe in edition 2024): re-exec this bench with the env when needed.
fn unsafe_free_env(rc: &Path, home: &Path) {
    if std::env::var_os("DRIFTLESS_BENCH_CHILD").is_some() {
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args(std::env::args().skip(1))
        .env("DRIFTLESS_BENCH_CHILD", "1")
        .env("TF_CLI_CONFIG_FILE", rc)
        .env("HOME", home)
        .env("CHECKPOINT_DISABLE", "1")
        .status()
        .unwrap();
    std::process::exit(status.code().unwrap_or(1));
}
