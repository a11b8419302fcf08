//! What a run's result means for a Terraform's status: a pure fold from the status before
//! and the [`RunResult`] to the status after, the notices to announce, the outputs to write
//! and when to come back. No I/O, so every outcome is unit-tested.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{
    ConditionStatus, Conditions, DriftMode, DriftObject, LockStatus, PlanStatus, Reconciled, Terraform, TerraformStatus,
    condition_type as ct, reason,
};
use crate::dispatch::{Operation, Outcome, Output, RunErrorKind, RunResult};
use crate::reconcile::approval::{self, Approval};
use crate::reconcile::drift;
use crate::store::{Notice, Severity};

/// What the run was, beside its result.
#[derive(Clone)]
pub struct Facts<'a> {
    pub object: &'a Terraform,
    pub operation: Operation,
    /// The revision the run planned or applied.
    pub revision: &'a str,
    /// The inputs digest the run was made from.
    pub inputs: &'a str,
    /// Where the backend keeps a plan of this id (`status.plan.storedIn`).
    pub stored_in: &'a (dyn Fn(&str) -> String + Sync),
    pub at: &'a str,
}

/// The fold's answer besides the new status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub notices: Vec<Notice>,
    /// Outputs to write to `spec.writeOutputsToSecret` (an apply produced them).
    pub outputs: Vec<Output>,
    pub after: Duration,
}

/// A status being folded: sets conditions at the object's generation and time.
struct Fold<'s> {
    status: &'s mut TerraformStatus,
    meta: &'s ObjectMeta,
    at: &'s str,
    notices: Vec<Notice>,
}

impl Fold<'_> {
    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        self.status.set_condition(type_, status, reason, message, self.meta.generation, self.at);
    }

    fn not_ready(&mut self, reason: &str, message: &str) {
        self.set(ct::READY, ConditionStatus::False, reason, message);
    }

    fn notice(&mut self, reason: &'static str, severity: Severity, message: String, plan_id: Option<String>) {
        self.notices.push(Notice { reason, severity, message, plan_id, drift_id: None });
    }
}

/// The condition reason of a failed run.
pub fn failure_reason(kind: RunErrorKind, operation: Operation) -> &'static str {
    match kind {
        RunErrorKind::Artifact => reason::ARTIFACT_FAILED,
        RunErrorKind::InvalidModule => reason::INVALID_MODULE,
        RunErrorKind::VariablesNotFound => reason::VARIABLES_NOT_FOUND,
        RunErrorKind::StateLocked => reason::STATE_LOCKED,
        RunErrorKind::PlanIntegrity => reason::PLAN_INTEGRITY,
        RunErrorKind::Backend => reason::BACKEND_FAILED,
        RunErrorKind::Apply => reason::APPLY_FAILED,
        RunErrorKind::Timeout | RunErrorKind::Internal => reason::RUNNER_FAILED,
        RunErrorKind::RunnerOomKilled => reason::RUNNER_OOM_KILLED,
        RunErrorKind::RunnerEvicted => reason::RUNNER_EVICTED,
        RunErrorKind::RunnerImagePull => reason::RUNNER_IMAGE_PULL_FAILED,
        RunErrorKind::RunnerDeadline => reason::RUNNER_DEADLINE_EXCEEDED,
        RunErrorKind::RunnerLost => reason::RUNNER_LOST,
        RunErrorKind::Init | RunErrorKind::Plan | RunErrorKind::Terraform if operation == Operation::Apply => reason::APPLY_FAILED,
        RunErrorKind::Init | RunErrorKind::Plan | RunErrorKind::Terraform => reason::PLAN_FAILED,
    }
}

/// Marks the pending plan `plan_id` as waiting for approval, reporting a stale approval
/// once (the same message again stays quiet).
pub fn wait_for_approval(status: &mut TerraformStatus, meta: &ObjectMeta, at: &str, plan_id: &str, stale: Option<String>) -> Vec<Notice> {
    let mut fold = Fold { status, meta, at, notices: Vec::new() };
    fold.wait(plan_id, stale);
    fold.notices
}

