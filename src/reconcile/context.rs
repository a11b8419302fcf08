//! What every reconciler shares: where objects live, how runs execute, where state and
//! plans go, and where events are sent.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{ObjectStatus, reason};
use crate::dispatch::BackendSpec;
use crate::source::ArtifactStore;
use crate::store::{Event, EventLog, Notice};

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

impl<S, D> Context<S, D> {
    /// Emits `notice` as an event about the `kind` object that `meta` names, and keeps it
    /// in the object's `status.history`, so the review page shows what alerts said; a
    /// `PlanApplied` entry names who approved the plan.
    pub fn announce(&self, kind: &str, meta: &ObjectMeta, status: &mut ObjectStatus, at: String, notice: Notice) {
        let event = Event {
            time: at,
            kind: kind.into(),
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
            reason: notice.reason.into(),
            severity: notice.severity,
            message: notice.message,
            revision: status.last_attempted_revision.clone(),
            plan_id: notice.plan_id,
            drift_id: notice.drift_id,
        };
        let by = (notice.reason == reason::PLAN_APPLIED).then(|| approver_name(status.plan.as_ref().and_then(|p| p.approved_by), meta));
        status.record(event.history_entry(by));
        self.events.emit(&event);
    }
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

/// Why the first of `dependencies` is not Ready for its current generation, or `None` when
/// all are: the one dependency rule of every kind (a Terraform or a Kustomization may depend
/// on either). `default_kind` is the kind of an entry that names none: the depending kind.
pub async fn unready_dependency<S: crate::store::ObjectStore>(
    store: &S,
    namespace: &str,
    dependencies: &[crate::api::DependencyReference],
    default_kind: &str,
) -> Result<Option<String>, ReconcileError> {
    use crate::api::{ConditionStatus, Kustomization, Terraform, condition_type as ct};
    for d in dependencies {
        let namespace = d.namespace.as_deref().unwrap_or(namespace);
        let kind = d.kind.as_deref().unwrap_or(default_kind);
        let found = match kind {
            "Kustomization" => store
                .get::<Kustomization>(namespace, &d.name)
                .await?
                .map(|o| (o.metadata.generation, o.status.map(|s| s.common).unwrap_or_default())),
            _ => store
                .get::<Terraform>(namespace, &d.name)
                .await?
                .map(|o| (o.metadata.generation, o.status.map(|s| s.common).unwrap_or_default())),
        };
        let Some((generation, status)) = found else {
            return Ok(Some(format!("dependency {kind} {namespace}/{} not found", d.name)));
        };
        let ready = status.conditions.iter().any(|c| c.type_ == ct::READY && c.status == ConditionStatus::True);
        if !(status.observed_generation == generation && ready) {
            let why = status
                .conditions
                .iter()
                .find(|c| c.type_ == ct::READY)
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "not reconciled yet".into());
            return Ok(Some(format!("dependency {kind} {namespace}/{} is not ready: {why}", d.name)));
        }
    }
    Ok(None)
}

/// Who let a plan through, for the object's history: the user named by
/// `driftless.dev/acted-by` when it was approved by annotation (the CLI and the review page
/// set it), else `spec` or `auto`.
pub fn approver_name(
    approver: Option<crate::api::PlanApprover>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    use crate::api::PlanApprover;
    match approver {
        Some(PlanApprover::Annotation) => {
            meta.annotations.as_ref().and_then(|a| a.get(crate::api::annotation::ACTED_BY)).cloned().unwrap_or_else(|| "annotation".into())
        }
        Some(PlanApprover::Spec) => "spec".into(),
        Some(PlanApprover::Auto) | None => "auto".into(),
    }
}
