//! What a dry run, an apply or a health check means for a Kustomization's status: pure
//! folds from the status before to the status after, returning the notices to announce.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{
    ConditionStatus, Conditions, KustomizationStatus, PlanApprover, PlanStatus, PlanSummary, ResourceInventory, ResourceRef,
    condition_type as ct, reason,
};
use crate::reconcile::drift;
use crate::store::{Notice, Severity};

fn set(status: &mut KustomizationStatus, meta: &ObjectMeta, at: &str, type_: &str, value: ConditionStatus, why: &str, message: &str) {
    status.set_condition(type_, value, why, message, meta.generation, at);
}

/// A plan that waits for approval: the dry run of a build nobody approved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub plan_id: String,
    pub revision: String,
    pub digest: String,
    pub summary: PlanSummary,
    /// Where its rendering is kept.
    pub stored_in: String,
    /// An approval of another plan (reported, never applied).
    pub stale: Option<String>,
}

/// Records a plan waiting for approval; it is announced once per plan id.
pub fn planned(status: &mut KustomizationStatus, meta: &ObjectMeta, at: &str, plan: Planned) -> Vec<Notice> {
    let name = meta.name.clone().unwrap_or_default();
    let previous = status.common.plan.as_ref().filter(|p| p.pending).map(|p| p.id.clone());
    let (id, summary) = (plan.plan_id.clone(), plan.summary);
    status.common.plan = Some(PlanStatus {
        id: id.clone(),
        created_at: at.to_string(),
        source_revision: plan.revision,
        digest: Some(plan.digest),
        summary,
        pending: true,
        approved_by: None,
        applied_at: None,
        stored_in: plan.stored_in,
        corrects_drift: false,
        destroy: false,
        engine: None,
    });
    let message = match &plan.stale {
        Some(old) => {
            format!("approval of {old} is stale: the pending plan is {id} ({summary}); approve it with `driftless approve {name} {id}`")
        }
        None => format!("plan {id} waits for approval ({summary}); approve with `driftless approve {name} {id}`"),
    };
    set(status, meta, at, ct::PLAN_PENDING, ConditionStatus::True, reason::PLAN_PENDING, &message);
    let why = if plan.stale.is_some() { reason::APPROVAL_STALE } else { reason::PLAN_PENDING };
    set(status, meta, at, ct::READY, ConditionStatus::False, why, &message);
    let mut notices = Vec::new();
    if previous.as_deref() != Some(id.as_str()) {
        notices.push(Notice { reason: reason::PLAN_PENDING, severity: Severity::Info, message, plan_id: Some(id), drift_id: None });
    }
    notices
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The plan applied: the build's, or a drift correction's.
    pub plan_id: String,
    pub revision: String,
    /// Digest of the built objects.
    pub digest: String,
    pub approved_by: PlanApprover,
    pub corrects_drift: bool,
    pub created: u32,
    pub configured: u32,
    pub pruned: u32,
    /// Every object applied (the new inventory).
    pub inventory: Vec<ResourceRef>,
}

/// Records an apply: the new inventory, the plan as applied, `Applied`; a `PlanApplied`
/// event when something changed. Readiness waits for the health check ([`healthy`]).
pub fn applied(status: &mut KustomizationStatus, meta: &ObjectMeta, at: &str, outcome: Applied) -> Vec<Notice> {
    let mut inventory = outcome.inventory;
    inventory.sort();
    let objects = inventory.len();
    status.inventory = Some(ResourceInventory { entries: inventory });
    let summary = PlanSummary { add: outcome.created, change: outcome.configured, destroy: outcome.pruned };
    let created_at = status.common.plan.as_ref().filter(|p| p.id == outcome.plan_id).map(|p| p.created_at.clone());
    status.common.plan = Some(PlanStatus {
        id: outcome.plan_id.clone(),
        created_at: created_at.unwrap_or_else(|| at.to_string()),
        source_revision: outcome.revision.clone(),
        digest: Some(outcome.digest),
        summary,
        pending: false,
        approved_by: Some(outcome.approved_by),
        applied_at: Some(at.to_string()),
        stored_in: format!("applied {objects} objects"),
        corrects_drift: outcome.corrects_drift,
        destroy: false,
        engine: None,
    });
    status.common.last_applied_plan = Some(outcome.plan_id.clone());
    status.remove_condition(ct::PLAN_PENDING);
    status.common.last_applied_revision = Some(outcome.revision.clone());
    let message = applied_message(&outcome.revision, summary);
    set(status, meta, at, ct::APPLIED, ConditionStatus::True, reason::PLAN_APPLIED, &message);
    if summary.is_empty() {
        return Vec::new();
    }
    vec![Notice { reason: reason::PLAN_APPLIED, severity: Severity::Info, message, plan_id: Some(outcome.plan_id), drift_id: None }]
}

/// The message of an applied revision (also Ready's once healthy).
pub fn applied_message(revision: &str, summary: PlanSummary) -> String {
    format!("applied revision {revision} ({summary})")
}

