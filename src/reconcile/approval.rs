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
//!   (Flux's Kustomization applies, tofu-controller's Terraform waits); `disable` (Terraform,
//!   as tofu-controller) only checks for drift and applies nothing; `force` applies all.
//! - What can be approved is the pending plan, else the correction of the drift detected
//!   now ([`approvable`]); any other id is refused when asked, and reported stale (never
//!   applied) when it stands in the spec or an annotation. An approval naming the plan
//!   already applied is spent, not stale.
//! - An approval binds what was reviewed: `driftless approve` and the review page write
//!   `<plan id>@<digest of the stored plan shown>`, and only a stored plan with that digest is
//!   applied; a plan re-made under the same id (after a failed apply, or a drift re-check)
//!   has another digest and waits for a new approval.
//! - An approval is spent by one apply attempt, successful or not ([`Approval::raw`] is kept
//!   in `status.spentApproval`, and the reconciler removes a spent annotation): a manual
//!   approval never applies a second plan.

use std::collections::BTreeMap;

use crate::api::{DriftMode, ObjectStatus, PlanApprover, Reconciled, annotation};

/// What the user said about applying plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Apply every plan as it is made (`approvePlan: auto`).
    Auto,
    /// Apply only the plan with this exact id (and, when given, this exact stored digest).
    Plan { id: String, digest: Option<String>, by: PlanApprover },
    /// Make plans and wait (`approvePlan` empty, or unset where the kind waits by default).
    Wait,
    /// Only check for drift, against the current revision; plan nothing to apply, apply
    /// nothing (tofu-controller's `approvePlan: disable`).
    DriftOnly,
}

/// The approval `object` carries; tofu-controller's `force` applies every plan.
pub fn of<K: Reconciled>(object: &K) -> Approval {
    if object.force_applies() {
        return Approval::Auto;
    }
    given(object.meta().annotations.as_ref(), object.approve_plan(), K::APPLIES_BY_DEFAULT)
}

/// `spec.approvePlan` of tofu-controller's drift-detection-only mode.
pub const DRIFT_ONLY: &str = "disable";

/// The shortest start of a plan id that `spec.approvePlan` may name: `plan-` and the 7 hex
/// digits of the revision, so a prefix approves plans of one revision, never all plans.
const MIN_PREFIX: usize = "plan-".len() + 7;

/// The approval of an object with these annotations and `spec.approvePlan`.
pub fn given(annotations: Option<&BTreeMap<String, String>>, approve_plan: Option<&str>, applies_by_default: bool) -> Approval {
    let annotated = annotations.and_then(|a| a.get(annotation::APPROVE_PLAN)).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(value) = annotated {
        let (id, digest) = match value.split_once('@') {
            Some((id, digest)) => (id.trim(), Some(digest.trim().to_string()).filter(|d| !d.is_empty())),
            None => (value, None),
        };
        return Approval::Plan { id: id.to_string(), digest, by: PlanApprover::Annotation };
    }
    if crate::api::applies_automatically(approve_plan, applies_by_default) {
        return Approval::Auto;
    }
    match approve_plan.map(str::trim) {
        None | Some("") => Approval::Wait,
        Some(DRIFT_ONLY) => Approval::DriftOnly,
        Some(id) => Approval::Plan { id: id.to_string(), digest: None, by: PlanApprover::Spec },
    }
}

impl Approval {
    /// Whether this approval names plan `id`: exactly, or (written in `spec.approvePlan`, as
    /// tofu-controller allows) as the start of it, at least [`MIN_PREFIX`] long. An
    /// annotation, what `driftless approve` and the review page write, names one exact id.
    pub fn names(&self, id: &str) -> bool {
        match self {
            Approval::Plan { id: approved, by: PlanApprover::Spec, .. } => {
                approved == id || (approved.len() >= MIN_PREFIX && id.starts_with(approved.as_str()))
            }
            Approval::Plan { id: approved, .. } => approved == id,
            Approval::Auto | Approval::Wait | Approval::DriftOnly => false,
        }
    }

    /// The approval as written (`plan-x@sha256:...`): what `status.spentApproval` keeps
    /// once an apply attempt used it.
    pub fn raw(&self) -> Option<String> {
        match self {
            Approval::Plan { id, digest: Some(d), .. } => Some(format!("{id}@{d}")),
            Approval::Plan { id, digest: None, .. } => Some(id.clone()),
            Approval::Auto | Approval::Wait | Approval::DriftOnly => None,
        }
    }
}

/// The annotation value approving plan `id` as it was shown: bound to its stored digest
/// when there is one.
pub fn annotation_value(id: &str, digest: Option<&str>) -> String {
    match digest {
        Some(d) => format!("{id}@{d}"),
        None => id.to_string(),
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
    /// The stored plan's digest (what an approval is bound to).
    pub digest: Option<&'a str>,
    /// A correction of drift, rather than the rollout of a revision.
    pub corrects_drift: bool,
}

/// What an object's status says approvals were used for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent<'a> {
    /// The plan applied last: an approval naming it is done, not stale.
    pub applied: Option<&'a str>,
    /// The approval (as written) an apply attempt used: it never applies another plan.
    pub approval: Option<&'a str>,
}

