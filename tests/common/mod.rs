//! Test harness for end-to-end tests on the local store: real terraform (from the
//! project-local tools dir), real providers (hashicorp/null and the drifttest provider),
//! real git repositories, and the real `driftless` and `driftless-runner` binaries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tools_dir() -> PathBuf {
    std::env::var_os("DRIFTLESS_TOOLS").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".tools"))
}

pub mod backend;
pub mod helm;
pub mod http;
pub mod kube;
pub mod registry;
pub mod s3;
pub mod sops;
pub mod webdriver;

/// A tool the test needs is missing: fail on CI, skip with a reason elsewhere.
pub fn missing<T>(what: &str) -> Option<T> {
    let hint = "run scripts/setup-tools.sh --with-drifttest and cargo build --workspace --bins";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing on CI; {hint}");
    }
    eprintln!("SKIPPED: {what} is missing; {hint}");
    None
}

#[derive(Clone, Debug)]
pub struct Tools {
    pub terraform: PathBuf,
    pub cli_config: PathBuf,
    pub driftless: PathBuf,
    pub runner: PathBuf,
}

impl Tools {
    pub fn find() -> Option<Tools> {
        let tools = tools_dir();
        let terraform = tools.join("bin/terraform");
        let cli_config = tools.join("terraformrc");
        let drifttest =
            tools.join("providers/registry.terraform.io/driftless/drifttest/0.1.0/linux_amd64/terraform-provider-drifttest_v0.1.0");
        let driftless = PathBuf::from(env!("CARGO_BIN_EXE_driftless"));
        let runner = driftless.with_file_name("driftless-runner");
        for (what, path) in
            [("terraform", &terraform), ("terraformrc", &cli_config), ("the drifttest provider", &drifttest), ("driftless-runner", &runner)]
        {
            if !path.exists() {
                return missing(&format!("{what} ({})", path.display()));
            }
        }
        Some(Tools { terraform, cli_config, driftless, runner })
    }
}

/// An engine the end-to-end tests run modules with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The pinned terraform (`.tools/bin/terraform`).
    Terraform,
    /// OpenTofu built by `scripts/build-go-tool.sh tofu` (`.tools/bin/tofu`).
    Tofu,
}

/// The tofu scripts/setup-tools.sh builds; fails on CI when it is missing, never skips.
pub fn tofu() -> Option<PathBuf> {
    let tofu = tools_dir().join("bin/tofu");
    if tofu.exists() { Some(tofu) } else { missing(&format!("tofu ({})", tofu.display())) }
}

/// The version an engine binary reports (`version -json`), e.g. "1.10.10".
pub fn engine_version(bin: &Path) -> String {
    let out = Command::new(bin)
        .args(["version", "-json"])
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{} version -json: {e}", bin.display()));
    v["terraform_version"].as_str().unwrap().to_string()
}

/// Runs a scenario (`fn(Engine)`) once per engine: `mod NAME { fn terraform, fn tofu }`, so
/// `cargo test NAME` runs both and `cargo test tofu` every scenario under OpenTofu.
#[macro_export]
macro_rules! with_each_engine {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn terraform() {
                super::$scenario(super::common::Engine::Terraform)
            }
            #[test]
            fn tofu() {
                super::$scenario(super::common::Engine::Tofu)
            }
        }
    )*};
}

