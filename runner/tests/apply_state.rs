//! An apply's state is never lost with its workspace, and an apply has its own deadline. Real
//! terraform and providers (hashicorp/null, and drifttest's file resource, made slow with
//! `DRIFTTEST_APPLY_DELAY_MS`), the real runner binary, a local backend that is broken while
//! terraform applies: terraform cannot save the state and leaves `errored.tfstate`, which the
//! runner saves to the backend once it is back, or carries in its result when it stays down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use driftless_core::artifact::ArtifactStore;
use driftless_core::contract::{BackendSpec, ObjectKey, Operation, Outcome, RunErrorKind, RunResult, RunSpec, RunVariable};
use serde_json::Value;

const MODULE: &str = r#"
terraform {
  required_providers {
    drifttest = { source = "driftless/drifttest", version = "0.1.0" }
    null      = { source = "hashicorp/null", version = "2.1.2" }
  }
}

variable "target_dir" {
  type = string
}

resource "null_resource" "marker" {}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = "hello"
}
"#;

/// One test at a time: they time terraform, and two terraforms on a small machine skew that.
static SERIAL: Mutex<()> = Mutex::new(());

struct World {
    dir: tempfile::TempDir,
    terraform: PathBuf,
    cli_config: PathBuf,
}

impl World {
    /// The tools from the project's `.tools`; missing ones fail on CI and skip elsewhere.
    fn new() -> Option<World> {
        let tools = std::env::var_os("DRIFTLESS_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
        let terraform = tools.join("bin/terraform");
        let cli_config = tools.join("terraformrc");
        let drifttest =
            find_file(&tools.join("providers"), "terraform-provider-drifttest").unwrap_or_else(|| tools.join("providers/drifttest"));
        for path in [&terraform, &cli_config, &drifttest] {
            if !path.exists() {
                let why = format!("{} is missing; run scripts/setup-tools.sh --with-drifttest", path.display());
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
                eprintln!("SKIPPED: {why}");
                return None;
            }
        }
        let dir = tempfile::Builder::new().prefix("driftless-apply-state-").tempdir().unwrap();
        for sub in ["home", "module", "managed"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("module/main.tf"), MODULE).unwrap();
        Some(World { dir, terraform, cli_config })
    }

    fn backend(&self) -> PathBuf {
        self.dir.path().join("backend")
    }

    /// Where the local backend keeps this object's state and lock.
    fn state_dir(&self) -> PathBuf {
        self.backend().join("state/Terraform/default/app")
    }

    /// A plan applied in the same run (auto-approval).
    fn spec(&self, timeout_seconds: u64, apply_timeout_seconds: Option<u64>) -> RunSpec {
        let store = ArtifactStore::new(self.dir.path().join("artifacts"));
        let artifact = store.archive_dir("GitRepository", "default", "app", &self.dir.path().join("module"), None).unwrap();
        RunSpec {
            operation: Operation::Plan,
            object: ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "app".into() },
            artifact_url: store.file_url(&artifact.path).unwrap(),
            artifact_digest: artifact.digest,
            source_revision: "main@sha1:0123456789abcdef".into(),
            path: "./".into(),
            workspace: "default".into(),
            state_name: "default".into(),
            state_suffix: None,
            options: Default::default(),
            variables: vec![RunVariable {
                name: "target_dir".into(),
                value: self.dir.path().join("managed").display().to_string().into(),
                sensitive: false,
            }],
            inputs_digest: "sha256:inputs".into(),
            backend: BackendSpec::Local { root: self.backend() },
            custom_backend: None,
            plan_id: None,
            plan_digest: None,
            apply_after_plan: true,
            drift_ignore: Vec::new(),
            render_plan: false,
            terraform_path: Some(self.terraform.clone()),
            engine: None,
            tofu_path: None,
            lock_holder: "apply-state-test".into(),
            timeout_seconds,
            apply_timeout_seconds,
            unsaved_state: None,
        }
    }

    /// Starts the runner on `spec`; drifttest's file takes `delay` to create.
    fn start(&self, spec: &RunSpec, delay: Duration) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driftless-runner"));
        cmd.env("HOME", self.dir.path().join("home"))
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("DRIFTTEST_APPLY_DELAY_MS", delay.as_millis().to_string())
            .env_remove("TF_LOG")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&serde_json::to_vec(spec).unwrap()).unwrap();
        child
    }

    /// Waits until the runner runs `terraform apply`, then `after` more.
    fn wait_for_apply(&self, runner: &mut Child, after: Duration) {
        let started = Instant::now();
        while !applying(runner.id()) {
            assert!(started.elapsed() < Duration::from_secs(120), "the apply never started");
            assert!(runner.try_wait().unwrap().is_none(), "the runner ended before the apply");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(after);
    }

    /// Breaks the backend: the object's state directory becomes a file, so every read and
    /// write of its state and lock fails.
    fn break_backend(&self) {
        std::fs::rename(self.state_dir(), self.state_dir().with_extension("away")).unwrap();
        std::fs::write(self.state_dir(), "not a directory").unwrap();
    }

    fn heal_backend(&self) {
        std::fs::remove_file(self.state_dir()).unwrap();
        std::fs::rename(self.state_dir().with_extension("away"), self.state_dir()).unwrap();
    }

    fn backend_state(&self) -> Option<Value> {
        std::fs::read(self.state_dir().join("default.tfstate")).ok().map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn lock_left(&self) -> bool {
        self.state_dir().join("default.lock").exists()
    }

    fn managed_file(&self) -> PathBuf {
        self.dir.path().join("managed/main.txt")
    }
}

/// A file under `dir` whose name starts with `prefix` (the provider mirror's layout is
/// terraform's business).
fn find_file(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                return Some(path);
            }
        }
    }
    None
}