impl Fold<'_> {
    fn wait(&mut self, plan_id: &str, stale: Option<String>) {
        let name = self.meta.name.clone().unwrap_or_default();
        let summary = self.status.common.plan.as_ref().map(|p| p.summary.to_string()).unwrap_or_default();
        self.set(ct::PLAN_PENDING, ConditionStatus::True, reason::PLAN_PENDING, &format!("plan {plan_id} waits for approval ({summary})"));
        match stale {
            Some(old) => {
                let message = format!(
                    "approval of {old} is stale: the pending plan is {plan_id} ({summary}); review it with `driftless plan show {name}` and approve {plan_id}"
                );
                let already = self.status.condition(ct::READY).is_some_and(|c| c.reason == reason::APPROVAL_STALE && c.message == message);
                self.not_ready(reason::APPROVAL_STALE, &message);
                if !already {
                    self.notice(reason::APPROVAL_STALE, Severity::Error, message, Some(plan_id.to_string()));
                }
            }
            None => {
                let message = format!("plan {plan_id} waits for approval ({summary}); approve with `driftless approve {name} {plan_id}`");
                self.not_ready(reason::PLAN_PENDING, &message);
            }
        }
    }

    fn no_changes(&mut self, facts: &Facts<'_>) {
        self.status.last_inputs_digest = Some(facts.inputs.to_string());
        self.status.common.last_applied_revision = Some(facts.revision.to_string());
        if let Some(p) = self.status.common.plan.as_mut() {
            p.pending = false;
        }
        self.status.remove_condition(ct::PLAN_PENDING);
        let message = match facts.operation {
            Operation::DriftCheck => format!("no drift; infrastructure matches revision {}", facts.revision),
            _ => format!("no changes at revision {}", facts.revision),
        };
        self.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
    }
}

