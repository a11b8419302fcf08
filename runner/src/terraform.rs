//! The terraform CLI, run with an isolated environment and a deadline: `terraform` or OpenTofu's
//! `tofu` (the same CLI; [`crate::engine`] picks which), named in every message as the engine
//! that ran.
//!
//! Terraform is never killed mid-operation when it can be helped: at the run's deadline, or
//! when the runner is told to stop (SIGTERM: a pod's eviction or drain; SIGINT), terraform gets
//! SIGINT, its own graceful stop (it finishes the resource operations in flight and writes
//! state), and only [`GRACE`] later, if it is still running, SIGKILL. So a drained node does
//! not orphan what an apply created.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::engine::Engine;

/// How long terraform may take to stop gracefully after SIGINT. Shorter than what the
/// dispatchers allow past the deadline (30 s for a process, 120 s for a pod).
pub const GRACE: Duration = Duration::from_secs(25);

/// Set once the runner is asked to stop (SIGTERM or SIGINT): every terraform run stops
/// gracefully, and no new one starts.
fn stop_signal() -> &'static tokio::sync::watch::Sender<bool> {
    static STOP: OnceLock<tokio::sync::watch::Sender<bool>> = OnceLock::new();
    STOP.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// Asks every terraform run to stop gracefully (the runner got SIGTERM or SIGINT).
pub fn request_stop() {
    stop_signal().send_replace(true);
}

/// Whether a stop was asked for.
pub fn stopping() -> bool {
    *stop_signal().borrow()
}

#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error(transparent)]
    NotFound(#[from] crate::engine::LocateError),
    #[error("could not start {engine}: {source}")]
    Spawn { engine: Engine, source: std::io::Error },
    /// `verb` names the engine: "tofu plan".
    #[error("{verb} did not finish within {deadline} and was stopped")]
    Timeout { verb: String, deadline: String },
    /// The runner was told to stop (SIGTERM: a drain, an eviction); terraform stopped
    /// gracefully and wrote its state. The text names the engine: "tofu apply".
    #[error("{0} was stopped: the runner was asked to stop (SIGTERM); it stopped gracefully and saved its state")]
    Stopped(String),
}

pub struct Terraform {
    engine: Engine,
    bin: PathBuf,
    dir: PathBuf,
    deadline: Instant,
    /// The deadline as a timeout message names it ("the run's deadline of 300 s").
    deadline_name: String,
    /// Environment the run sets for terraform (`HOME` of file mappings, `TF_CLI_CONFIG_FILE`).
    env: Vec<(String, PathBuf)>,
}

pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Everything a pipe gives until it closes.
async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf).await;
    }
    buf
}

impl Terraform {
    /// The engine and binary `found` (by [`crate::engine::locate`] or
    /// [`crate::engine::locate_for_plan`]), run in `dir` until `deadline`.
    pub fn new(found: crate::engine::Located, dir: &Path, deadline: Instant, deadline_name: &str) -> Self {
        Self {
            engine: found.engine,
            bin: found.bin,
            dir: dir.to_path_buf(),
            deadline,
            deadline_name: deadline_name.to_string(),
            env: Vec::new(),
        }
    }

    /// The same terraform with `name` set to `value` in its environment.
    pub fn with_env(mut self, name: &str, value: PathBuf) -> Self {
        self.env.push((name.to_string(), value));
        self
    }

    /// The same terraform under another deadline (an apply's own).
    pub fn until(&self, deadline: Instant, deadline_name: &str) -> Self {
        Self {
            engine: self.engine,
            bin: self.bin.clone(),
            dir: self.dir.clone(),
            deadline,
            deadline_name: deadline_name.to_string(),
            env: self.env.clone(),
        }
    }

    /// The engine that runs: what messages call it.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn version(&self) -> Option<String> {
        let out = self.exec(&["version", "-json"]).await.ok()?;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v.get("terraform_version").and_then(|v| v.as_str()).map(str::to_string)
    }

    pub async fn exec(&self, args: &[&str]) -> Result<Finished, TerraformError> {
        let verb = format!("{} {}", self.engine, args.first().copied().unwrap_or_default());
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            // Debug logs can carry variable values; the workspace name is ours to choose.
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PATH")
            .env_remove("TF_WORKSPACE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if stopping() {
            return Err(TerraformError::Stopped(verb));
        }
        let mut child = cmd.spawn().map_err(|source| TerraformError::Spawn { engine: self.engine, source })?;
        let stdout = tokio::spawn(read_all(child.stdout.take()));
        let stderr = tokio::spawn(read_all(child.stderr.take()));
        let mut stop = stop_signal().subscribe();
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let interrupted = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|source| TerraformError::Spawn { engine: self.engine, source })?;
                let stdout = stdout.await.unwrap_or_default();
                let stderr = stderr.await.unwrap_or_default();
                return Ok(Finished {
                    code: status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                });
            }
            _ = tokio::time::sleep_until(deadline) => TerraformError::Timeout { verb: verb.clone(), deadline: self.deadline_name.clone() },
            _ = stop.wait_for(|s| *s) => TerraformError::Stopped(verb.clone()),
        };
        // Terraform's own graceful stop, then the hard one.
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            tracing::warn!("{interrupted}; sending {} SIGINT", self.engine);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
        }
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            tracing::error!("{verb} did not stop within {}s of SIGINT; killing it", GRACE.as_secs());
            let _ = child.kill().await;
        }
        Err(interrupted)
    }
}
