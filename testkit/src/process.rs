//! Child processes that never outlive their test: each runs in its own process group
//! (so its own children die with it), is killed on drop, and is also registered with a
//! [`Watchdog`] that cleans up when the test process dies without running destructors
//! (a static shared cluster, `std::process::exit`, SIGKILL, Ctrl-C).

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Errors spawning or supervising processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The process could not be started.
    #[error("starting {name} ({program}): {source}")]
    Spawn {
        /// Short name (etcd, kube-apiserver, a container).
        name: String,
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A log file could not be created.
    #[error("creating log file {path}: {source}")]
    Log {
        /// The log path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The watchdog could not be started.
    #[error("starting the cleanup watchdog: {0}")]
    Watchdog(#[source] std::io::Error),
}

/// The watchdog's program: it reads `pg PGID`, `unpg PGID` and `dir PATH` lines from
/// stdin; when stdin closes (its parent finished or died) it kills the process groups
/// still registered and removes the directories. It runs in its own process group so that
/// a terminal's Ctrl-C, which kills the test, does not kill the watchdog too.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT TERM HUP
pgs=" "
dirs=""
while IFS= read -r line; do
  case "$line" in
    "pg "*) pgs="$pgs${line#pg } " ;;
    "unpg "*) pgs=$(printf '%s' "$pgs" | sed "s/ ${line#unpg } / /") ;;
    "dir "*) dirs="$dirs${line#dir }
" ;;
  esac
done
for p in $pgs; do kill -s KILL -- -"$p" 2>/dev/null; done
printf '%s' "$dirs" | while IFS= read -r d; do [ -n "$d" ] && rm -rf -- "$d"; done
exit 0
"#;

/// Cleans up process groups and directories when the test process goes away, however
/// it goes away. Cheap: one `sh` per cluster, idle on a pipe.
pub struct Watchdog {
    stdin: Mutex<Option<std::process::ChildStdin>>,
    child: Mutex<std::process::Child>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}

impl Watchdog {
    /// Starts a watchdog.
    pub fn spawn() -> Result<Arc<Self>, ProcessError> {
        use std::os::unix::process::CommandExt as _;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(ProcessError::Watchdog)?;
        let stdin = child.stdin.take();
        Ok(Arc::new(Self { stdin: Mutex::new(stdin), child: Mutex::new(child) }))
    }

    fn send(&self, line: &str) {
        let Ok(mut guard) = self.stdin.lock() else { return };
        if let Some(stdin) = guard.as_mut()
            && let Err(err) = writeln!(stdin, "{line}")
        {
            tracing::warn!(%err, "watchdog is gone; cleanup after a crash may be incomplete");
        }
    }

    /// Kill this process group if the test process dies.
    pub fn guard_group(&self, pgid: u32) {
        self.send(&format!("pg {pgid}"));
    }

    /// The group is gone (reaped): forget it, so a reused id is never killed.
    pub fn release_group(&self, pgid: u32) {
        self.send(&format!("unpg {pgid}"));
    }

    /// Remove this directory if the test process dies.
    pub fn guard_dir(&self, dir: &Path) {
        if let Some(dir) = dir.to_str()
            && !dir.contains('\n')
        {
            self.send(&format!("dir {dir}"));
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing stdin makes the watchdog clean up and exit; reap it so no zombie stays.
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to a whole process group; errors (group already gone) are ignored.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// A child in its own process group, with stdout and stderr in a log file, killed (the
/// whole group) on drop.
pub struct ManagedProcess {
    name: String,
    child: tokio::process::Child,
    pgid: Option<u32>,
    log_path: PathBuf,
    watchdog: Arc<Watchdog>,
}

impl std::fmt::Debug for ManagedProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedProcess").field("name", &self.name).field("pgid", &self.pgid).finish_non_exhaustive()
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Short name for logs and errors.
    pub name: String,
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// When set, the environment is exactly this; else the parent's is inherited.
    pub env: Option<Vec<(String, String)>>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
}

impl ManagedProcess {
    /// Spawns `spec` in a new process group registered with `watchdog`.
    pub fn spawn(spec: &Spec, watchdog: &Arc<Watchdog>) -> Result<Self, ProcessError> {
        let log = std::fs::File::create(&spec.log_path).map_err(|source| ProcessError::Log { path: spec.log_path.clone(), source })?;
        let log2 = log.try_clone().map_err(|source| ProcessError::Log { path: spec.log_path.clone(), source })?;
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2)).process_group(0).kill_on_drop(true);
        if let Some(env) = &spec.env {
            cmd.env_clear();
            cmd.envs(env.iter().map(|(k, v)| (OsStr::new(k), OsStr::new(v))));
        }
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        })?;
        // With process_group(0) the group id is the child's pid.
        let pgid = child.id();
        if let Some(pgid) = pgid {
            watchdog.guard_group(pgid);
        }
        tracing::debug!(name = %spec.name, ?pgid, "started");
        Ok(Self { name: spec.name.clone(), child, pgid, log_path: spec.log_path.clone(), watchdog: Arc::clone(watchdog) })
    }

    /// The short name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process group id (= pid), while it runs.
    pub fn pgid(&self) -> Option<u32> {
        self.pgid
    }

    /// The exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        // The leader is reaped; kill stragglers in its group, then forget the group.
        self.kill_group(Signal::SIGKILL);
        if let Some(pgid) = self.pgid.take() {
            self.watchdog.release_group(pgid);
        }
        status
    }

    /// Sends `signal` to the process group.
    pub fn kill_group(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, signal);
        }
    }

    /// The last `max_lines` lines of the log, for error messages.
    pub fn log_tail(&self, max_lines: usize) -> String {
        log_tail(&self.log_path, max_lines)
    }
}

/// The last `max_lines` lines of a file (empty if unreadable).
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::SIGKILL);
            // tokio's kill_on_drop reaps the leader in the background.
            self.watchdog.release_group(pgid);
        }
    }
}
