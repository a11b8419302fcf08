//! The status model shared by every kind: conditions, the pending or last plan, drift, and
//! the state lock. Kinds differ in what fills it, never in its shape.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use driftless_core::drift::DriftObject;
pub use driftless_core::plan::PlanSummary;

/// Condition types, as Flux names them plus driftless's plan and drift conditions.
pub mod condition_type {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    pub const DRIFTED: &str = "Drifted";
    pub const PLAN_PENDING: &str = "PlanPending";
    pub const SOURCE_READY: &str = "SourceReady";
    pub const APPLIED: &str = "Applied";
    pub const OUTPUTS_WRITTEN: &str = "OutputsWritten";
    pub const STATE_LOCKED: &str = "StateLocked";
    pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
    /// A GitRepository's `verify`: which key verified its revision, or why none did (Flux's).
    pub const SOURCE_VERIFIED: &str = "SourceVerified";
    /// A Terraform's `spec.healthChecks` after an apply (tofu-controller's type).
    pub const HEALTH_CHECK: &str = "HealthCheck";
}

/// Condition reasons (CamelCase, stable: alerts and scripts match on them).
pub mod reason {
    pub const SUCCEEDED: &str = "Succeeded";
    pub const PROGRESSING: &str = "Progressing";
    pub const PLAN_PENDING: &str = "PlanPending";
    pub const PLAN_APPLIED: &str = "PlanApplied";
    pub const NO_CHANGES: &str = "NoChanges";
    pub const APPROVAL_STALE: &str = "ApprovalStale";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    pub const NO_DRIFT: &str = "NoDrift";
    pub const STATE_LOCKED: &str = "StateLocked";
    pub const SOURCE_NOT_READY: &str = "SourceNotReady";
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const INVALID_MODULE: &str = "InvalidModule";
    pub const VARIABLES_NOT_FOUND: &str = "VariablesNotFound";
    pub const PLAN_FAILED: &str = "PlanFailed";
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const RUNNER_FAILED: &str = "RunnerFailed";
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// A SOPS-encrypted file of a build could not be decrypted (no key, a wrong key, a
    /// cloud KMS, a MAC mismatch), or one is in a build without `spec.decryption`.
    pub const DECRYPTION_FAILED: &str = "DecryptionFailed";
    pub const PRUNE_FAILED: &str = "PruneFailed";
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// A Terraform's `spec.healthChecks` passed (tofu-controller's reason, spelt as it spells it).
    pub const HEALTH_CHECKS_SUCCEED: &str = "HealthChecksSucceed";
    /// One of a Terraform's `spec.healthChecks` failed (tofu-controller's reason).
    pub const HEALTH_CHECKS_FAILED: &str = "HealthChecksFailed";
    pub const RUNNER_OOM_KILLED: &str = "RunnerOOMKilled";
    pub const RUNNER_EVICTED: &str = "RunnerEvicted";
    pub const RUNNER_IMAGE_PULL_FAILED: &str = "RunnerImagePullFailed";
    pub const RUNNER_DEADLINE_EXCEEDED: &str = "RunnerDeadlineExceeded";
    pub const RUNNER_LOST: &str = "RunnerLost";
    pub const PLAN_INTEGRITY: &str = "PlanIntegrityFailed";
    pub const OUTPUTS_WRITE_FAILED: &str = "OutputsWriteFailed";
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
    pub const BUCKET_OPERATION_FAILED: &str = "BucketOperationFailed";
    /// An OCIRepository could not resolve or pull its artifact (Flux's reason).
    pub const OCI_PULL_FAILED: &str = "OCIArtifactPullFailed";
    /// The selected layer of an OCI artifact is missing or cannot be unpacked (Flux's reason).
    pub const OCI_LAYER_OPERATION_FAILED: &str = "OCIArtifactLayerOperationFailed";
    /// A HelmRepository's index could not be downloaded or read (Flux's reasons).
    pub const FAILED: &str = "Failed";
    pub const INDEXATION_FAILED: &str = "IndexationFailed";
    /// A HelmChart names a chart or version its repository does not have (Flux's reason).
    pub const INVALID_CHART_REFERENCE: &str = "InvalidChartReference";
    /// A HelmChart's chart could not be downloaded (Flux's reason).
    pub const CHART_PULL_ERROR: &str = "ChartPullError";
    /// A HelmChart's chart could not be packaged (Flux's reason).
    pub const CHART_PACKAGE_ERROR: &str = "ChartPackageError";
    /// A HelmChart's values files are missing or not YAML maps (Flux's reason).
    pub const VALUES_FILES_ERROR: &str = "ValuesFilesError";
    /// A chart dependency is neither vendored nor local (Flux's reason).
    pub const DEPENDENCY_BUILD_ERROR: &str = "DependencyBuildError";
    /// A HelmChart's source has no artifact yet (Flux's reason).
    pub const NO_SOURCE_ARTIFACT: &str = "NoSourceArtifact";
    /// A source URL that cannot be read (Flux's reason).
    pub const URL_INVALID: &str = "URLInvalid";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const STORAGE_OPERATION_FAILED: &str = "StorageOperationFailed";
    /// The state/plan backend is unreachable, refuses the credentials or lacks the bucket.
    pub const BACKEND_FAILED: &str = "BackendFailed";
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// A GitRepository's `include` names one that is missing or has no artifact (Flux's).
    pub const INCLUDE_UNAVAILABLE: &str = "IncludeUnavailable";
    /// A GitRepository's `verify` Secret is missing or holds no usable public key (Flux's).
    pub const VERIFICATION_ERROR: &str = "VerificationError";
    /// `verify.mode` asks for a tag and `ref` names none (Flux's).
    pub const INVALID_VERIFICATION_MODE: &str = "InvalidVerificationMode";
    /// `verify.mode` asks for a signed tag object and the tag is lightweight or unsigned (Flux's).
    pub const INVALID_GIT_OBJECT: &str = "InvalidGitObject";
    /// No key of the `verify` Secret verified the tag (Flux's).
    pub const INVALID_TAG_SIGNATURE: &str = "InvalidTagSignature";
    /// The commit is unsigned or no key of the `verify` Secret verified it (Flux's).
    pub const INVALID_COMMIT_SIGNATURE: &str = "InvalidCommitSignature";
    pub const SUSPENDED: &str = "Suspended";
    /// The event of a source that stored a new revision.
    pub const NEW_ARTIFACT: &str = "NewArtifact";
    /// The event of a reconcile that failed.
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    /// A reference or a URL the cluster owner does not allow (`--no-cross-namespace-refs`, ...).
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// A local store has no cluster to apply manifests to.
    pub const CLUSTER_UNAVAILABLE: &str = "ClusterUnavailable";
    pub const DESTROYED: &str = "Destroyed";
    /// The event of a run that broke a state lock first (`tfstate.forceUnlock`), with
    /// tofu-controller's reason.
    pub const FORCE_UNLOCK: &str = "ForceUnlock";
    /// The event of a state an apply could not save, saved to the backend since.
    pub const STATE_SAVED: &str = "StateSaved";
    /// The event and condition of a state an apply could not save, kept in a Secret until
    /// the backend takes it.
    pub const STATE_NOT_SAVED: &str = "StateNotSaved";
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

/// A Kubernetes-style condition (metav1.Condition shape).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339; kept when a condition is re-set with the same status so "since" stays true.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Who let a plan through: the spec (`approvePlan: <id>`), the annotation, or `auto`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PlanApprover {
    Spec,
    Annotation,
    Auto,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    pub id: String,
    pub created_at: String,
    pub source_revision: String,
    /// `sha256:<hex>` of the saved plan: only a stored plan with this digest is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub summary: PlanSummary,
    /// True while the plan waits for approval.
    pub pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<PlanApprover>,
    /// Set once the plan has been applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// Where the saved plan lives (backend and key), so a reviewer can find it.
    #[serde(default)]
    pub stored_in: String,
    /// A plan made to correct drift rather than to roll out a new revision.
    #[serde(default)]
    pub corrects_drift: bool,
    /// A destroy plan (`spec.destroy` or deletion).
    #[serde(default)]
    pub destroy: bool,
    /// What made the plan, with its version (`OpenTofu 1.10.7`): a Terraform's saved plan
    /// is applied by the engine that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    pub detected: bool,
    /// Digest of the sorted entries: the same drift keeps its id across checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub objects: Vec<DriftObject>,
    /// The corrective plan, approvable by this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Set while the current drift is acknowledged: its alerts stop; a changed drift (a new
    /// id) alerts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// Who acknowledged which drift, and when.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    pub drift_id: String,
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub at: String,
}