impl<'a> Spent<'a> {
    pub fn of(status: &'a ObjectStatus) -> Self {
        Spent { applied: status.last_applied_plan.as_deref(), approval: status.spent_approval.as_deref() }
    }
}

/// Whether `candidate` may be applied under `approval`, given what earlier applies spent.
pub fn judge(approval: &Approval, candidate: Candidate<'_>, drift_mode: DriftMode, spent: Spent<'_>) -> Verdict {
    match approval {
        Approval::Auto if !candidate.corrects_drift || drift_mode == DriftMode::Correct => Verdict::Apply { by: PlanApprover::Auto },
        Approval::Auto | Approval::Wait | Approval::DriftOnly => Verdict::Wait { stale: None },
        Approval::Plan { .. } if approval.raw().as_deref() == spent.approval => Verdict::Wait { stale: None },
        Approval::Plan { id, digest, by } if approval.names(candidate.id) => match (digest, candidate.digest) {
            // Approved as shown: only the very plan that was reviewed.
            (Some(d), Some(c)) if d != c => Verdict::Wait { stale: Some(format!("{id}@{d}")) },
            (Some(_), None) => Verdict::Wait { stale: Some(format!("{id}@{}", digest.as_deref().unwrap_or_default())) },
            _ => Verdict::Apply { by: *by },
        },
        Approval::Plan { .. } if spent.applied.is_some_and(|applied| approval.names(applied)) => Verdict::Wait { stale: None },
        Approval::Plan { id, .. } => Verdict::Wait { stale: Some(id.clone()) },
    }
}

/// The plan a reviewer may approve now: the pending plan, else the correction of the drift
/// detected now.
pub fn approvable(status: &ObjectStatus) -> Option<&str> {
    approvable_with_digest(status).map(|(id, _)| id)
}

