//! What one drift check means for an object's status and for the people who hear about it,
//! for Terraform and Kustomization alike: a drift keeps its id across checks, so it is
//! announced once, announced again only when it changes, and once more when it clears. An
//! acknowledged drift id is not announced again, even when it comes back later.
//!
//! Pure functions: the reconcilers feed them what they found and emit what they return.

use crate::api::{Acknowledgement, DriftObject, DriftStatus, annotation, reason};
use crate::store::{Notice, Severity};
use driftless_core::drift::summarize as summarize_drift;
use driftless_core::ids::drift_id;

/// Reason of the event a first acknowledgement emits.
pub const DRIFT_ACKNOWLEDGED: &str = "DriftAcknowledged";
/// Reason of the event a cleared drift emits.
pub const DRIFT_RESOLVED: &str = "DriftResolved";

/// An acknowledgement asked for on the object: `driftless.dev/acknowledge-drift` names a drift
/// id, `driftless.dev/acted-by` who set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub drift_id: String,
    pub by: String,
}

impl AckRequest {
    pub fn from_annotations(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<Self> {
        let annotations = annotations?;
        let drift_id = annotations.get(annotation::ACKNOWLEDGE_DRIFT)?.trim().to_string();
        if drift_id.is_empty() {
            return None;
        }
        let by = annotations.get(annotation::ACTED_BY).cloned().unwrap_or_else(|| "unknown".into());
        Some(Self { drift_id, by })
    }
}

/// What a check found.
pub struct Finding<'a> {
    /// Drifted objects, after the user's ignore rules.
    pub objects: &'a [DriftObject],
    /// The plan that would correct it.
    pub correction: Option<&'a str>,
    /// The check corrected the drift at once (`mode: correct` with auto approval).
    pub corrected: bool,
    /// Message of a clearing that was not a correction (says what now matches).
    pub resolved_message: &'a str,
}

/// The new drift status and the events to emit, given the previous status.
pub fn observe(previous: Option<&DriftStatus>, found: &Finding<'_>, ack: Option<&AckRequest>, at: &str) -> (DriftStatus, Vec<Notice>) {
    let previous = previous.cloned().unwrap_or_default();
    let mut notices = Vec::new();
    let id = (!found.objects.is_empty()).then(|| drift_id(found.objects));
    let acknowledged = |id: &str| ack.is_some_and(|a| a.drift_id == id);
    if found.objects.is_empty() || found.corrected {
        if previous.detected {
            let message = if found.corrected && !found.objects.is_empty() {
                format!("drift corrected: {}", summarize_drift(found.objects))
            } else {
                found.resolved_message.to_string()
            };
            notices.push(Notice {
                reason: DRIFT_RESOLVED,
                severity: Severity::Info,
                message,
                drift_id: previous.id.clone(),
                plan_id: None,
            });
        }
        if let Some(id) = &id
            && previous.id.as_ref() != Some(id)
            && !acknowledged(id)
        {
            notices.push(Notice {
                reason: reason::DRIFT_DETECTED,
                severity: Severity::Error,
                message: format!("{}; corrected automatically", summarize_drift(found.objects)),
                drift_id: Some(id.clone()),
                plan_id: found.correction.map(str::to_string),
            });
        }
        let summary = if id.is_some() { format!("corrected: {}", summarize_drift(found.objects)) } else { "no drift".into() };
        let status = DriftStatus { detected: false, last_checked_at: Some(at.to_string()), summary, ..Default::default() };
        return (status, notices);
    }
    let id = id.unwrap_or_default();
    let summary = summarize_drift(found.objects);
    let same = previous.id.as_deref() == Some(id.as_str());
    if !same && !acknowledged(&id) {
        notices.push(Notice {
            reason: reason::DRIFT_DETECTED,
            severity: Severity::Error,
            message: summary.clone(),
            drift_id: Some(id.clone()),
            plan_id: found.correction.map(str::to_string),
        });
    }
    let acknowledged = match (&previous.acknowledged, ack) {
        (Some(kept), _) if kept.drift_id == id => Some(kept.clone()),
        (_, Some(a)) if a.drift_id == id => Some(Acknowledgement { drift_id: id.clone(), by: a.by.clone(), at: at.to_string() }),
        _ => None,
    };
    let status = DriftStatus {
        detected: true,
        detected_at: if same { previous.detected_at.clone() } else { Some(at.to_string()) },
        id: Some(id),
        last_checked_at: Some(at.to_string()),
        summary,
        objects: found.objects.to_vec(),
        plan_id: found.correction.map(str::to_string),
        acknowledged,
    };
    (status, notices)
}

/// Folds a check's finding into an object's status: `status.drift`, the history entry of a
/// check (`checked`), and the Drifted condition naming how to approve the correction of
/// `name`. Returns the events to emit; the one place both kinds record drift.
pub fn record(
    status: &mut crate::api::ObjectStatus,
    finding: &Finding<'_>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    at: &str,
    checked: bool,
) -> Vec<Notice> {
    use crate::api::{ConditionStatus, Conditions, condition_type as ct};
    let ack = AckRequest::from_annotations(meta.annotations.as_ref());
    let (drift, notices) = observe(status.drift.as_ref(), finding, ack.as_ref(), at);
    if checked {
        status.record(self::checked(&drift, at));
    }
    let generation = meta.generation;
    if drift.detected {
        let name = meta.name.as_deref().unwrap_or_default();
        let approve =
            finding.correction.map(|p| format!("; approve the correction with `driftless approve {name} {p}`")).unwrap_or_default();
        let acknowledged = drift.acknowledged.as_ref().map(|a| format!(" (acknowledged by {})", a.by)).unwrap_or_default();
        let message = format!("{}{acknowledged}{approve}", drift.summary);
        status.set_condition(ct::DRIFTED, ConditionStatus::True, reason::DRIFT_DETECTED, &message, generation, at);
    } else {
        status.set_condition(ct::DRIFTED, ConditionStatus::False, reason::NO_DRIFT, "no drift detected", generation, at);
    }
    status.drift = Some(drift);
    notices
}

