//! The runner contract: one `RunSpec` in, one `RunResult` out, as JSON. The same contract
//! serves a local process and a pod, so the reconcilers never know how a run executes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::drift::{DriftIgnoreRule, DriftObject};
pub use crate::key::ObjectKey;
use crate::plan::PlanSummary;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Plan; store the plan. With `apply_after_plan`, apply that saved plan in the same
    /// workspace (auto-approval) — one init instead of two.
    Plan,
    /// Apply the stored plan `plan_id` (and nothing else).
    Apply,
    /// A refresh plan on the drift interval: the drift entries plus a corrective plan.
    DriftCheck,
    /// A destroy plan (spec.destroy or deletion with destroyResourcesOnDeletion).
    DestroyPlan,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunVariable {
    pub name: String,
    pub value: serde_json::Value,
    /// Came from a Secret: never echoed anywhere.
    #[serde(default)]
    pub sensitive: bool,
}

/// Where state and plans live, as the runner sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackendSpec {
    /// Files under `root` (the local store's backend directory).
    Local { root: PathBuf },
    /// An S3 bucket (`spec.backendConfig.s3`). Credentials, when a Secret gave them, travel
    /// inside: the spec goes to the runner over its stdin only, and `Debug` redacts them.
    S3(crate::backend::S3Location),
    /// Secrets (state, plans) and Leases (locks) in `namespace`, the Terraform object's own,
    /// through the runner's Kubernetes credentials (no credentials travel in the spec).
    Kubernetes { namespace: String },
}

impl BackendSpec {
    /// Where a saved plan lives, for `status.plan.storedIn`.
    pub fn plan_location(&self, object: &ObjectKey, id: &str) -> String {
        match self {
            BackendSpec::Local { .. } => format!("local/plans/{}/{}/{}/{id}.tfplan", object.kind, object.namespace, object.name),
            BackendSpec::S3(location) => location.url(&location.plan_key(object, id)),
            BackendSpec::Kubernetes { namespace } => {
                format!("secret/{namespace}/{}", crate::backend::kube::plan_meta_secret_name(object, id))
            }
        }
    }

    /// Credential strings that must never appear in a message.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            BackendSpec::Local { .. } | BackendSpec::Kubernetes { .. } => Vec::new(),
            BackendSpec::S3(location) => location.connection.credentials.as_ref().map(|c| c.secrets()).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    pub operation: Operation,
    pub object: ObjectKey,
    /// `file://` path or `http(s)://` URL of the source artifact.
    pub artifact_url: String,
    /// `sha256:<hex>`: checked before anything is unpacked.
    pub artifact_digest: String,
    pub source_revision: String,
    /// Module directory inside the artifact.
    pub path: String,
    pub workspace: String,
    /// Name of the state within the object (workspace plus optional suffix).
    pub state_name: String,
    pub variables: Vec<RunVariable>,
    /// Digest of everything the plan depends on besides live infrastructure; with the
    /// revision it makes the plan id.
    pub inputs_digest: String,
    pub backend: BackendSpec,
    /// A native backend block replacing driftless's state server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_backend: Option<String>,
    /// The plan to apply (`Apply`), with the digest recorded when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Apply the fresh plan right away (auto-approval).
    #[serde(default)]
    pub apply_after_plan: bool,
    /// `spec.drift.ignore`: drift matching these rules is not reported, and a drift check
    /// whose drift is all ignored applies nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_ignore: Vec<DriftIgnoreRule>,
    /// Render the plan for review (`show -json`): off the auto-apply path, where nobody reads it.
    #[serde(default)]
    pub render_plan: bool,
    /// terraform binary; found on PATH with `which` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_path: Option<PathBuf>,
    /// Identity recorded as the state lock holder.
    pub lock_holder: String,
    pub timeout_seconds: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Planned, nothing to change.
    NoChanges,
    /// Planned with changes; the plan is stored and waits for approval.
    Planned,
    /// The plan was applied.
    Applied,
    /// Failed; see `error`.
    Failed,
}

/// What went wrong, classified so the reconciler can pick the condition reason.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    /// Terraform's diagnostics, summary and detail, redacted.
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// The lock's holder when `kind` is `StateLocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::backend::LockInfo>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunErrorKind {
    /// Artifact missing or its digest wrong.
    Artifact,
    /// The module does not parse or does not fit the inputs (before terraform runs).
    InvalidModule,
    VariablesNotFound,
    Init,
    Plan,
    Apply,
    StateLocked,
    /// The stored plan is missing or its digest does not match.
    PlanIntegrity,
    /// The state/plan backend is unreachable, refuses the credentials, or has no bucket.
    Backend,
    Terraform,
    Timeout,
    Internal,
    /// The runner pod was killed for exceeding its memory limit.
    RunnerOomKilled,
    /// The runner pod was evicted (node pressure, drain).
    RunnerEvicted,
    /// The runner image cannot be pulled.
    RunnerImagePull,
    /// The runner pod exceeded its deadline.
    RunnerDeadline,
    /// The runner pod vanished (node lost, deleted by someone).
    RunnerLost,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedResource {
    pub address: String,
    /// `create`, `update`, `delete`, `replace`, `read`.
    pub action: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub name: String,
    /// `None` when sensitive and the value is not meant for this reader.
    pub value: serde_json::Value,
    pub sensitive: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    #[serde(default)]
    pub summary: PlanSummary,
    #[serde(default)]
    pub resources: Vec<PlannedResource>,
    /// Out-of-band changes terraform found on refresh.
    #[serde(default)]
    pub drift: Vec<DriftObject>,
    /// Outputs after an apply. Sensitive values are present only on the trusted channel
    /// (the runner's stdout to its dispatcher) and go nowhere but the outputs secret.
    #[serde(default)]
    pub outputs: Vec<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Wall time of each step in milliseconds, for benchmarks and slow-run reports.
    #[serde(default)]
    pub timings_ms: Vec<(String, u64)>,
}

impl RunResult {
    pub fn failed(kind: RunErrorKind, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            plan_id: None,
            plan_digest: None,
            summary: PlanSummary::default(),
            resources: Vec::new(),
            drift: Vec::new(),
            outputs: Vec::new(),
            error: Some(RunError { kind, message: message.into(), diagnostics: Vec::new(), lock: None }),
            timings_ms: Vec::new(),
        }
    }
}
