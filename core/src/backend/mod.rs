//! Backends keep Terraform state and saved plans. Every backend offers the same locking
//! (holder, since, forced unlock) so `driftless unlock` and `status.lock` work everywhere.

pub mod kube;
mod local;
pub mod rescue;
pub mod s3;

use std::future::Future;

use serde::{Deserialize, Serialize};

pub use self::kube::SecretBackend;
pub use local::LocalBackend;
pub use s3::{S3Backend, S3Connection, S3Credentials, S3Location};

pub use crate::ids::sha256_digest;
use crate::key::ObjectKey;

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("state of {key} is locked by {} since {}{}", .holder.who, .holder.created, .holder.expires.as_deref().map(|e| format!(" (expires {e})")).unwrap_or_default())]
    Locked { key: String, holder: Box<LockInfo> },
    #[error("state of {key} is not locked by {id}; refusing to write (was the lock broken with `driftless unlock`?)")]
    LockMismatch { key: String, id: String },
    #[error("plan {id} of {object} not found in the backend; re-plan with `driftless reconcile`")]
    PlanNotFound { object: String, id: String },
    #[error("plan {id} of {object} is corrupt: stored digest {expected}, content digest {actual}; it will not be applied")]
    PlanDigestMismatch { object: String, id: String, expected: String, actual: String },
    /// A state stored in chunks whose bytes do not hash to the digest its manifest records.
    #[error(
        "state of {key} is corrupt: its manifest records digest {expected}, its chunks hash to {actual}; it is not used (restore the chunk Secrets or the state from a backup)"
    )]
    StateDigestMismatch { key: String, expected: String, actual: String },
    #[error("backend data of {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("cannot reach the backend at {endpoint}: {detail}; the run is retried on the next reconcile")]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "the backend refused the credentials for bucket {bucket}: {detail}; check the Secret named by secretRef (accessKeyID/secretAccessKey)"
    )]
    AccessDenied { bucket: String, detail: String },
    #[error("bucket {bucket} does not exist at {endpoint}; create it or fix the bucket name")]
    BucketNotFound { bucket: String, endpoint: String },
    #[error(
        "the Kubernetes API refused to {verb} {resource} in namespace {namespace} ({detail}); the runner's ServiceAccount needs the `driftless-runner` Role there (`driftless install` creates it)"
    )]
    Forbidden { verb: &'static str, resource: &'static str, namespace: String, detail: String },
    #[error("backend {op} of {key} failed: {detail}")]
    Remote { op: &'static str, key: String, detail: String },
    /// The place of this state belongs to another object (two objects' names map to one
    /// Secret name): it is neither read nor written.
    #[error(
        "{what}, where the state of {key} would live, belongs to {owner}; rename the workspace or set backendConfig.secretSuffix so the two do not share it"
    )]
    Foreign { what: String, key: String, owner: String },
}

impl BackendError {
    /// Whether the data itself is missing or wrong (as opposed to the backend being
    /// unavailable): a saved plan that fails this way must never be applied, nor such a
    /// state handed to terraform.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            BackendError::PlanNotFound { .. }
                | BackendError::PlanDigestMismatch { .. }
                | BackendError::StateDigestMismatch { .. }
                | BackendError::Corrupt { .. }
        )
    }
}

/// Terraform's lock info (the JSON its http backend sends), shown as `status.lock`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct LockInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Operation", default)]
    pub operation: String,
    #[serde(rename = "Info", default)]
    pub info: String,
    #[serde(rename = "Who", default)]
    pub who: String,
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "Created", default)]
    pub created: String,
    #[serde(rename = "Path", default)]
    pub path: String,
    /// When the lock stops counting (RFC 3339): set by backends whose locks outlive a crashed
    /// runner (S3). Terraform ignores the field.
    #[serde(rename = "Expires", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// The plan `id` of `object`, if its bytes hash to every digest recorded for it (its meta's,