/// One isolated world: its own HOME, store, git repository and managed directory.
pub struct World {
    pub dir: tempfile::TempDir,
    pub tools: Tools,
    /// The terraform the runners use (defaults to the pinned one).
    pub terraform: PathBuf,
    /// The tofu the runners use (`--tofu`), when the world has one: objects without
    /// `spec.engine` then run tofu.
    pub tofu: Option<PathBuf>,
    pub extra_env: Vec<(String, String)>,
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.status, 0, "command failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn fails(self) -> Self {
        assert_ne!(self.status, 0, "command should have failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl World {
    pub fn new() -> Option<World> {
        let tools = Tools::find()?;
        let dir = tempfile::Builder::new().prefix("driftless-e2e-").tempdir().unwrap();
        for sub in ["home", "repo", "managed"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let terraform = tools.terraform.clone();
        let w = World { dir, tools, terraform, tofu: None, extra_env: Vec::new() };
        w.git(&["init", "--quiet", "--initial-branch=main"]);
        Some(w)
    }

    /// A world whose objects (without `spec.engine`) run `engine`: with tofu, the runners get
    /// both binaries and pick tofu by themselves, as the runner image does.
    pub fn with_engine(engine: Engine) -> Option<World> {
        let mut w = World::new()?;
        if engine == Engine::Tofu {
            w.tofu = Some(tofu()?);
        }
        Some(w)
    }

    /// The engine binary the runners of this world run by default.
    pub fn engine_binary(&self) -> &Path {
        self.tofu.as_deref().unwrap_or(&self.terraform)
    }

    /// The version of the engine that last wrote NAME's state (`terraform_version` in it):
    /// which engine really ran.
    pub fn state_written_by(&self, name: &str) -> String {
        let path = self.state_dir(name).join("default.tfstate");
        let state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap();
        state["terraform_version"].as_str().unwrap().to_string()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn managed(&self, file: &str) -> PathBuf {
        self.path().join("managed").join(file)
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path().join("repo"))
            .env("HOME", self.path().join("home"))
            .env("GIT_AUTHOR_NAME", "test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes files into the repository (paths relative to it) and commits them.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let p = self.path().join("repo").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content.replace("__MANAGED__", &self.path().join("managed").display().to_string())).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn repo_url(&self) -> String {
        format!("file://{}", self.path().join("repo").display())
    }

    /// Runs `driftless --store <store> ARGS` with terraform isolated from this machine.
    pub fn driftless(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.tools.driftless);
        cmd.arg("--store").arg(self.store()).arg("--terraform").arg(&self.terraform);
        if let Some(tofu) = &self.tofu {
            cmd.arg("--tofu").arg(tofu);
        }
        cmd.args(args);
        self.env(&mut cmd);
        to_run(cmd.output().unwrap())
    }

    pub fn env(&self, cmd: &mut Command) {
        // No AWS settings of this machine, and never instance metadata (a non-loopback
        // address): S3 tests name their endpoint, region and credentials.
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        cmd.env("HOME", self.path().join("home"))
            .env("TF_CLI_CONFIG_FILE", &self.tools.cli_config)
            .env("DRIFTLESS_RUNNER", &self.tools.runner)
            .env_remove("DRIFTLESS_STORE")
            .env_remove("TF_LOG")
            .env_remove("TF_PLUGIN_CACHE_DIR");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
    }

    /// Applies YAML (with `__REPO__` and `__MANAGED__` filled in).
    pub fn apply(&self, yaml: &str) -> Run {
        let text = yaml.replace("__REPO__", &self.repo_url()).replace("__MANAGED__", &self.path().join("managed").display().to_string());
        let file = self.path().join(format!("objects-{}.yaml", rand_suffix()));
        std::fs::write(&file, text).unwrap();
        self.driftless(&["apply", "-f", file.to_str().unwrap()])
    }

    pub fn get(&self, kind: &str, name: &str) -> Value {
        let run = self.driftless(&["get", kind, name, "-o", "json"]).ok();
        serde_json::from_str(&run.stdout).unwrap()
    }

    pub fn condition(&self, name: &str, type_: &str) -> Value {
        let tf = self.get("terraform", name);
        tf["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == type_).cloned().unwrap_or(Value::Null)
    }

    pub fn ready_reason(&self, name: &str) -> String {
        self.condition(name, "Ready")["reason"].as_str().unwrap_or_default().to_string()
    }

    pub fn pending_plan(&self, name: &str) -> Option<String> {
        let tf = self.get("terraform", name);
        let plan = &tf["status"]["plan"];
        (plan["pending"] == Value::Bool(true)).then(|| plan["id"].as_str().unwrap().to_string())
    }

    pub fn reconcile(&self, name: &str) -> Run {
        self.driftless(&["reconcile", "terraform", name, "--with-source"])
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.store().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn events_with_reason(&self, name: &str, reason: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["name"] == name && e["reason"] == reason).collect()
    }

    /// Every byte the store holds outside the outputs secret and the state (which terraform
    /// itself keeps in the clear, as every backend does): where a secret must never appear.
    pub fn store_text_outside_secrets_and_state(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![self.store()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).unwrap().flatten() {
                    stack.push(e.path());
                }
                continue;
            }
            let s = p.display().to_string();
            if s.contains("/objects/secret/")
                || s.contains("/backend/state/")
                || s.ends_with(".tfplan")
                || s.contains("/artifacts/")
                || s.contains("/cache/")
            {
                continue;
            }
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
        out
    }
}

fn to_run(out: Output) -> Run {
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A module with one drifttest file and one null resource, and a sensitive output.
pub const MODULE: &str = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

variable "content" {
  type = string
}

variable "target_dir" {
  type = string
}

variable "token" {
  type      = string
  sensitive = true
  default   = "unset"
}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = var.content
}

resource "null_resource" "marker" {
  triggers = {
    content = var.content
  }
}

output "path" {
  value = drifttest_file.main.path
}

output "token" {
  value     = var.token
  sensitive = true
}
"#;

/// GitRepository + Terraform named NAME reading the repo at `path`.
pub fn objects(name: &str, path: &str, approve: &str, extra_spec: &str) -> String {
    format!("{}---\n{}", git_repository(name, "main"), terraform_object(name, name, path, approve, "", extra_spec))
}

impl World {
    /// The directory of a Terraform's state in the local backend.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.store().join("backend/state/Terraform/default").join(name)
    }

    /// A condition of any kind's object (`Value::Null` when absent).
    pub fn condition_of(&self, kind: &str, name: &str, type_: &str) -> Value {
        let o = self.get(kind, name);
        o["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == type_).cloned().unwrap_or(Value::Null)
    }

    /// Removes files from the repository and commits.
    pub fn commit_removal(&self, paths: &[&str], message: &str) -> String {
        for p in paths {
            std::fs::remove_file(self.path().join("repo").join(p)).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The number of events of an object with one of these reasons.
    pub fn count_events(&self, name: &str, reasons: &[&str]) -> usize {
        self.events().iter().filter(|e| e["name"] == name && reasons.iter().any(|r| e["reason"] == *r)).count()
    }
}

/// A Terraform object (no GitRepository) named NAME reading GitRepository REPO at `path`,
/// writing into `__MANAGED__/<target_subdir>`.
pub fn terraform_object(name: &str, repo: &str, path: &str, approve: &str, target_subdir: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: {name}
spec:
  sourceRef:
    kind: GitRepository
    name: {repo}
  path: {path}
  interval: 1h
  approvePlan: "{approve}"
  vars:
    - name: content
      value: hello
    - name: target_dir
      value: __MANAGED__{sep}{target_subdir}
{extra_spec}"#,
        sep = if target_subdir.is_empty() { "" } else { "/" },
    )
}

/// A GitRepository named NAME on this world's repository, branch `branch`.
pub fn git_repository(name: &str, branch: &str) -> String {
    format!(
        r#"apiVersion: driftless.dev/v1alpha1
kind: GitRepository
metadata:
  name: {name}
spec:
  url: __REPO__
  interval: 1h
  ref:
    branch: {branch}
"#
    )
}
