//! The terraform CLI, run with an isolated environment and a deadline.
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
    #[error("terraform not found ({0}); install it or set the runner's terraform path")]
    NotFound(String),
    #[error("could not start terraform: {0}")]
    Spawn(std::io::Error),
    #[error("terraform {verb} did not finish within {deadline} and was stopped")]
    Timeout { verb: String, deadline: String },
    /// The runner was told to stop (SIGTERM: a drain, an eviction); terraform stopped
    /// gracefully and wrote its state.
    #[error("terraform {0} was stopped: the runner was asked to stop (SIGTERM); terraform stopped gracefully and saved its state")]
    Stopped(String),
}

pub struct Terraform {
    bin: PathBuf,
    dir: PathBuf,
    deadline: Instant,
    /// The deadline as a timeout message names it ("the run's deadline of 300 s").
    deadline_name: String,
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
    /// Terraform at `explicit`, or on PATH, run in `dir` until `deadline` (`deadline_name`
    /// is how a timeout names it).
    pub fn locate(explicit: Option<&Path>, dir: &Path, deadline: Instant, deadline_name: &str) -> Result<Self, TerraformError> {
        let bin = match explicit {
            Some(p) if p.is_file() => p.to_path_buf(),
            Some(p) => return Err(TerraformError::NotFound(format!("{} does not exist", p.display()))),
            None => which::which("terraform").map_err(|e| TerraformError::NotFound(format!("not on PATH: {e}")))?,
        };
        Ok(Self { bin, dir: dir.to_path_buf(), deadline, deadline_name: deadline_name.to_string() })
    }

    /// The same terraform under another deadline (an apply's own).
    pub fn until(&self, deadline: Instant, deadline_name: &str) -> Self {
        Self { bin: self.bin.clone(), dir: self.dir.clone(), deadline, deadline_name: deadline_name.to_string() }
    }

    pub async fn version(&self) -> Option<String> {
        let out = self.exec(&["version", "-json"]).await.ok()?;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v.get("terraform_version").and_then(|v| v.as_str()).map(str::to_string)
    }

    pub async fn exec(&self, args: &[&str]) -> Result<Finished, TerraformError> {
        let verb = args.first().copied().unwrap_or_default().to_string();
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if stopping() {
            return Err(TerraformError::Stopped(verb));
        }
        let mut child = cmd.spawn().map_err(TerraformError::Spawn)?;
        let stdout = tokio::spawn(read_all(child.stdout.take()));
        let stderr = tokio::spawn(read_all(child.stderr.take()));
        let mut stop = stop_signal().subscribe();
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let interrupted = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(TerraformError::Spawn)?;
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
            tracing::warn!("{interrupted}; sending terraform SIGINT");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
        }
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            tracing::error!("terraform {verb} did not stop within {}s of SIGINT; killing it", GRACE.as_secs());
            let _ = child.kill().await;
        }
        Err(interrupted)
    }
}