/// The history entry of a drift check that ended in `status`.
pub fn checked(status: &DriftStatus, at: &str) -> crate::api::HistoryEntry {
    crate::api::HistoryEntry {
        time: at.to_string(),
        action: crate::api::DRIFT_CHECKED.into(),
        drift_id: status.id.clone(),
        message: status.summary.clone(),
        ..Default::default()
    }
}

/// Records an acknowledgement of the current drift between checks (the annotation was just
/// set); returns the event to emit the first time. An annotation naming another drift id
/// changes nothing: acknowledging is always of one exact drift.
pub fn acknowledge(drift: Option<&mut DriftStatus>, ack: Option<&AckRequest>, at: &str) -> Option<Notice> {
    let (drift, ack) = (drift?, ack?);
    if !drift.detected || drift.id.as_deref() != Some(ack.drift_id.as_str()) {
        return None;
    }
    if drift.acknowledged.as_ref().is_some_and(|a| a.drift_id == ack.drift_id) {
        return None;
    }
    drift.acknowledged = Some(Acknowledgement { drift_id: ack.drift_id.clone(), by: ack.by.clone(), at: at.to_string() });
    Some(Notice {
        reason: DRIFT_ACKNOWLEDGED,
        severity: Severity::Info,
        message: format!("drift {} acknowledged by {}: {}", ack.drift_id, ack.by, drift.summary),
        drift_id: Some(ack.drift_id.clone()),
        plan_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, field: &str) -> DriftObject {
        DriftObject { kind: "null_resource".into(), name: name.into(), action: "update".into(), fields: vec![field.into()] }
    }

    fn check(previous: Option<&DriftStatus>, objects: &[DriftObject], ack: Option<&AckRequest>) -> (DriftStatus, Vec<&'static str>) {
        let finding = Finding { objects, correction: Some("plan-x"), corrected: false, resolved_message: "resolved" };
        let (s, n) = observe(previous, &finding, ack, "t");
        (s, n.iter().map(|n| n.reason).collect())
    }

    #[test]
    fn one_notice_per_distinct_drift_and_one_when_it_clears() {
        let a = [obj("a", "x")];
        let (s1, n1) = check(None, &a, None);
        assert_eq!(n1, vec![reason::DRIFT_DETECTED]);
        let (s2, n2) = check(Some(&s1), &a, None);
        assert!(n2.is_empty(), "same drift again: nothing");
        assert_eq!(s2.detected_at, s1.detected_at);
        let b = [obj("a", "y")];
        let (s3, n3) = check(Some(&s2), &b, None);
        assert_eq!(n3, vec![reason::DRIFT_DETECTED], "a changed drift is announced");
        let (s4, n4) = check(Some(&s3), &[], None);
        assert_eq!(n4, vec![DRIFT_RESOLVED]);
        let (_, n5) = check(Some(&s4), &[], None);
        assert!(n5.is_empty(), "resolved once");
    }

    #[test]
    fn an_acknowledged_drift_is_not_announced_again_but_a_changed_one_is() {
        let a = [obj("a", "x")];
        let (mut s1, _) = check(None, &a, None);
        let ack = AckRequest { drift_id: s1.id.clone().unwrap(), by: "alice".into() };
        let n = acknowledge(Some(&mut s1), Some(&ack), "t2").unwrap();
        assert_eq!(n.reason, DRIFT_ACKNOWLEDGED);
        assert_eq!(s1.acknowledged.as_ref().unwrap().by, "alice");
        assert!(acknowledge(Some(&mut s1), Some(&ack), "t3").is_none(), "acknowledged once");
        let (s2, n2) = check(Some(&s1), &a, Some(&ack));
        assert!(n2.is_empty());
        assert_eq!(s2.acknowledged.as_ref().unwrap().at, "t2", "kept across checks");
        // It clears, then the very same drift comes back: still acknowledged, no alert.
        let (s3, _) = check(Some(&s2), &[], Some(&ack));
        let (s4, n4) = check(Some(&s3), &a, Some(&ack));
        assert!(n4.is_empty());
        assert!(s4.acknowledged.is_some());
        let (s5, n5) = check(Some(&s4), &[obj("a", "z")], Some(&ack));
        assert_eq!(n5, vec![reason::DRIFT_DETECTED]);
        assert!(s5.acknowledged.is_none());
    }

    #[test]
    fn acknowledging_another_drift_id_changes_nothing() {
        let (mut s, _) = check(None, &[obj("a", "x")], None);
        let ack = AckRequest { drift_id: "other".into(), by: "bob".into() };
        assert!(acknowledge(Some(&mut s), Some(&ack), "t").is_none());
        assert!(s.acknowledged.is_none());
    }
}
