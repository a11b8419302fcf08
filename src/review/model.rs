//! What the review page shows, decided from data alone: one state word per object, the plan
//! a reviewer may approve, and the overview's rows and filters. Pure, so the vocabulary is
//! unit-tested without a server.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{ConditionStatus, Conditions, ObjectStatus, Reconciled, condition_type as ct};

/// The kinds the page shows are those that plan, apply and drift ([`Kind::PLANNED`]).
pub use crate::api::Kind;

/// The planned kind a URL segment or filter value names, in any case (`terraform`).
pub fn planned_kind(text: &str) -> Option<Kind> {
    Kind::from_user(text).filter(|k| k.is_planned())
}

/// The one state word of an object, in the order it is decided: what needs a person first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum State {
    Suspended,
    Drifted,
    PlanPending,
    Failed,
    Progressing,
    Checked,
    Ready,
}

impl State {
    pub const ALL: [State; 7] =
        [State::Suspended, State::Drifted, State::PlanPending, State::Failed, State::Progressing, State::Checked, State::Ready];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Suspended => "Suspended",
            State::Drifted => "Drifted",
            State::PlanPending => "PlanPending",
            State::Failed => "Failed",
            State::Progressing => "Progressing",
            State::Checked => "Checked",
            State::Ready => "Ready",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }
}

/// The state of an object with this `status`. Drift outranks a pending plan because a
/// drift's correction is itself a pending plan; a failure outranks progress so a retry loop
/// does not hide its error.
pub fn state_of(suspended: bool, status: &ObjectStatus) -> State {
    let ready = status.condition(ct::READY).map(|c| c.status);
    let drift = status.drift.as_ref();
    if suspended {
        State::Suspended
    } else if drift.is_some_and(|d| d.detected) {
        State::Drifted
    } else if status.is_true(ct::PLAN_PENDING) {
        State::PlanPending
    } else if ready == Some(ConditionStatus::False) {
        State::Failed
    } else if ready.is_none() || ready == Some(ConditionStatus::Unknown) || status.is_true(ct::RECONCILING) {
        State::Progressing
    } else if drift.is_some_and(|d| d.last_checked_at.is_some()) {
        State::Checked
    } else {
        State::Ready
    }
}

/// One Terraform or Kustomization, reduced to what the page reads.
#[derive(Clone, Debug)]
pub struct Object {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub suspended: bool,
    pub annotations: BTreeMap<String, String>,
    pub status: ObjectStatus,
}

impl Object {
    /// An object of a planned kind, reduced to what the page reads.
    pub fn of<K: Reconciled>(o: K) -> Self {
        Object {
            kind: K::KIND,
            namespace: o.namespace_or_default(),
            name: o.name_or_empty(),
            suspended: o.suspended(),
            status: o.common_status(),
            annotations: o.meta().annotations.clone().unwrap_or_default(),
        }
    }
}

impl Object {
    pub fn state(&self) -> State {
        state_of(self.suspended, &self.status)
    }

    /// The plan a reviewer may approve now: the pending plan, else the correction of a
    /// detected drift. Approving any other id is refused.
    pub fn approvable_plan(&self) -> Option<&str> {
        crate::reconcile::approval::approvable(&self.status)
    }

    /// The id of the drift detected now.
    pub fn current_drift(&self) -> Option<&str> {
        self.status.drift.as_ref().filter(|d| d.detected).and_then(|d| d.id.as_deref())
    }

    /// Who acknowledged the current drift, when its acknowledgement names this very drift.
    pub fn acknowledged_by(&self) -> Option<&str> {
        let drift = self.status.drift.as_ref().filter(|d| d.detected)?;
        drift.acknowledged.as_ref().filter(|a| Some(a.drift_id.as_str()) == drift.id.as_deref()).map(|a| a.by.as_str())
    }

    /// The Ready condition's message: what happened and what to do next.
    pub fn message(&self) -> &str {
        self.status.condition(ct::READY).map(|c| c.message.as_str()).unwrap_or_default()
    }

