//! What a Terraform reconcile does next, decided from data alone (no I/O), so every
//! transition of the approval and drift model is unit-tested. Approval itself is the one rule
//! of [`crate::reconcile::approval`].

use std::time::Duration;

use crate::api::{DriftMode, PlanApprover, Reconciled, Terraform};
use crate::reconcile::approval::{self, Approval, Candidate, Spent, Verdict};

/// What the reconciler knows at decision time.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub object: &'a Terraform,
    /// Digest of every input (source content, spec fields, resolved variables).
    pub inputs_digest: &'a str,
    /// The user asked for a complete reconcile now (CLI `reconcile` or the annotation).
    pub forced: bool,
    /// Seconds since the last drift check (None: never checked).
    pub since_drift_check: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Make a new plan (inputs changed, or nothing planned yet).
    Plan { destroy: bool },
    /// Apply the pending plan: it is approved.
    Apply { plan_id: String, digest: Option<String>, approved_by: PlanApprover },
    /// A plan waits for approval; `stale` names an approval that no longer matches it.
    Wait { plan_id: String, stale: Option<String> },
    /// Applied and current: look for drift.
    DriftCheck,
    /// Nothing to do until the next drift check or interval.
    Idle { after: Duration },
}

/// Whether a plan about to be made may be applied in the run that makes it (`auto`).
pub fn auto_applies(object: &Terraform, corrects_drift: bool) -> bool {
    let approval = approval::of(object);
    approval == Approval::Auto
        && matches!(
            approval::judge(&approval, Candidate { id: "", digest: None, corrects_drift }, object.drift_mode(), Spent::default()),
            Verdict::Apply { .. }
        )
}

