//! How a run executes: a `RunnerDispatch` hands a `RunSpec` to a runner and waits for its
//! `RunResult`. Local mode runs `driftless-runner` as a child process; a cluster runs a pod.

mod pod;
mod process;

pub use driftless_core::contract::{
    BackendSpec, ObjectKey, Operation, Outcome, Output, PlannedResource, RunError, RunErrorKind, RunResult, RunSpec, RunVariable,
};
pub use pod::{PodDispatch, PodSettings};
pub use process::ProcessDispatch;

use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("runner binary not found: {0}")]
    RunnerNotFound(String),
    #[error("could not start the runner: {0}")]
    Spawn(std::io::Error),
    #[error("runner for {object} exceeded its {seconds}s deadline and was killed")]
    Deadline { object: String, seconds: u64 },
    #[error("runner for {object} exited with {status} without a result: {stderr_tail}")]
    NoResult { object: String, status: String, stderr_tail: String },
    #[error("cannot run the runner pod of {object}: {detail}")]
    Api { object: String, detail: String },
    /// The runner pod ended without a result, for a reason the cluster reported.
    #[error("{message}")]
    RunnerEnded { kind: RunErrorKind, message: String },
}

impl DispatchError {
    /// The failed run this error amounts to, so every failure lands in status the same way.
    pub fn into_result(self) -> RunResult {
        match self {
            DispatchError::RunnerEnded { kind, message } => RunResult::failed(kind, message),
            DispatchError::Deadline { .. } => RunResult::failed(RunErrorKind::Timeout, self.to_string()),
            other => RunResult::failed(RunErrorKind::Internal, other.to_string()),
        }
    }
}

/// Told how each run ended: what a dispatcher reports to whoever counts runs (the
/// controller's metrics), handed in so that dispatch imports nothing above it.
pub trait RunObserver: Send + Sync {
    fn run_finished(&self, spec: &RunSpec, outcome: &Result<RunResult, DispatchError>);
}

pub trait RunnerDispatch: Send + Sync {
    fn run(&self, spec: &RunSpec) -> impl Future<Output = Result<RunResult, DispatchError>> + Send;
}
