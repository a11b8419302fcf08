//! What every reconciler shares: where objects live, how runs execute, where state and
//! plans go, and where events are sent.

use std::path::PathBuf;
use std::time::Duration;

use crate::dispatch::BackendSpec;
use crate::source::ArtifactStore;
use crate::store::EventLog;

pub struct Context<S, D> {
    pub store: S,
    pub dispatch: D,
    /// The default backend for objects without `spec.backendConfig`.
    pub backend: BackendSpec,
    pub artifacts: ArtifactStore,
    /// Bare-repository caches of Git sources.
    pub git_cache: PathBuf,
    pub events: EventLog,
    /// terraform binary handed to runners; `None` lets the runner search PATH.
    pub terraform_path: Option<PathBuf>,
    /// Recorded as lock holder and in events.
    pub identity: String,
    /// Deadline of one runner.
    pub run_timeout: Duration,
}

/// When a reconcile wants to run again, and whether it changed readiness (dependents of
/// an object that just became Ready are reconciled at once, not on their interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue {
    pub after: Duration,
    pub became_ready: bool,
    /// The object is not Ready after this reconcile (the controller backs off retries).
    pub failing: bool,
}

/// Why a reconcile could not even record its outcome (the object store failed). Everything
/// else a reconcile meets becomes a condition on the object, not an error.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