pub fn decide(o: &Observed<'_>) -> Next {
    let object = o.object;
    let status = object.status.clone().unwrap_or_default();
    let destroy = object.spec.destroy;
    let every = object.drift_interval();
    let drift_due = o.forced || o.since_drift_check.is_none_or(|since| since >= every);
    // tofu-controller's drift-detection-only mode: every check is against the current
    // revision and inputs, and nothing is ever planned to be applied.
    let approval = approval::of(object);
    if approval == Approval::DriftOnly {
        let inputs_changed = status.last_inputs_digest.as_deref() != Some(o.inputs_digest);
        return match o.since_drift_check {
            _ if object.drift_mode() == DriftMode::Disabled => Next::Idle { after: object.spec.interval.as_std() },
            _ if inputs_changed || drift_due => Next::DriftCheck,
            Some(since) => Next::Idle { after: (every - since).min(object.spec.interval.as_std()) },
            None => Next::DriftCheck,
        };
    }
    if status.last_inputs_digest.as_deref() != Some(o.inputs_digest) {
        return Next::Plan { destroy };
    }
    if let Some(plan) = status.common.plan.as_ref().filter(|p| p.pending) {
        let candidate = Candidate { id: &plan.id, digest: plan.digest.as_deref(), corrects_drift: plan.corrects_drift };
        let spent = Spent::of(&status.common);
        let next = match approval::judge(&approval, candidate, object.drift_mode(), spent) {
            Verdict::Apply { by } => Next::Apply { plan_id: plan.id.clone(), digest: plan.digest.clone(), approved_by: by },
            Verdict::Wait { stale } => Next::Wait { plan_id: plan.id.clone(), stale },
        };
        // A correction waiting for approval does not stop the checks: the drift may have
        // changed (a new correction, a new alert) or gone (nothing left to approve).
        let waiting = matches!(next, Next::Wait { .. });
        if waiting && plan.corrects_drift && drift_due && object.drift_mode() != DriftMode::Disabled && !destroy {
            return Next::DriftCheck;
        }
        return next;
    }
    if object.drift_mode() == DriftMode::Disabled || destroy {
        return if o.forced { Next::Plan { destroy } } else { Next::Idle { after: object.spec.interval.as_std() } };
    }
    match o.since_drift_check {
        _ if o.forced => Next::DriftCheck,
        None => Next::DriftCheck,
        Some(since) if since >= every => Next::DriftCheck,
        Some(since) => Next::Idle { after: (every - since).min(object.spec.interval.as_std()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CrossNamespaceSourceReference, Duration as ApiDuration, PlanStatus, TerraformSpec, TerraformStatus};

    fn tf(approve: Option<&str>) -> Terraform {
        let mut t = Terraform::new(
            "demo",
            TerraformSpec {
                source_ref: CrossNamespaceSourceReference { kind: "GitRepository".into(), name: "repo".into(), ..Default::default() },
                path: "./".into(),
                interval: ApiDuration::parse("10m").unwrap(),
                retry_interval: None,
                suspend: false,
                approve_plan: approve.map(str::to_string),
                vars: vec![],
                vars_from: vec![],
                workspace: "default".into(),
                engine: None,
                destroy: false,
                destroy_resources_on_deletion: false,
                depends_on: vec![],
                write_outputs_to_secret: None,
                backend_config: None,
                drift: None,
                service_account_name: None,
                runner_pod_template: None,
                values: None,
                disable_drift_detection: false,
                targets: vec![],
                parallelism: 0,
                upgrade_on_init: false,
                refresh_before_apply: false,
                force: false,
                always_cleanup_runner_pod: None,
                store_readable_plan: None,
                tfstate: None,
            },
        );
        t.status = Some(TerraformStatus::default());
        t
    }

    fn pending(t: &mut Terraform, id: &str, corrects_drift: bool) {
        let s = t.status.get_or_insert_with(Default::default);
        s.last_inputs_digest = Some("in-1".into());
        s.common.plan = Some(PlanStatus { id: id.into(), pending: true, corrects_drift, ..Default::default() });
    }

    #[test]
    fn a_pending_correction_is_checked_again_when_a_check_is_due() {
        let mut t = tf(None);
        t.spec.drift = Some(crate::api::DriftSpec {
            mode: Some(DriftMode::Detect),
            interval: Some(ApiDuration::parse("1m").unwrap()),
            ignore: vec![],
        });
        pending(&mut t, "plan-fix", true);
        let at = |t: &Terraform, secs, forced| {
            decide(&Observed { object: t, inputs_digest: "in-1", forced, since_drift_check: Some(Duration::from_secs(secs)) })
        };
        assert!(matches!(at(&t, 1, false), Next::Wait { .. }), "not due: wait");
        assert_eq!(at(&t, 120, false), Next::DriftCheck, "due: check again");
        assert_eq!(at(&t, 1, true), Next::DriftCheck, "forced: check now");
        pending(&mut t, "plan-new-revision", false);
        assert!(matches!(at(&t, 120, false), Next::Wait { .. }), "a plan of a new revision just waits");
    }

    fn observe(t: &Terraform) -> Next {
        decide(&Observed { object: t, inputs_digest: "in-1", forced: false, since_drift_check: Some(Duration::from_secs(1)) })
    }

    #[test]
    fn new_inputs_make_a_new_plan() {
        let t = tf(None);
        assert_eq!(observe(&t), Next::Plan { destroy: false });
    }

    #[test]
    fn a_pending_plan_waits_without_approval() {
        let mut t = tf(None);
        pending(&mut t, "plan-a-1", false);
        assert_eq!(observe(&t), Next::Wait { plan_id: "plan-a-1".into(), stale: None });
    }

    #[test]
    fn approving_the_exact_id_applies_it() {
        let mut t = tf(Some("plan-a-1"));
        pending(&mut t, "plan-a-1", false);
        assert!(matches!(observe(&t), Next::Apply { approved_by: PlanApprover::Spec, .. }));
        let mut t = tf(None);
        pending(&mut t, "plan-a-1", false);
        t.metadata.annotations = Some([(crate::api::annotation::APPROVE_PLAN.to_string(), "plan-a-1".to_string())].into());
        assert!(matches!(observe(&t), Next::Apply { approved_by: PlanApprover::Annotation, .. }));
    }

    #[test]
    fn stale_approval_is_never_applied() {
        let mut t = tf(Some("plan-old-1"));
        pending(&mut t, "plan-new-2", false);
        assert_eq!(observe(&t), Next::Wait { plan_id: "plan-new-2".into(), stale: Some("plan-old-1".into()) });
    }

    #[test]
    fn an_approval_already_applied_is_not_reported_stale() {
        let mut t = tf(Some("plan-old-1"));
        pending(&mut t, "plan-new-2", false);
        t.status.as_mut().unwrap().common.last_applied_plan = Some("plan-old-1".into());
        assert_eq!(observe(&t), Next::Wait { plan_id: "plan-new-2".into(), stale: None });
    }

    #[test]
    fn drift_only_mode_checks_a_new_revision_for_drift_and_never_plans_or_applies() {
        let mut t = tf(Some("disable"));
        assert_eq!(observe(&t), Next::DriftCheck, "new inputs: a drift check, not a plan");
        t.status.as_mut().unwrap().last_inputs_digest = Some("in-1".into());
        let at = |t: &Terraform, secs| {
            decide(&Observed { object: t, inputs_digest: "in-1", forced: false, since_drift_check: Some(Duration::from_secs(secs)) })
        };
        assert_eq!(at(&t, 30), Next::Idle { after: Duration::from_secs(570) });
        assert_eq!(at(&t, 601), Next::DriftCheck);
        pending(&mut t, "plan-a-1", false);
        assert_eq!(at(&t, 601), Next::DriftCheck, "a plan left from before is never applied");
        assert!(!auto_applies(&t, true) && !auto_applies(&t, false));
    }

    #[test]
    fn auto_applies_drift_corrections_only_in_correct_mode() {
        let mut t = tf(Some("auto"));
        pending(&mut t, "plan-a-1", true);
        t.spec.drift = Some(crate::api::DriftSpec { mode: Some(DriftMode::Detect), ..Default::default() });
        assert!(matches!(observe(&t), Next::Wait { .. }), "detect: the opt-in for reporting only");
        t.spec.drift = Some(crate::api::DriftSpec { mode: Some(DriftMode::Correct), ..Default::default() });
        assert!(matches!(observe(&t), Next::Apply { approved_by: PlanApprover::Auto, .. }));
        t.spec.drift = None;
        assert!(matches!(observe(&t), Next::Apply { approved_by: PlanApprover::Auto, .. }), "unset under auto: tofu-controller corrects");
    }

    #[test]
    fn drift_is_checked_on_its_interval_or_when_forced() {
        let mut t = tf(None);
        t.status.as_mut().unwrap().last_inputs_digest = Some("in-1".into());
        t.spec.drift = Some(crate::api::DriftSpec { interval: Some(ApiDuration::parse("1m").unwrap()), ..Default::default() });
        let at = |t: &Terraform, secs, forced| {
            decide(&Observed { object: t, inputs_digest: "in-1", forced, since_drift_check: Some(Duration::from_secs(secs)) })
        };
        assert_eq!(at(&t, 30, false), Next::Idle { after: Duration::from_secs(30) });
        assert_eq!(at(&t, 61, false), Next::DriftCheck);
        assert_eq!(at(&t, 30, true), Next::DriftCheck);
        t.spec.drift.as_mut().unwrap().mode = Some(DriftMode::Disabled);
        assert!(matches!(at(&t, 3600, false), Next::Idle { .. }));
    }
}
