//! The terraform CLI, run with an isolated environment and a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum TerraformError {
    #[error("terraform not found ({0}); install it or set the runner's terraform path")]
    NotFound(String),
    #[error("could not start terraform: {0}")]
    Spawn(std::io::Error),
    #[error("terraform {0} did not finish before the run's deadline")]
    Timeout(String),
}

pub struct Terraform {
    bin: PathBuf,
    dir: PathBuf,
    deadline: Instant,
}

pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Terraform {
    pub fn locate(explicit: Option<&Path>, dir: &Path, deadline: Instant) -> Result<Self, TerraformError> {
        let bin = match explicit {
            Some(p) if p.is_file() => p.to_path_buf(),
            Some(p) => return Err(TerraformError::NotFound(format!("{} does not exist", p.display()))),
            None => which::which("terraform").map_err(|e| TerraformError::NotFound(format!("not on PATH: {e}")))?,
        };
        Ok(Self { bin, dir: dir.to_path_buf(), deadline })
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
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let child = cmd.spawn().map_err(TerraformError::Spawn)?;
        match tokio::time::timeout(remaining, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Finished {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(e)) => Err(TerraformError::Spawn(e)),
            Err(_) => Err(TerraformError::Timeout(verb)),
        }
    }
}