fn finish(runner: Child) -> RunResult {
    let out = runner.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the runner delivers a result:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The resource addresses a state records.
fn addresses(state: &Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{}.{}", r["type"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default()))
        .collect()
}

/// Whether a child process of `parent` runs `terraform apply`.
fn applying(parent: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the fields after the command name's closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        ppid == Some(parent) && cmdline.split(|b| *b == 0).any(|a| a == b"apply")
    })
}

#[test]
fn a_state_the_backend_refused_at_the_end_of_an_apply_is_saved_once_it_is_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = World::new() else { return };
    let mut runner = w.start(&w.spec(300, None), Duration::from_secs(5));
    // Terraform has locked and read the state; the null resource is created, the file is
    // being created: the backend goes away before terraform writes the state.
    w.wait_for_apply(&mut runner, Duration::from_secs(2));
    w.break_backend();
    // Terraform fails to save the state, writes errored.tfstate and exits; the backend comes
    // back while the runner is still trying.
    let started = Instant::now();
    while applying(runner.id()) {
        assert!(started.elapsed() < Duration::from_secs(120), "the apply never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.heal_backend();
    let result = finish(runner);

    let error = result.error.expect("an apply that could not save its state failed");
    assert!(error.message.contains("driftless saved it from errored.tfstate"), "{error:?}");
    assert_eq!(result.unsaved_state, None);
    let state = w.backend_state().expect("the backend holds a state");
    let recorded = addresses(&state);
    assert!(
        recorded.contains(&"null_resource.marker".to_string()) && recorded.contains(&"drifttest_file.main".to_string()),
        "{recorded:?}"
    );
    assert!(w.managed_file().exists(), "the file was created, and the state says so");
    assert!(!w.lock_left(), "terraform's lock, which it could not release, was released");
}

#[test]
fn a_state_the_backend_never_takes_is_carried_in_the_result() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = World::new() else { return };
    let mut runner = w.start(&w.spec(300, None), Duration::from_secs(5));
    w.wait_for_apply(&mut runner, Duration::from_secs(2));
    w.break_backend();
    let result = finish(runner);
    w.heal_backend();

    let error = result.error.expect("an apply that could not save its state failed");
    assert_eq!(error.kind, RunErrorKind::Backend, "{error:?}");
    assert!(error.message.contains("kept in the run's result (unsavedState)"), "{error:?}");
    let state: Value = serde_json::from_str(&result.unsaved_state.expect("the state is in the result").state).unwrap();
    let recorded = addresses(&state);
    assert!(
        recorded.contains(&"null_resource.marker".to_string()) && recorded.contains(&"drifttest_file.main".to_string()),
        "{recorded:?}"
    );
    assert!(w.managed_file().exists());
    // The backend itself never got it: the result is the only record.
    assert!(w.backend_state().map(|s| addresses(&s)).unwrap_or_default().is_empty());
}

#[test]
fn an_apply_is_not_cut_off_by_the_plan_deadline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = World::new() else { return };
    // The file takes longer to create than the whole plan deadline.
    let started = Instant::now();
    let result = finish(w.start(&w.spec(20, None), Duration::from_secs(22)));
    assert!(started.elapsed() > Duration::from_secs(22));
    assert_eq!(result.outcome, Outcome::Applied, "{:?}", result.error);
    assert!(addresses(&w.backend_state().unwrap()).contains(&"drifttest_file.main".to_string()));
}

#[test]
fn an_apply_stops_gracefully_at_its_own_deadline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(w) = World::new() else { return };
    let result = finish(w.start(&w.spec(300, Some(3)), Duration::from_secs(8)));
    let error = result.error.expect("an apply past its deadline failed");
    assert_eq!(error.kind, RunErrorKind::Timeout, "{error:?}");
    assert!(error.message.contains("terraform apply did not finish within the apply's deadline of 3 s"), "{}", error.message);
    // Terraform finished what was in flight and saved it: nothing is orphaned.
    let state = w.backend_state().expect("a state was written");
    assert!(addresses(&state).contains(&"null_resource.marker".to_string()), "{state}");
    assert_eq!(w.managed_file().exists(), addresses(&state).contains(&"drifttest_file.main".to_string()));
    assert!(!w.lock_left());
}