/// One entry of an object's history: a plan made or applied, a drift check, an approval or
/// an acknowledgement. The last [`HISTORY_LIMIT`] are kept, newest last, so the review page
/// shows them after the cluster's Events have expired.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub time: String,
    /// An event reason (`PlanPending`, `PlanApplied`, `DriftDetected`, `DriftResolved`,
    /// `DriftAcknowledged`, `ApprovalStale`, `ReconciliationFailed`, ...) or `DriftChecked`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_id: Option<String>,
    /// Who approved or acknowledged (a user name, `spec`, or `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Summary: plan counts, drift summary, or the error reason.
    #[serde(default)]
    pub message: String,
}

/// How many history entries an object keeps.
pub const HISTORY_LIMIT: usize = 20;

/// The history action of a drift check (every other entry is named by its event's reason:
/// `PlanPending`, `PlanApplied`, `DriftDetected`, `DriftAcknowledged`, ...).
pub const DRIFT_CHECKED: &str = "DriftChecked";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockStatus {
    pub holder: String,
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The lock's id (tofu-controller's `status.lock.pending`): what
    /// `spec.tfstate.lockIdentifier` names to break exactly this lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The status fields every reconciled kind carries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
    /// The last plan applied, so an approval naming it reads as spent, not stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_plan: Option<String>,
    /// The approval (as written, `plan-x@sha256:...`) the last apply attempt used: spent,
    /// it applies no other plan, even one re-made under the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_approval: Option<String>,
    /// The last plans, drift checks, approvals and acknowledgements, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

