//! What a Kustomization reconcile does next, decided from data alone: roll out a build,
//! wait for its approval, check for drift, or rest; and whether a drift found may be
//! corrected now. Approval is the one rule of [`crate::reconcile::approval`].

use std::time::Duration;

use crate::api::{DriftMode, Kustomization, PlanApprover, Reconciled};
use crate::reconcile::approval::{self, Candidate, Spent, Verdict};

/// What the reconciler knows at decision time.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub object: &'a Kustomization,
    /// The revision built.
    pub revision: &'a str,
    /// Digest of the built objects.
    pub digest: &'a str,
    /// The id of the plan of this build: revision plus digest of the built objects.
    pub plan_id: &'a str,
    /// A person asked for a complete reconcile now.
    pub forced: bool,
    /// Since the last drift check (`None`: never checked).
    pub since_drift_check: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Apply the build: it is approved.
    Apply { by: PlanApprover },
    /// Plan the build (a server-side dry run) and wait; `stale` names an approval of
    /// another plan.
    Wait { stale: Option<String> },
    /// This build is applied: compare the cluster with it.
    DriftCheck,
    /// Nothing to do until the next drift check or interval.
    Idle { after: Duration },
}

pub fn decide(o: &Observed<'_>) -> Next {
    let object = o.object;
    let status = object.common_status();
    let approval = approval::of(object);
    // This build is applied: its plan was, or a correction of drift that applied the same
    // objects again.
    let applied = status.plan.as_ref().is_some_and(|p| {
        let this_build =
            p.id == o.plan_id || (p.corrects_drift && p.source_revision == o.revision && p.digest.as_deref() == Some(o.digest));
        this_build && !p.pending && p.applied_at.is_some()
    });
    if !applied {
        let candidate = Candidate { id: o.plan_id, digest: Some(o.digest), corrects_drift: false };
        return match approval::judge(&approval, candidate, object.drift_mode(), Spent::of(&status)) {
            Verdict::Apply { by } => Next::Apply { by },
            Verdict::Wait { stale } => Next::Wait { stale },
        };
    }
    // Same revision and build: nothing to roll out. An approval of the pending correction
    // acts at once, not on the next check.
    let drift = status.drift.unwrap_or_default();
    let correction_approved = drift.detected && drift.plan_id.as_deref().is_some_and(|id| approval.names(id));
    let every = object.drift_interval();
    let due = o.forced || correction_approved || o.since_drift_check.is_none_or(|since| since >= every);
    if due && object.drift_mode() != DriftMode::Disabled {
        return Next::DriftCheck;
    }
    Next::Idle { after: object.interval().min(every) }
}

