//! The one approval rule, for every kind that plans, and for everyone who asks: the
//! reconcilers (may this plan be applied?), `driftless approve` and the review page (may
//! this id be approved?). Pure functions over the object's spec, annotations and status.
//!
//! # The rule
//! - An approval names one exact plan id: the `driftless.dev/approve-plan` annotation (what
//!   `driftless approve` and the review page set; the newer intent) wins over
//!   `spec.approvePlan`.
//! - `approvePlan: auto` applies every plan of a new revision as it is made, and a drift
//!   correction only in drift `mode: correct`; empty waits; unset is the kind's default
//!   (Flux's Kustomization applies, tofu-controller's Terraform waits).
//! - What can be approved is the pending plan, else the correction of the drift detected
//!   now ([`approvable`]); any other id is refused when asked, and reported stale (never
//!   applied) when it stands in the spec or an annotation. An approval naming the plan
//!   already applied is spent, not stale.

use std::collections::BTreeMap;

use crate::api::{DriftMode, ObjectStatus, PlanApprover, Reconciled, annotation};

/// What the user said about applying plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Apply every plan as it is made (`approvePlan: auto`).
    Auto,
    /// Apply only the plan with this exact id.
    Plan { id: String, by: PlanApprover },
    /// Make plans and wait (`approvePlan` empty, or unset where the kind waits by default).
    Wait,
}

/// The approval `object` carries.
pub fn of<K: Reconciled>(object: &K) -> Approval {
    given(object.meta().annotations.as_ref(), object.approve_plan(), K::APPLIES_BY_DEFAULT)
}

/// The approval of an object with these annotations and `spec.approvePlan`.
pub fn given(annotations: Option<&BTreeMap<String, String>>, approve_plan: Option<&str>, applies_by_default: bool) -> Approval {
    let annotated = annotations.and_then(|a| a.get(annotation::APPROVE_PLAN)).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(id) = annotated {
        return Approval::Plan { id: id.to_string(), by: PlanApprover::Annotation };
    }
    match approve_plan.map(str::trim) {
        None if applies_by_default => Approval::Auto,
        None | Some("") => Approval::Wait,
        Some("auto") => Approval::Auto,
        Some(id) => Approval::Plan { id: id.to_string(), by: PlanApprover::Spec },
    }
}

/// What may happen to a plan that was just made or is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Apply {
        by: PlanApprover,
    },
    /// Wait for approval; `stale` names an approval of another plan: reported, never applied.
    Wait {
        stale: Option<String>,
    },
}

/// The plan a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: &'a str,
    /// A correction of drift, rather than the rollout of a revision.
    pub corrects_drift: bool,
}

/// Whether `candidate` may be applied under `approval`; `spent` is the plan applied last.
pub fn judge(approval: &Approval, candidate: Candidate<'_>, drift_mode: DriftMode, spent: Option<&str>) -> Verdict {
    match approval {
        Approval::Auto if !candidate.corrects_drift || drift_mode == DriftMode::Correct => Verdict::Apply { by: PlanApprover::Auto },
        Approval::Auto | Approval::Wait => Verdict::Wait { stale: None },
        Approval::Plan { id, by } if id == candidate.id => Verdict::Apply { by: *by },
        Approval::Plan { id, .. } if Some(id.as_str()) == spent => Verdict::Wait { stale: None },
        Approval::Plan { id, .. } => Verdict::Wait { stale: Some(id.clone()) },
    }
}

/// An approval by id not yet spent: a fresh plan that gets exactly this id (the same
/// revision and inputs as the plan approved) may be applied in the run that makes it.
pub fn standing(approval: &Approval, spent: Option<&str>) -> Option<String> {
    match approval {
        Approval::Plan { id, .. } if Some(id.as_str()) != spent => Some(id.clone()),
        _ => None,
    }
}

/// The plan a reviewer may approve now: the pending plan, else the correction of the drift
/// detected now.
pub fn approvable(status: &ObjectStatus) -> Option<&str> {
    let pending = status.plan.as_ref().filter(|p| p.pending).map(|p| p.id.as_str());
    let correction = status.drift.as_ref().filter(|d| d.detected).and_then(|d| d.plan_id.as_deref());
    pending.or(correction)
}

/// Why approving an id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no plan waiting for approval")]
    NothingToApprove,
    #[error("{asked} is not the plan waiting for approval; that is {current}")]
    NotCurrent { asked: String, current: String },
}