/// Folds the result of a run into `status`.
pub fn record(status: &mut TerraformStatus, facts: &Facts<'_>, result: RunResult) -> Recorded {
    let object = facts.object;
    let (op, revision, at) = (facts.operation, facts.revision, facts.at);
    let mut fold = Fold { status, meta: &object.metadata, at, notices: Vec::new() };
    if let Some(lock) = &result.broken_lock {
        let message = format!(
            "state lock {} held by {} since {} (operation {}) broken before the run (spec.tfstate.forceUnlock)",
            lock.id, lock.who, lock.created, lock.operation
        );
        fold.notice(reason::FORCE_UNLOCK, Severity::Info, message, None);
    }
    if let Some(error) = &result.error {
        let why = failure_reason(error.kind, op);
        let mut message = error.message.clone();
        if !error.diagnostics.is_empty() {
            message.push_str(": ");
            message.push_str(&error.diagnostics.iter().take(3).cloned().collect::<Vec<_>>().join("; "));
        }
        match &error.lock {
            Some(lock) => {
                fold.status.lock = Some(LockStatus {
                    holder: lock.who.clone(),
                    since: lock.created.clone(),
                    operation: Some(lock.operation.clone()),
                    id: Some(lock.id.clone()),
                });
                fold.set(ct::STATE_LOCKED, ConditionStatus::True, reason::STATE_LOCKED, &message);
            }
            None => {
                fold.status.lock = None;
                fold.status.remove_condition(ct::STATE_LOCKED);
            }
        }
        if op == Operation::Apply || error.kind == RunErrorKind::PlanIntegrity {
            // The saved plan cannot be trusted any more (partly applied or corrupt): the
            // next reconcile plans afresh; the state keeps whatever was applied.
            fold.status.last_inputs_digest = None;
            if let Some(p) = fold.status.common.plan.as_mut() {
                p.pending = false;
            }
            fold.status.remove_condition(ct::PLAN_PENDING);
        }
        fold.not_ready(why, &message);
        fold.notice(reason::RECONCILIATION_FAILED, Severity::Error, format!("{why}: {message}"), result.plan_id.clone());
        tracing::warn!(reason = why, "{message}");
        return Recorded { notices: fold.notices, outputs: Vec::new(), after: object.retry_interval() };
    }
    fold.status.lock = None;
    fold.status.remove_condition(ct::STATE_LOCKED);

    // Drift: what terraform found changed outside, minus what the user ignores. A plan
    // with changes but no readable drift (providers that read nothing back) counts as
    // drift when the inputs did not change.
    let rules = object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default();
    // Drift disabled (`mode: disabled`, tofu-controller's disableDriftDetection): what a plan
    // finds changed outside is planned over like any change, never reported as drift.
    let mut found = if object.drift_mode() == crate::api::DriftMode::Disabled {
        Vec::new()
    } else {
        driftless_core::drift::filter_drift(result.drift.clone(), &rules)
    };
    let corrects_drift = op == Operation::DriftCheck;
    if corrects_drift && result.drift.is_empty() && result.outcome != Outcome::NoChanges {
        found = result
            .resources
            .iter()
            .filter(|r| r.action != "no-op" && r.action != "read")
            .map(|r| DriftObject {
                kind: r.address.split('.').rev().nth(1).unwrap_or_default().to_string(),
                name: r.address.clone(),
                action: r.action.clone(),
                fields: vec![],
            })
            .collect();
    }
    let only_ignored_drift = corrects_drift && found.is_empty();
    // Drift-detection only (`approvePlan: disable`): the plan shows the drift and is never
    // applied, so it is nothing anyone can approve.
    let approval = approval::of(object);
    let drift_only = approval == Approval::DriftOnly;
    let finding = drift::Finding {
        objects: &found,
        correction: if drift_only { None } else { result.plan_id.as_deref() },
        corrected: result.outcome == Outcome::Applied,
        resolved_message: "drift resolved: infrastructure matches the source again",
    };
    let drift_notices = drift::record(&mut fold.status.common, &finding, &object.metadata, at, corrects_drift);
    fold.notices.extend(drift_notices);

    let mut outputs = Vec::new();
    match result.outcome {
        Outcome::NoChanges => fold.no_changes(facts),
        Outcome::Planned if only_ignored_drift => fold.no_changes(facts),
        Outcome::Planned if drift_only => {
            fold.status.last_inputs_digest = Some(facts.inputs.to_string());
            if let Some(p) = fold.status.common.plan.as_mut() {
                p.pending = false;
            }
            fold.status.remove_condition(ct::PLAN_PENDING);
            let message = format!(
                "drift detected at revision {revision}: {}; approvePlan: disable only checks for drift (driftless drift show {}); set approvePlan to plan and apply",
                result.summary,
                object.metadata.name.as_deref().unwrap_or_default()
            );
            fold.not_ready(reason::DRIFT_DETECTED, &message);
        }
        Outcome::Planned => {
            let id = result.plan_id.clone().unwrap_or_default();
            let previous = fold.status.common.plan.as_ref().filter(|p| p.pending).map(|p| p.id.clone());
            fold.status.common.plan = Some(PlanStatus {
                id: id.clone(),
                created_at: at.to_string(),
                source_revision: revision.to_string(),
                digest: result.plan_digest.clone(),
                summary: result.summary,
                pending: true,
                approved_by: None,
                applied_at: None,
                stored_in: (facts.stored_in)(&id),
                corrects_drift: !found.is_empty(),
                destroy: op == Operation::DestroyPlan,
                engine: result.engine.clone(),
            });
            fold.status.last_inputs_digest = Some(facts.inputs.to_string());
            let stale = match &approval {
                Approval::Plan { id: approved, .. }
                    if !approval.names(&id) && !fold.status.common.last_applied_plan.as_deref().is_some_and(|a| approval.names(a)) =>
                {
                    Some(approved.clone())
                }
                _ => None,
            };
            fold.wait(&id, stale);
            if previous.as_deref() != Some(id.as_str()) {
                let message = format!("plan {id} waits for approval: {} at {revision}", result.summary);
                fold.notice(reason::PLAN_PENDING, Severity::Info, message, Some(id.clone()));
            }
        }
        Outcome::Applied => {
            let id = result.plan_id.clone().unwrap_or_default();
            let earlier = fold.status.common.plan.clone().filter(|p| p.id == id);
            let approved_by = match op {
                Operation::Apply => fold.status.common.plan.as_ref().and_then(|p| p.approved_by),
                _ => match approval {
                    Approval::Auto => Some(crate::api::PlanApprover::Auto),
                    Approval::Plan { by, .. } => Some(by),
                    Approval::Wait | Approval::DriftOnly => None,
                },
            };
            let summary = if op == Operation::Apply {
                fold.status.common.plan.as_ref().map(|p| p.summary).unwrap_or_default()
            } else {
                result.summary
            };
            let destroy = op == Operation::DestroyPlan || earlier.as_ref().is_some_and(|p| p.destroy);
            fold.status.common.plan = Some(PlanStatus {
                id: id.clone(),
                created_at: earlier.as_ref().map(|p| p.created_at.clone()).unwrap_or_else(|| at.to_string()),
                source_revision: revision.to_string(),
                digest: result.plan_digest.clone(),
                summary,
                pending: false,
                approved_by,
                applied_at: Some(at.to_string()),
                stored_in: (facts.stored_in)(&id),
                corrects_drift: corrects_drift || earlier.as_ref().is_some_and(|p| p.corrects_drift),
                destroy,
                engine: result.engine.clone().or_else(|| earlier.as_ref().and_then(|p| p.engine.clone())),
            });
            if op != Operation::Apply {
                fold.status.last_inputs_digest = Some(facts.inputs.to_string());
            }
            fold.status.common.last_applied_plan = Some(id.clone());
            fold.status.common.last_applied_revision = Some(revision.to_string());
            fold.status.remove_condition(ct::PLAN_PENDING);
            if !result.outputs.is_empty() {
                fold.status.available_outputs = result.outputs.iter().map(|o| o.name.clone()).collect();
                fold.status.sensitive_outputs = result.outputs.iter().filter(|o| o.sensitive).map(|o| o.name.clone()).collect();
                outputs = result.outputs.clone();
            }
            let message = if destroy {
                format!("destroyed: applied destroy plan {id} ({summary})")
            } else {
                format!("applied plan {id} ({summary}) at {revision}")
            };
            fold.set(ct::APPLIED, ConditionStatus::True, reason::PLAN_APPLIED, &message);
            let ready_reason = if destroy { reason::DESTROYED } else { reason::SUCCEEDED };
            fold.set(ct::READY, ConditionStatus::True, ready_reason, &message);
            fold.notice(reason::PLAN_APPLIED, Severity::Info, message, Some(id));
            if let Some(d) = fold.status.common.drift.as_mut() {
                d.last_checked_at = Some(at.to_string());
            }
        }
        Outcome::Failed => {}
    }
    let interval = object.interval();
    let after = if object.drift_mode() == DriftMode::Disabled { interval } else { interval.min(object.drift_interval()) };
    Recorded { notices: fold.notices, outputs, after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{PlannedResource, RunError};
    use crate::reconcile::drift::DRIFT_RESOLVED;

    fn terraform(extra: serde_json::Value) -> Terraform {
        let mut spec = serde_json::json!({ "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "10m" });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "net", "namespace": "infra", "generation": 3 },
            "spec": spec,
        }))
        .expect("terraform")
    }

    fn result(outcome: Outcome, plan_id: &str) -> RunResult {
        RunResult { outcome, plan_id: Some(plan_id.into()), ..RunResult::failed(RunErrorKind::Internal, "") }
            .with_error(None)
            .with_summary(1, 0, 0)
    }

    trait Build {
        fn with_error(self, e: Option<RunError>) -> Self;
        fn with_summary(self, add: u32, change: u32, destroy: u32) -> Self;
    }

    impl Build for RunResult {
        fn with_error(mut self, e: Option<RunError>) -> Self {
            self.error = e;
            self
        }
        fn with_summary(mut self, add: u32, change: u32, destroy: u32) -> Self {
            self.summary = crate::api::PlanSummary { add, change, destroy };
            self
        }
    }

    fn fold(object: &Terraform, status: &mut TerraformStatus, op: Operation, r: RunResult) -> Recorded {
        let stored_in = |id: &str| format!("local/{id}");
        let facts = Facts { object, operation: op, revision: "main@sha1:abc", inputs: "sha256:in", stored_in: &stored_in, at: "t1" };
        record(status, &facts, r)
    }

    fn reasons(r: &Recorded) -> Vec<&'static str> {
        r.notices.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_plan_with_changes_waits_for_approval_and_is_announced_once() {
        let tf = terraform(serde_json::json!({}));
        let mut status = TerraformStatus::default();
        let first = fold(&tf, &mut status, Operation::Plan, result(Outcome::Planned, "plan-abc-1"));
        assert_eq!(reasons(&first), vec![reason::PLAN_PENDING]);
        let plan = status.common.plan.clone().expect("plan");
        assert!(plan.pending && !plan.corrects_drift);
        assert_eq!(plan.stored_in, "local/plan-abc-1");
        assert_eq!(status.condition(ct::READY).map(|c| c.reason.as_str()), Some(reason::PLAN_PENDING));
        assert!(status.condition(ct::READY).is_some_and(|c| c.message.contains("driftless approve net plan-abc-1")));
        assert_eq!(status.last_inputs_digest.as_deref(), Some("sha256:in"));
        let again = fold(&tf, &mut status, Operation::Plan, result(Outcome::Planned, "plan-abc-1"));
        assert!(reasons(&again).is_empty(), "the same plan again is not announced again");
    }

    #[test]
    fn an_approval_of_another_plan_is_reported_stale() {
        let tf = terraform(serde_json::json!({ "approvePlan": "plan-old-1" }));
        let mut status = TerraformStatus::default();
        let r = fold(&tf, &mut status, Operation::Plan, result(Outcome::Planned, "plan-new-2"));
        assert_eq!(reasons(&r), vec![reason::APPROVAL_STALE, reason::PLAN_PENDING]);
        assert_eq!(status.condition(ct::READY).map(|c| c.reason.as_str()), Some(reason::APPROVAL_STALE));
    }

    #[test]
    fn an_apply_is_ready_names_its_approver_and_hands_over_its_outputs() {
        let tf = terraform(serde_json::json!({ "approvePlan": "auto" }));
        let mut status = TerraformStatus::default();
        let mut applied = result(Outcome::Applied, "plan-abc-1");
        applied.outputs = vec![
            Output { name: "endpoint".into(), value: serde_json::json!("10.0.0.1"), sensitive: false, value_type: None },
            Output { name: "token".into(), value: serde_json::json!("s3cr3t"), sensitive: true, value_type: None },
        ];
        let r = fold(&tf, &mut status, Operation::Plan, applied);
        assert_eq!(reasons(&r), vec![reason::PLAN_APPLIED]);
        assert_eq!(r.outputs.len(), 2);
        assert_eq!(status.available_outputs, vec!["endpoint".to_string(), "token".to_string()]);
        assert_eq!(status.sensitive_outputs, vec!["token".to_string()], "names only, for the health checks");
        assert_eq!(status.common.last_applied_plan.as_deref(), Some("plan-abc-1"));
        let plan = status.common.plan.clone().expect("plan");
        assert_eq!(plan.approved_by, Some(crate::api::PlanApprover::Auto));
        assert!(!plan.pending && plan.applied_at.is_some());
        assert!(status.is_true(ct::READY) && status.is_true(ct::APPLIED));
        assert_eq!(r.after, std::time::Duration::from_secs(600));
    }

    #[test]
    fn a_failed_apply_drops_the_plan_and_is_retried_with_its_reason() {
        let tf = terraform(serde_json::json!({ "retryInterval": "30s" }));
        let mut status = TerraformStatus::default();
        fold(&tf, &mut status, Operation::Plan, result(Outcome::Planned, "plan-abc-1"));
        let error =
            RunError { kind: RunErrorKind::Terraform, message: "apply failed".into(), diagnostics: vec!["Error: boom".into()], lock: None };
        let failed = RunResult::failed(RunErrorKind::Terraform, "apply failed").with_error(Some(error));
        let r = fold(&tf, &mut status, Operation::Apply, failed);
        assert_eq!(reasons(&r), vec![reason::RECONCILIATION_FAILED]);
        let ready = status.condition(ct::READY).cloned().expect("ready");
        assert_eq!((ready.reason.as_str(), ready.message.as_str()), (reason::APPLY_FAILED, "apply failed: Error: boom"));
        assert_eq!(status.last_inputs_digest, None, "the next reconcile plans afresh");
        assert!(!status.is_true(ct::PLAN_PENDING));
        assert_eq!(r.after, std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_held_lock_is_shown_and_cleared_by_the_next_run() {
        let tf = terraform(serde_json::json!({}));
        let mut status = TerraformStatus::default();
        let lock = crate::backend::LockInfo {
            id: "lock-a".into(),
            who: "pod-a".into(),
            created: "t0".into(),
            operation: "OperationTypeApply".into(),
            ..Default::default()
        };
        let error = RunError { kind: RunErrorKind::StateLocked, message: "state locked".into(), diagnostics: vec![], lock: Some(lock) };
        fold(&tf, &mut status, Operation::Plan, RunResult::failed(RunErrorKind::StateLocked, "").with_error(Some(error)));
        assert_eq!(status.lock.as_ref().map(|l| l.holder.as_str()), Some("pod-a"));
        assert_eq!(status.lock.as_ref().and_then(|l| l.id.as_deref()), Some("lock-a"), "the id a lockIdentifier names");
        assert!(status.is_true(ct::STATE_LOCKED));
        fold(&tf, &mut status, Operation::Plan, result(Outcome::NoChanges, "plan-abc-1"));
        assert!(status.lock.is_none() && status.condition(ct::STATE_LOCKED).is_none());
        assert!(status.is_true(ct::READY));
    }

    #[test]
    fn a_lock_broken_before_the_run_is_told_in_an_event() {
        let tf = terraform(serde_json::json!({}));
        let mut status = TerraformStatus::default();
        let lock = crate::backend::LockInfo { id: "lock-1".into(), who: "crashed".into(), created: "t0".into(), ..Default::default() };
        let broke = RunResult { broken_lock: Some(lock), ..result(Outcome::NoChanges, "plan-abc-1") };
        let r = fold(&tf, &mut status, Operation::Plan, broke);
        let notice = r.notices.iter().find(|n| n.reason == reason::FORCE_UNLOCK).expect("a ForceUnlock notice");
        assert!(notice.message.contains("lock-1") && notice.message.contains("crashed"), "{}", notice.message);
        assert!(status.is_true(ct::READY) && status.lock.is_none());
    }

    #[test]
    fn a_drift_check_plans_a_correction_and_reports_the_drift_once() {
        let tf = terraform(serde_json::json!({}));
        let mut status = TerraformStatus::default();
        let mut check = result(Outcome::Planned, "plan-fix-1");
        check.drift = vec![DriftObject {
            kind: "drifttest_file".into(),
            name: "drifttest_file.motd".into(),
            action: "update".into(),
            fields: vec!["content".into()],
        }];
        let r = fold(&tf, &mut status, Operation::DriftCheck, check.clone());
        assert_eq!(reasons(&r), vec![reason::DRIFT_DETECTED, reason::PLAN_PENDING]);
        assert!(status.common.plan.as_ref().is_some_and(|p| p.corrects_drift));
        assert_eq!(status.common.drift.as_ref().and_then(|d| d.plan_id.as_deref()), Some("plan-fix-1"));
        assert!(status.is_true(ct::DRIFTED));
        let r = fold(&tf, &mut status, Operation::DriftCheck, check);
        assert!(reasons(&r).is_empty(), "the same drift again stays quiet");
        let r = fold(&tf, &mut status, Operation::DriftCheck, result(Outcome::NoChanges, "plan-fix-1"));
        assert_eq!(reasons(&r), vec![DRIFT_RESOLVED]);
        assert!(!status.is_true(ct::DRIFTED));
    }

    #[test]
    fn a_plan_without_readable_drift_counts_its_changes_as_drift_on_a_check() {
        let tf = terraform(serde_json::json!({}));
        let mut status = TerraformStatus::default();
        let mut check = result(Outcome::Planned, "plan-fix-1");
        check.resources = vec![
            PlannedResource { address: "null_resource.a".into(), action: "update".into() },
            PlannedResource { address: "data.null_data_source.b".into(), action: "read".into() },
        ];
        fold(&tf, &mut status, Operation::DriftCheck, check);
        let drift = status.common.drift.clone().expect("drift");
        assert_eq!(drift.objects.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["null_resource.a"]);
    }
}