/// Records that what was applied is healthy: Ready, and no drift left (an apply leaves
/// none; a drift it corrected is announced resolved).
pub fn healthy(status: &mut KustomizationStatus, meta: &ObjectMeta, at: &str) -> Vec<Notice> {
    let plan = status.common.plan.clone().unwrap_or_default();
    let message = applied_message(&plan.source_revision, plan.summary);
    status.remove_condition(ct::RECONCILING);
    set(status, meta, at, ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
    drift::record(&mut status.common, &no_drift(), meta, at, false)
}

/// A drift check's finding, recorded with the correction that would apply it.
pub fn drift_checked(
    status: &mut KustomizationStatus,
    meta: &ObjectMeta,
    at: &str,
    found: &[crate::api::DriftObject],
    correction: Option<&str>,
) -> Vec<Notice> {
    let finding = drift::Finding { objects: found, correction, corrected: false, resolved_message: RESOLVED };
    drift::record(&mut status.common, &finding, meta, at, true)
}

const RESOLVED: &str = "drift resolved: the cluster matches the source again";

fn no_drift() -> drift::Finding<'static> {
    drift::Finding { objects: &[], correction: None, corrected: false, resolved_message: RESOLVED }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DriftObject;

    fn meta() -> ObjectMeta {
        ObjectMeta { name: Some("apps".into()), namespace: Some("team".into()), generation: Some(2), ..Default::default() }
    }

    fn plan(id: &str, stale: Option<&str>) -> Planned {
        Planned {
            plan_id: id.into(),
            revision: "main@sha1:abc".into(),
            digest: "sha256:built".into(),
            summary: PlanSummary { add: 1, change: 0, destroy: 0 },
            stored_in: "secret/team/apps-plan".into(),
            stale: stale.map(str::to_string),
        }
    }

    fn reasons(n: &[Notice]) -> Vec<&'static str> {
        n.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_plan_waits_and_is_announced_once_per_id() {
        let mut s = KustomizationStatus::default();
        assert_eq!(reasons(&planned(&mut s, &meta(), "t1", plan("plan-a-1", None))), vec![reason::PLAN_PENDING]);
        assert!(s.is_true(ct::PLAN_PENDING));
        assert_eq!(s.condition(ct::READY).map(|c| c.reason.as_str()), Some(reason::PLAN_PENDING));
        assert!(planned(&mut s, &meta(), "t2", plan("plan-a-1", None)).is_empty());
        assert_eq!(reasons(&planned(&mut s, &meta(), "t3", plan("plan-b-2", Some("plan-a-1")))), vec![reason::PLAN_PENDING]);
        assert_eq!(s.condition(ct::READY).map(|c| c.reason.as_str()), Some(reason::APPROVAL_STALE));
    }

    #[test]
    fn an_apply_records_the_inventory_and_is_ready_once_healthy() {
        let mut s = KustomizationStatus::default();
        planned(&mut s, &meta(), "t1", plan("plan-a-1", None));
        let r = |id: &str| ResourceRef { id: id.into(), v: "v1".into() };
        let outcome = Applied {
            plan_id: "plan-a-1".into(),
            revision: "main@sha1:abc".into(),
            digest: "sha256:built".into(),
            approved_by: PlanApprover::Annotation,
            corrects_drift: false,
            created: 1,
            configured: 0,
            pruned: 1,
            inventory: vec![r("team_b__ConfigMap"), r("team_a__ConfigMap")],
        };
        assert_eq!(reasons(&applied(&mut s, &meta(), "t2", outcome.clone())), vec![reason::PLAN_APPLIED]);
        assert_eq!(s.inventory.as_ref().map(|i| i.entries.clone()), Some(vec![r("team_a__ConfigMap"), r("team_b__ConfigMap")]));
        let p = s.common.plan.clone().expect("plan");
        assert_eq!((p.pending, p.approved_by, p.created_at.as_str()), (false, Some(PlanApprover::Annotation), "t1"));
        assert_eq!(s.common.last_applied_plan.as_deref(), Some("plan-a-1"));
        assert!(!s.is_true(ct::PLAN_PENDING) && !s.is_true(ct::READY), "not Ready before the health check");
        healthy(&mut s, &meta(), "t3");
        assert!(s.is_true(ct::READY));
        let unchanged = Applied { created: 0, pruned: 0, ..outcome };
        assert!(applied(&mut s, &meta(), "t4", unchanged).is_empty(), "nothing changed: no event");
    }

    #[test]
    fn a_correction_applied_and_healthy_resolves_the_drift() {
        let mut s = KustomizationStatus::default();
        let found =
            [DriftObject { kind: "ConfigMap".into(), name: "team/a".into(), action: "update".into(), fields: vec!["/data/key".into()] }];
        assert_eq!(reasons(&drift_checked(&mut s, &meta(), "t1", &found, Some("plan-fix-1"))), vec![reason::DRIFT_DETECTED]);
        assert!(s.is_true(ct::DRIFTED));
        assert_eq!(reasons(&healthy(&mut s, &meta(), "t2")), vec![drift::DRIFT_RESOLVED]);
        assert!(!s.is_true(ct::DRIFTED));
    }
}