    pub fn row(&self) -> Row {
        Row {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            state: self.state(),
            acknowledged_by: self.acknowledged_by().map(str::to_string),
            last_checked_at: self.status.drift.as_ref().and_then(|d| d.last_checked_at.clone()),
            plan_id: self.approvable_plan().map(str::to_string),
            drift: self.status.drift.as_ref().filter(|d| d.detected).map(|d| d.summary.clone()),
            drift_id: self.current_drift().map(str::to_string),
            message: self.message().to_string(),
            url: super::object_path(self.kind, &self.namespace, &self.name),
        }
    }
}

/// One row of the overview, as the table shows it and `/api/objects` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub state: State,
    pub acknowledged_by: Option<String>,
    pub last_checked_at: Option<String>,
    pub plan_id: Option<String>,
    /// The drift's summary, while drift is detected.
    pub drift: Option<String>,
    pub drift_id: Option<String>,
    pub message: String,
    pub url: String,
}

/// The overview's filters (`?namespace=&kind=&state=`); empty means any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub namespace: Option<String>,
    pub kind: Option<Kind>,
    pub state: Option<State>,
}

impl Filters {
    /// From a query string. An unknown kind or state is an error naming it, rather than a
    /// filter that silently shows everything.
    pub fn parse(query: Option<&str>) -> Result<Filters, String> {
        let mut filters = Filters::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "namespace" => filters.namespace = Some(value.into_owned()),
                "kind" => {
                    filters.kind =
                        Some(planned_kind(&value).ok_or_else(|| format!("unknown kind {value:?}: use Terraform or Kustomization"))?)
                }
                "state" => {
                    let known = State::ALL.map(State::as_str).join(", ");
                    filters.state = Some(State::parse(&value).ok_or_else(|| format!("unknown state {value:?}: use one of {known}"))?);
                }
                _ => {}
            }
        }
        Ok(filters)
    }

    pub fn matches(&self, row: &Row) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == row.namespace)
            && self.kind.is_none_or(|k| k == row.kind)
            && self.state.is_none_or(|s| s == row.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Acknowledgement, DriftStatus, PlanStatus};

    fn status(conditions: &[(&str, ConditionStatus, &str)]) -> ObjectStatus {
        let mut s = ObjectStatus::default();
        for (type_, value, reason) in conditions {
            s.set_condition(type_, *value, reason, "", None, "t");
        }
        s
    }

    fn drift(detected: bool) -> DriftStatus {
        DriftStatus {
            detected,
            id: detected.then(|| "drift-1".into()),
            last_checked_at: Some("t".into()),
            plan_id: detected.then(|| "plan-fix".into()),
            ..Default::default()
        }
    }

    #[test]
    fn each_state_word_comes_from_its_conditions_in_priority_order() {
        use ConditionStatus::{False, True, Unknown};
        let ready = status(&[(ct::READY, True, "Succeeded")]);
        assert_eq!(state_of(false, &ready), State::Ready);
        assert_eq!(state_of(true, &ready), State::Suspended, "suspension outranks everything");

        let mut checked = ready.clone();
        checked.drift = Some(drift(false));
        assert_eq!(state_of(false, &checked), State::Checked);

        let mut drifted = checked.clone();
        drifted.drift = Some(drift(true));
        drifted.set_condition(ct::PLAN_PENDING, True, "PlanPending", "", None, "t");
        assert_eq!(state_of(false, &drifted), State::Drifted, "a drift's correction is pending too: the drift is what matters");

        let pending = status(&[(ct::READY, False, "PlanPending"), (ct::PLAN_PENDING, True, "PlanPending")]);
        assert_eq!(state_of(false, &pending), State::PlanPending);
        let stale = status(&[(ct::READY, False, "ApprovalStale"), (ct::PLAN_PENDING, True, "PlanPending")]);
        assert_eq!(state_of(false, &stale), State::PlanPending);

        assert_eq!(state_of(false, &status(&[(ct::READY, False, "PlanFailed")])), State::Failed);
        let stalled = status(&[(ct::READY, False, "InvalidSpec"), (ct::STALLED, True, "InvalidSpec")]);
        assert_eq!(state_of(false, &stalled), State::Failed);
        let retrying = status(&[(ct::READY, False, "ApplyFailed"), (ct::RECONCILING, True, "Progressing")]);
        assert_eq!(state_of(false, &retrying), State::Failed, "a retry does not hide the failure");

        assert_eq!(state_of(false, &ObjectStatus::default()), State::Progressing, "never reconciled");
        assert_eq!(state_of(false, &status(&[(ct::READY, Unknown, "Progressing")])), State::Progressing);
        let working = status(&[(ct::READY, True, "Succeeded"), (ct::RECONCILING, True, "Progressing")]);
        assert_eq!(state_of(false, &working), State::Progressing);

        for s in State::ALL {
            assert_eq!(State::parse(&s.as_str().to_lowercase()), Some(s));
        }
    }

    fn object(status: ObjectStatus) -> Object {
        Object {
            kind: Kind::Terraform,
            namespace: "team-a".into(),
            name: "app".into(),
            suspended: false,
            annotations: BTreeMap::new(),
            status,
        }
    }

    #[test]
    fn the_approvable_plan_is_the_pending_one_else_the_drift_correction() {
        let mut s = ObjectStatus::default();
        assert_eq!(object(s.clone()).approvable_plan(), None);
        s.plan = Some(PlanStatus { id: "plan-old".into(), pending: false, ..Default::default() });
        assert_eq!(object(s.clone()).approvable_plan(), None, "an applied plan is not approvable");
        s.drift = Some(drift(true));
        assert_eq!(object(s.clone()).approvable_plan(), Some("plan-fix"));
        s.plan = Some(PlanStatus { id: "plan-new".into(), pending: true, ..Default::default() });
        assert_eq!(object(s).approvable_plan(), Some("plan-new"));
    }

    #[test]
    fn an_acknowledgement_counts_only_for_the_drift_it_names() {
        let mut s = ObjectStatus::default();
        let mut d = drift(true);
        d.acknowledged = Some(Acknowledgement { drift_id: "drift-0".into(), by: "alice".into(), at: "t".into() });
        s.drift = Some(d.clone());
        assert_eq!(object(s.clone()).acknowledged_by(), None, "an older drift's acknowledgement");
        d.acknowledged = Some(Acknowledgement { drift_id: "drift-1".into(), by: "alice".into(), at: "t".into() });
        s.drift = Some(d);
        let o = object(s);
        assert_eq!(o.acknowledged_by(), Some("alice"));
        let row = o.row();
        assert_eq!(row.acknowledged_by.as_deref(), Some("alice"));
        assert_eq!(row.url, "/objects/terraform/team-a/app");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["state"], "Drifted");
        assert_eq!(json["kind"], "Terraform");
        assert_eq!(json["planId"], "plan-fix");
    }

    #[test]
    fn filters_parse_the_query_and_an_unknown_value_is_an_error() {
        let f = Filters::parse(Some("namespace=team-a&kind=terraform&state=drifted")).unwrap();
        assert_eq!(f, Filters { namespace: Some("team-a".into()), kind: Some(Kind::Terraform), state: Some(State::Drifted) });
        let f = Filters::parse(Some("namespace=&kind=&state=")).unwrap();
        assert_eq!(f, Filters::default(), "empty selects mean any");
        assert!(Filters::parse(Some("kind=pod")).unwrap_err().contains("\"pod\""));
        assert!(Filters::parse(Some("state=Fine")).unwrap_err().contains("PlanPending"));
        let row = object(ObjectStatus { drift: Some(drift(true)), ..Default::default() }).row();
        assert!(f.matches(&row));
        assert!(!Filters { namespace: Some("other".into()), ..Default::default() }.matches(&row));
        assert!(!Filters { state: Some(State::Ready), ..Default::default() }.matches(&row));
    }
}