/// Who lets the correction `correction` of a drift just found be applied now, if anyone:
/// `auto` in drift `mode: correct`, or an approval of exactly that id.
pub fn correct(object: &Kustomization, correction: &str) -> Option<PlanApprover> {
    let candidate = Candidate { id: correction, digest: None, corrects_drift: true };
    match approval::judge(&approval::of(object), candidate, object.drift_mode(), Spent::of(&object.common_status())) {
        Verdict::Apply { by } => Some(by),
        Verdict::Wait { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DriftStatus, PlanStatus, annotation};

    fn kustomization(extra: serde_json::Value) -> Kustomization {
        let mut spec = serde_json::json!({ "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "10m", "prune": true });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Kustomization",
            "metadata": { "name": "apps", "namespace": "team" },
            "spec": spec,
        }))
        .expect("kustomization")
    }

    fn applied(k: &mut Kustomization, id: &str) {
        let status = k.status.get_or_insert_with(Default::default);
        status.common.plan = Some(PlanStatus {
            id: id.into(),
            pending: false,
            applied_at: Some("t0".into()),
            source_revision: "main@sha1:abc".into(),
            digest: Some("sha256:built".into()),
            ..Default::default()
        });
        status.common.last_applied_plan = Some(id.into());
    }

    fn approve(k: &mut Kustomization, id: &str) {
        k.metadata.annotations = Some([(annotation::APPROVE_PLAN.to_string(), id.to_string())].into());
    }

    fn observed<'a>(k: &'a Kustomization, plan_id: &'a str, since: Option<u64>, forced: bool) -> Observed<'a> {
        let since_drift_check = since.map(Duration::from_secs);
        Observed { object: k, revision: "main@sha1:abc", digest: "sha256:built", plan_id, forced, since_drift_check }
    }

    fn at(k: &Kustomization, plan_id: &str, since: u64, forced: bool) -> Next {
        decide(&observed(k, plan_id, Some(since), forced))
    }

    #[test]
    fn a_new_build_is_applied_by_default_as_flux_does() {
        let k = kustomization(serde_json::json!({}));
        assert_eq!(at(&k, "plan-a-1", 0, false), Next::Apply { by: PlanApprover::Auto });
    }

    #[test]
    fn a_new_build_waits_when_approval_is_asked_for_and_applies_its_exact_id() {
        let mut k = kustomization(serde_json::json!({ "approvePlan": "" }));
        assert_eq!(at(&k, "plan-a-1", 0, false), Next::Wait { stale: None });
        approve(&mut k, "plan-a-1");
        assert_eq!(at(&k, "plan-a-1", 0, false), Next::Apply { by: PlanApprover::Annotation });
        assert_eq!(at(&k, "plan-b-2", 0, false), Next::Wait { stale: Some("plan-a-1".into()) }, "stale approval is never applied");
        applied(&mut k, "plan-a-1");
        assert_eq!(at(&k, "plan-b-2", 0, false), Next::Wait { stale: None }, "an approval already applied is spent, not stale");
    }

    #[test]
    fn an_applied_build_is_checked_for_drift_on_its_interval_or_when_forced() {
        let mut k = kustomization(serde_json::json!({ "drift": { "interval": "1m" } }));
        applied(&mut k, "plan-a-1");
        assert_eq!(at(&k, "plan-a-1", 30, false), Next::Idle { after: Duration::from_secs(60) });
        assert_eq!(at(&k, "plan-a-1", 61, false), Next::DriftCheck);
        assert_eq!(at(&k, "plan-a-1", 1, true), Next::DriftCheck);
        assert_eq!(decide(&observed(&k, "plan-a-1", None, false)), Next::DriftCheck);
        k.spec.drift.as_mut().expect("drift").mode = Some(DriftMode::Disabled);
        assert!(matches!(at(&k, "plan-a-1", 3600, true), Next::Idle { .. }));
    }

    #[test]
    fn drift_correction_is_approvable_by_its_id() {
        let mut k = kustomization(serde_json::json!({ "drift": { "mode": "detect" } }));
        applied(&mut k, "plan-a-1");
        let status = k.status.as_mut().expect("status");
        status.common.drift = Some(DriftStatus { detected: true, plan_id: Some("plan-fix-1".into()), ..Default::default() });
        assert_eq!(correct(&k, "plan-fix-1"), None, "detect mode: a correction waits");
        approve(&mut k, "plan-fix-1");
        assert_eq!(at(&k, "plan-a-1", 1, false), Next::DriftCheck, "approving the correction checks at once");
        assert_eq!(correct(&k, "plan-fix-1"), Some(PlanApprover::Annotation));
        assert_eq!(correct(&k, "plan-fix-2"), None, "another drift: another id");
    }

    #[test]
    fn after_a_correction_the_build_still_reads_as_applied() {
        let mut k = kustomization(serde_json::json!({ "approvePlan": "" }));
        applied(&mut k, "plan-a-1");
        let plan = k.status.as_mut().and_then(|s| s.common.plan.as_mut()).expect("plan");
        plan.id = "plan-fix-1".into();
        plan.corrects_drift = true;
        approve(&mut k, "plan-fix-1");
        assert_eq!(at(&k, "plan-a-1", 1, false), Next::Idle { after: Duration::from_secs(600) }, "no stale approval, no new plan");
        let mut other = k.clone();
        other.status.as_mut().and_then(|s| s.common.plan.as_mut()).expect("plan").digest = Some("sha256:other".into());
        assert!(matches!(at(&other, "plan-a-1", 1, false), Next::Wait { .. }), "a correction of another build is not this build");
    }

    #[test]
    fn correct_mode_with_auto_approval_corrects_drift_at_once() {
        let k = kustomization(serde_json::json!({ "drift": { "mode": "correct" } }));
        assert_eq!(correct(&k, "plan-fix-1"), Some(PlanApprover::Auto));
        let k = kustomization(serde_json::json!({}));
        assert_eq!(correct(&k, "plan-fix-1"), Some(PlanApprover::Auto), "unset: Flux's self-healing");
        let k = kustomization(serde_json::json!({ "drift": { "mode": "correct" }, "approvePlan": "" }));
        assert_eq!(correct(&k, "plan-fix-1"), None, "auto approval is needed as well");
    }
}