/// The plan a reviewer may approve now and the digest an approval of it binds: the pending
/// plan's stored digest; a correction that is not a stored plan (a Kustomization's) binds
/// its id alone, which already names the drift it corrects.
pub fn approvable_with_digest(status: &ObjectStatus) -> Option<(&str, Option<&str>)> {
    if let Some(p) = status.plan.as_ref().filter(|p| p.pending) {
        return Some((p.id.as_str(), p.digest.as_deref()));
    }
    status.drift.as_ref().filter(|d| d.detected).and_then(|d| d.plan_id.as_deref()).map(|id| (id, None))
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

    const NEW: Candidate<'static> = Candidate { id: "plan-b", digest: Some("sha256:b"), corrects_drift: false };
    const FIX: Candidate<'static> = Candidate { id: "plan-fix", digest: None, corrects_drift: true };
    const NONE: Spent<'static> = Spent { applied: None, approval: None };

    fn plan(id: &str, by: PlanApprover) -> Approval {
        Approval::Plan { id: id.into(), digest: None, by }
    }

    #[test]
    fn a_spec_approval_may_name_the_start_of_a_plan_id_that_covers_its_revision() {
        let full = "plan-abc1234-0123456789";
        let candidate = Candidate { id: full, digest: Some("sha256:p"), corrects_drift: false };
        let spec = |id: &str| plan(id, PlanApprover::Spec);
        assert_eq!(judge(&spec("plan-abc1234"), candidate, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Spec });
        assert_eq!(judge(&spec("plan-abc1234-0123"), candidate, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Spec });
        assert_eq!(judge(&spec(full), candidate, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Spec });
        assert_eq!(
            judge(&spec("plan-abc"), candidate, DriftMode::Detect, NONE),
            Verdict::Wait { stale: Some("plan-abc".into()) },
            "shorter than the revision: names no plan"
        );
        assert_eq!(
            judge(&plan("plan-abc1234", PlanApprover::Annotation), candidate, DriftMode::Detect, NONE),
            Verdict::Wait { stale: Some("plan-abc1234".into()) },
            "an annotation names one exact plan"
        );
        let spent = Spent { applied: Some(full), approval: Some("plan-abc1234") };
        assert_eq!(judge(&spec("plan-abc1234"), candidate, DriftMode::Detect, spent), Verdict::Wait { stale: None }, "spent by its apply");
        let later = Candidate { id: "plan-abc1234-9999999999", digest: Some("sha256:q"), corrects_drift: false };
        let applied_only = Spent { applied: Some(full), approval: None };
        assert_eq!(
            judge(&spec("plan-abc1234"), later, DriftMode::Detect, applied_only),
            Verdict::Apply { by: PlanApprover::Spec },
            "a later plan of the same revision: tofu-controller's prefix rule approves it while unspent"
        );
    }

    #[test]
    fn the_annotation_wins_over_the_spec_and_unset_is_the_kinds_default() {
        assert_eq!(given(Some(&annotated(" plan-x ")), Some("auto"), false), plan("plan-x", PlanApprover::Annotation));
        assert_eq!(
            given(Some(&annotated("plan-x@sha256:ab")), None, false),
            Approval::Plan { id: "plan-x".into(), digest: Some("sha256:ab".into()), by: PlanApprover::Annotation }
        );
        assert_eq!(given(None, None, true), Approval::Auto, "Kustomization: applies");
        assert_eq!(given(None, None, false), Approval::Wait, "Terraform: waits");
        assert_eq!(given(None, Some(""), true), Approval::Wait, "empty always waits");
        assert_eq!(given(Some(&annotated("")), Some("plan-y"), false), plan("plan-y", PlanApprover::Spec));
    }

    #[test]
    fn auto_applies_a_new_revision_but_a_drift_correction_only_in_correct_mode() {
        assert_eq!(judge(&Approval::Auto, NEW, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Auto });
        assert_eq!(judge(&Approval::Auto, FIX, DriftMode::Detect, NONE), Verdict::Wait { stale: None });
        assert_eq!(judge(&Approval::Auto, FIX, DriftMode::Correct, NONE), Verdict::Apply { by: PlanApprover::Auto });
    }

    #[test]
    fn an_approval_applies_exactly_its_id() {
        let approval = plan("plan-fix", PlanApprover::Annotation);
        assert_eq!(judge(&approval, FIX, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Annotation });
        assert_eq!(judge(&approval, NEW, DriftMode::Detect, NONE), Verdict::Wait { stale: Some("plan-fix".into()) });
    }

    #[test]
    fn stale_approval_is_never_applied_and_a_spent_one_is_not_reported() {
        let approval = plan("plan-a", PlanApprover::Spec);
        assert_eq!(judge(&approval, NEW, DriftMode::Correct, NONE), Verdict::Wait { stale: Some("plan-a".into()) });
        let applied = Spent { applied: Some("plan-a"), approval: None };
        assert_eq!(judge(&approval, NEW, DriftMode::Correct, applied), Verdict::Wait { stale: None });
    }

    #[test]
    fn an_approval_binds_the_digest_that_was_shown() {
        let shown = Approval::Plan { id: "plan-b".into(), digest: Some("sha256:b".into()), by: PlanApprover::Annotation };
        assert_eq!(judge(&shown, NEW, DriftMode::Detect, NONE), Verdict::Apply { by: PlanApprover::Annotation });
        let remade = Candidate { digest: Some("sha256:other"), ..NEW };
        assert_eq!(
            judge(&shown, remade, DriftMode::Detect, NONE),
            Verdict::Wait { stale: Some("plan-b@sha256:b".into()) },
            "a plan re-made under the same id is not the plan reviewed"
        );
        assert_eq!(annotation_value("plan-b", Some("sha256:b")), "plan-b@sha256:b");
        assert_eq!(annotation_value("plan-fix", None), "plan-fix");
    }

    #[test]
    fn an_approval_is_spent_by_one_apply_attempt() {
        let by_id = plan("plan-b", PlanApprover::Spec);
        let spent = Spent { applied: None, approval: Some("plan-b") };
        assert_eq!(
            judge(&by_id, NEW, DriftMode::Detect, spent),
            Verdict::Wait { stale: None },
            "after a failed apply, the re-made plan waits"
        );
        let shown = Approval::Plan { id: "plan-b".into(), digest: Some("sha256:b".into()), by: PlanApprover::Annotation };
        assert_eq!(
            judge(&shown, NEW, DriftMode::Detect, spent),
            Verdict::Apply { by: PlanApprover::Annotation },
            "a new approval (with the digest) is not the spent one"
        );
        assert_eq!(judge(&Approval::Auto, NEW, DriftMode::Detect, spent), Verdict::Apply { by: PlanApprover::Auto }, "auto is never spent");
    }

    #[test]
    fn drift_correction_is_approvable_by_its_id() {
        let mut status = ObjectStatus {
            plan: Some(PlanStatus { id: "plan-applied".into(), pending: false, ..Default::default() }),
            drift: Some(DriftStatus { detected: true, plan_id: Some("plan-fix".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(approvable(&status), Some("plan-fix"));
        assert_eq!(approvable_with_digest(&status), Some(("plan-fix", None)));
        assert_eq!(approve(&status, None), Ok("plan-fix"));
        assert_eq!(approve(&status, Some("plan-fix")), Ok("plan-fix"));
        assert_eq!(
            approve(&status, Some("plan-applied")),
            Err(Refusal::NotCurrent { asked: "plan-applied".into(), current: "plan-fix".into() })
        );
        status.plan = Some(PlanStatus { id: "plan-new".into(), pending: true, digest: Some("sha256:n".into()), ..Default::default() });
        assert_eq!(approvable(&status), Some("plan-new"), "a pending plan comes first");
        assert_eq!(approvable_with_digest(&status), Some(("plan-new", Some("sha256:n"))));
        status.plan = None;
        status.drift = Some(DriftStatus { detected: false, plan_id: Some("plan-fix".into()), ..Default::default() });
        assert_eq!(approve(&status, None), Err(Refusal::NothingToApprove), "a resolved drift has nothing to approve");
    }
}
