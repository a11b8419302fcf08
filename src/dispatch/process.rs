//! Runs `driftless-runner` as a local child process: the embedded default and the tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{DispatchError, RunResult, RunSpec, RunnerDispatch};

const RUNNER: &str = "driftless-runner";

#[derive(Clone, Debug)]
pub struct ProcessDispatch {
    /// The runner, or why none was found: said by the first run that needs it, so that
    /// commands that run nothing (`apply -f`, `get`) work without a runner beside them.
    runner: Result<PathBuf, String>,
    /// Set in the runner's environment besides what it inherits.
    env: Vec<(String, std::ffi::OsString)>,
}

impl ProcessDispatch {
    pub fn new(runner: PathBuf) -> Self {
        Self { runner: Ok(runner), env: Vec::new() }
    }

    /// Runners get `key=value` in their environment (`KUBECONFIG` for a CLI's own runs).
    pub fn with_env(mut self, key: &str, value: impl Into<std::ffi::OsString>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// [`locate`](Self::locate), keeping a failure for the first run.
    pub fn locate_when_needed() -> Self {
        match Self::locate() {
            Ok(found) => found,
            Err(DispatchError::RunnerNotFound(why)) => Self { runner: Err(why), env: Vec::new() },
            Err(other) => Self { runner: Err(other.to_string()), env: Vec::new() },
        }
    }

    /// Finds the runner: `$DRIFTLESS_RUNNER`, beside this executable (an install or a cargo
    /// target dir, also from a test binary in `deps/`), then `PATH`.
    pub fn locate() -> Result<Self, DispatchError> {
        if let Some(p) = std::env::var_os("DRIFTLESS_RUNNER") {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(Self::new(p))
            } else {
                Err(DispatchError::RunnerNotFound(format!("DRIFTLESS_RUNNER={} is not a file", p.display())))
            };
        }
        if let Ok(exe) = std::env::current_exe() {
            let dirs = exe.parent().into_iter().chain(exe.parent().and_then(Path::parent));
            for dir in dirs {
                let candidate = dir.join(RUNNER);
                if candidate.is_file() {
                    return Ok(Self::new(candidate));
                }
            }
        }
        which::which(RUNNER).map(Self::new).map_err(|_| {
            DispatchError::RunnerNotFound(format!(
                "{RUNNER} is not beside driftless nor on PATH; build it with `cargo build -p driftless-runner` or set DRIFTLESS_RUNNER"
            ))
        })
    }
}

impl RunnerDispatch for ProcessDispatch {
    async fn run(&self, spec: &RunSpec) -> Result<RunResult, DispatchError> {
        let runner = self.runner.as_ref().map_err(|why| DispatchError::RunnerNotFound(why.clone()))?;
        let input = serde_json::to_vec(spec).map_err(|e| DispatchError::Spawn(std::io::Error::other(e)))?;
        let mut child = tokio::process::Command::new(runner)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(DispatchError::Spawn)?;
        let mut stdin = child.stdin.take().ok_or_else(|| DispatchError::Spawn(std::io::Error::other("no stdin")))?;
        let mut stdout = child.stdout.take().ok_or_else(|| DispatchError::Spawn(std::io::Error::other("no stdout")))?;
        let mut stderr = child.stderr.take().ok_or_else(|| DispatchError::Spawn(std::io::Error::other("no stderr")))?;
        let object = spec.object.to_string();
        // Slack over the runner's own deadline (the plan's, plus the apply's when it applies),
        // which it enforces on terraform: terraform's graceful stop (25 s) and saving an
        // errored.tfstate (about 15 s) come after it.
        let deadline = spec.longest_run().saturating_add(std::time::Duration::from_secs(60));
        let work = async {
            stdin.write_all(&input).await.map_err(DispatchError::Spawn)?;
            drop(stdin);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (r1, r2) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            r1.and(r2).map_err(DispatchError::Spawn)?;
            let status = child.wait().await.map_err(DispatchError::Spawn)?;
            Ok::<_, DispatchError>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(deadline, work).await {
            Ok(r) => r?,
            Err(_) => return Err(DispatchError::Deadline { object, seconds: deadline.as_secs() }),
        };
        for line in String::from_utf8_lossy(&err).lines() {
            tracing::debug!(target: "driftless::runner", object = %object, "{line}");
        }
        serde_json::from_slice::<RunResult>(&out).map_err(|_| {
            let text = String::from_utf8_lossy(&err);
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            DispatchError::NoResult {
                object,
                status: status.to_string(),
                stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            }
        })
    }
}