/// The id an approval of `asked` (or, with `None`, of whatever waits) would set, or why
/// there is none: the check of `driftless approve` and of the review page.
pub fn approve<'a>(status: &'a ObjectStatus, asked: Option<&'a str>) -> Result<&'a str, Refusal> {
    let current = approvable(status).ok_or(Refusal::NothingToApprove)?;
    match asked {
        Some(id) if id != current => Err(Refusal::NotCurrent { asked: id.to_string(), current: current.to_string() }),
        _ => Ok(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DriftStatus, PlanStatus};

    fn annotated(id: &str) -> BTreeMap<String, String> {
        [(annotation::APPROVE_PLAN.to_string(), id.to_string())].into()
    }

    const NEW: Candidate<'static> = Candidate { id: "plan-b", corrects_drift: false };
    const FIX: Candidate<'static> = Candidate { id: "plan-fix", corrects_drift: true };

    #[test]
    fn the_annotation_wins_over_the_spec_and_unset_is_the_kinds_default() {
        assert_eq!(
            given(Some(&annotated(" plan-x ")), Some("auto"), false),
            Approval::Plan { id: "plan-x".into(), by: PlanApprover::Annotation }
        );
        assert_eq!(given(None, None, true), Approval::Auto, "Kustomization: applies");
        assert_eq!(given(None, None, false), Approval::Wait, "Terraform: waits");
        assert_eq!(given(None, Some(""), true), Approval::Wait, "empty always waits");
        assert_eq!(given(Some(&annotated("")), Some("plan-y"), false), Approval::Plan { id: "plan-y".into(), by: PlanApprover::Spec });
    }

    #[test]
    fn auto_applies_a_new_revision_but_a_drift_correction_only_in_correct_mode() {
        assert_eq!(judge(&Approval::Auto, NEW, DriftMode::Detect, None), Verdict::Apply { by: PlanApprover::Auto });
        assert_eq!(judge(&Approval::Auto, FIX, DriftMode::Detect, None), Verdict::Wait { stale: None });
        assert_eq!(judge(&Approval::Auto, FIX, DriftMode::Correct, None), Verdict::Apply { by: PlanApprover::Auto });
    }

    #[test]
    fn an_approval_applies_exactly_its_id() {
        let approval = Approval::Plan { id: "plan-fix".into(), by: PlanApprover::Annotation };
        assert_eq!(judge(&approval, FIX, DriftMode::Detect, None), Verdict::Apply { by: PlanApprover::Annotation });
        assert_eq!(judge(&approval, NEW, DriftMode::Detect, None), Verdict::Wait { stale: Some("plan-fix".into()) });
    }

    #[test]
    fn stale_approval_is_never_applied_and_a_spent_one_is_not_reported() {
        let approval = Approval::Plan { id: "plan-a".into(), by: PlanApprover::Spec };
        assert_eq!(judge(&approval, NEW, DriftMode::Correct, None), Verdict::Wait { stale: Some("plan-a".into()) });
        assert_eq!(judge(&approval, NEW, DriftMode::Correct, Some("plan-a")), Verdict::Wait { stale: None });
        assert_eq!(standing(&approval, Some("plan-a")), None);
        assert_eq!(standing(&approval, None), Some("plan-a".into()));
        assert_eq!(standing(&Approval::Auto, None), None);
    }

    #[test]
    fn drift_correction_is_approvable_by_its_id() {
        let mut status = ObjectStatus {
            plan: Some(PlanStatus { id: "plan-applied".into(), pending: false, ..Default::default() }),
            drift: Some(DriftStatus { detected: true, plan_id: Some("plan-fix".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(approvable(&status), Some("plan-fix"));
        assert_eq!(approve(&status, None), Ok("plan-fix"));
        assert_eq!(approve(&status, Some("plan-fix")), Ok("plan-fix"));
        assert_eq!(
            approve(&status, Some("plan-applied")),
            Err(Refusal::NotCurrent { asked: "plan-applied".into(), current: "plan-fix".into() })
        );
        status.plan = Some(PlanStatus { id: "plan-new".into(), pending: true, ..Default::default() });
        assert_eq!(approvable(&status), Some("plan-new"), "a pending plan comes first");
        status.plan = None;
        status.drift = Some(DriftStatus { detected: false, plan_id: Some("plan-fix".into()), ..Default::default() });
        assert_eq!(approve(&status, None), Err(Refusal::NothingToApprove), "a resolved drift has nothing to approve");
    }
}