impl ObjectStatus {
    /// Appends a history entry, dropping the oldest beyond [`HISTORY_LIMIT`]. An entry equal
    /// to the last but for its time (the same drift checked again, the same failure retried)
    /// only moves the last one's time, so repeats do not push plans and approvals out.
    pub fn record(&mut self, entry: HistoryEntry) {
        if let Some(last) = self.history.last_mut()
            && (HistoryEntry { time: entry.time.clone(), ..last.clone() }) == entry
        {
            last.time = entry.time;
            return;
        }
        self.history.push(entry);
        if self.history.len() > HISTORY_LIMIT {
            let excess = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..excess);
        }
    }
}

/// Conditions as a set keyed by type, with Kubernetes' transition-time rule.
pub trait Conditions {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// Sets a condition; the transition time moves only when the status flips.
    fn set_condition(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str, generation: Option<i64>, now: &str) {
        let conditions = self.conditions_mut();
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now.to_string();
                }
                c.status = status;
                c.reason = reason.to_string();
                c.message = message.to_string();
                c.observed_generation = generation;
            }
            None => conditions.push(Condition {
                type_: type_.to_string(),
                status,
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time: now.to_string(),
                observed_generation: generation,
            }),
        }
    }

    fn remove_condition(&mut self, type_: &str) {
        self.conditions_mut().retain(|c| c.type_ != type_);
    }
}

impl Conditions for ObjectStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut s = ObjectStatus::default();
        s.set_condition("Ready", ConditionStatus::False, "PlanPending", "a", Some(1), "t1");
        s.set_condition("Ready", ConditionStatus::False, "PlanFailed", "b", Some(1), "t2");
        let c = s.condition("Ready").unwrap();
        assert_eq!((c.last_transition_time.as_str(), c.reason.as_str()), ("t1", "PlanFailed"));
        s.set_condition("Ready", ConditionStatus::True, "Succeeded", "c", Some(2), "t3");
        assert_eq!(s.condition("Ready").unwrap().last_transition_time, "t3");
        assert!(s.is_true("Ready"));
    }
}