/// and the store's own where it keeps one); else [`BackendError::PlanDigestMismatch`]. Every
/// backend's `get_plan` ends here, so none returns a plan that is not the one recorded.
pub(crate) fn verified_plan(object: &ObjectKey, id: &str, meta: PlanMeta, bytes: Vec<u8>, stored: &[&str]) -> Result<(PlanMeta, Vec<u8>)> {
    let actual = sha256_digest(&bytes);
    let recorded = std::iter::once(meta.digest.as_str()).chain(stored.iter().copied());
    if let Some(expected) = recorded.into_iter().find(|d| *d != actual) {
        return Err(BackendError::PlanDigestMismatch {
            object: object.to_string(),
            id: id.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok((meta, bytes))
}

/// Whether a lock's expiry has passed (a lock without one never expires).
pub fn is_expired(info: &LockInfo) -> bool {
    info.expires.as_deref().and_then(|e| e.parse::<jiff::Timestamp>().ok()).is_some_and(|t| t <= jiff::Timestamp::now())
}

/// One state: an object's workspace (plus suffix).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateKey {
    pub object: ObjectKey,
    /// `<workspace>` or `<workspace>-<suffix>`: the state's file or key name.
    pub state_name: String,
    /// tofu-controller's `backendConfig.secretSuffix`. The Kubernetes backend then names the
    /// state Secret `tfstate-<workspace>-<suffix>`, exactly as tofu-controller and terraform's
    /// own `kubernetes` backend do, so a migrated object finds its state; without one it is
    /// `tfstate-<workspace>-<object>`, the name tofu-controller gives when no suffix is set.
    pub secret_suffix: Option<String>,
}

impl std::fmt::Display for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (state {})", self.object, self.state_name)
    }
}

/// Terraform state with terraform's own locking semantics.
pub trait StateStore: Send + Sync + 'static {
    fn get(&self, key: &StateKey) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Writes state; with `lock_id`, only while that lock is held.
    fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> impl Future<Output = Result<()>> + Send;
    fn delete(&self, key: &StateKey) -> impl Future<Output = Result<()>> + Send;
    /// Takes the lock, or fails with `Locked` naming the holder.
    fn lock(&self, key: &StateKey, info: &LockInfo) -> impl Future<Output = Result<()>> + Send;
    fn unlock(&self, key: &StateKey, id: &str) -> impl Future<Output = Result<()>> + Send;
    fn lock_info(&self, key: &StateKey) -> impl Future<Output = Result<Option<LockInfo>>> + Send;
    /// Breaks the lock whoever holds it (`driftless unlock`); returns the broken lock.
    fn force_unlock(&self, key: &StateKey) -> impl Future<Output = Result<Option<LockInfo>>> + Send;
    /// Finishes work a write left running (S3: the history copy). Called before a runner
    /// releases its lock.
    fn flush(&self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A saved plan plus what a reviewer reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMeta {
    pub id: String,
    /// `sha256:<hex>` of the plan file.
    pub digest: String,
    pub created_at: String,
    pub source_revision: String,
    /// Human-readable rendering (redacted), for `driftless plan show` and the review page.
    pub rendering: String,
    /// The loopback address of the state server the plan was made against: terraform
    /// applies a saved plan with the backend address recorded in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_address: Option<String>,
    /// The engine that made the plan: a saved plan is applied by the engine that wrote it
    /// (terraform and OpenTofu plan files are not interchangeable), whatever a runner would
    /// pick today for an object that names none. Unset in plans stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::engine::Engine>,
}

pub trait PlanStore: Send + Sync + 'static {
    /// Stores the plan file; returns its digest.
    fn put_plan(&self, object: &ObjectKey, meta: &PlanMeta, plan: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// The plan bytes, after checking them against the stored digest.
    fn get_plan(&self, object: &ObjectKey, id: &str) -> impl Future<Output = Result<(PlanMeta, Vec<u8>)>> + Send;
    fn plan_meta(&self, object: &ObjectKey, id: &str) -> impl Future<Output = Result<Option<PlanMeta>>> + Send;
    /// Removes every plan but `keep` (superseded plans).
    fn prune_plans(&self, object: &ObjectKey, keep: &[&str]) -> impl Future<Output = Result<()>> + Send;
}
