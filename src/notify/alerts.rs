//! Which Alerts an event goes to: pure rules over the Alert's spec, the event and the
//! object's labels, so they are tested without a store or a network.

use std::collections::BTreeMap;

use crate::api::{Alert, EventSourceReference};
use crate::store::{Event, Severity};

/// Why an Alert cannot be used as written (a condition on the Alert says it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("spec.eventSeverity: {0:?} is not `info` or `error`")]
    Severity(String),
    #[error("spec.{list}[{index}]: {pattern:?} is not a valid regular expression: {reason}")]
    Pattern { list: &'static str, index: usize, pattern: String, reason: String },
    #[error("spec.eventSources: at least one source is required (e.g. kind: Terraform, name: '*')")]
    NoSources,
    #[error("spec.{list}[{index}].kind: {kind:?} is not a kind driftless reconciles, so it would never match; use one of {known}")]
    UnknownKind { list: &'static str, index: usize, kind: String, known: String },
}

/// The first of `sources` (an Alert's `eventSources`, a Receiver's `resources`) naming a
/// kind driftless does not reconcile: such an entry would be accepted and never act (Flux's
/// HelmRelease, its image automation kinds, until driftless has them).
pub fn unknown_kind(list: &'static str, sources: &[EventSourceReference]) -> Result<(), AlertError> {
    use crate::api::Kind;
    match sources.iter().enumerate().find(|(_, s)| !Kind::from_api(&s.kind).is_some_and(Kind::is_reconciled)) {
        None => Ok(()),
        Some((index, s)) => Err(AlertError::UnknownKind { list, index, kind: s.kind.clone(), known: Kind::list(&Kind::RECONCILED) }),
    }
}

/// An Alert's rules, compiled once.
#[derive(Debug, Clone)]
pub struct AlertRules {
    namespace: String,
    errors_only: bool,
    sources: Vec<EventSourceReference>,
    include: Vec<regex::Regex>,
    exclude: Vec<regex::Regex>,
}

impl AlertRules {
    pub fn new(alert: &Alert) -> Result<Self, AlertError> {
        let errors_only = match alert.spec.event_severity.as_deref().unwrap_or("info") {
            "info" => false,
            "error" => true,
            other => return Err(AlertError::Severity(other.to_string())),
        };
        if alert.spec.event_sources.is_empty() {
            return Err(AlertError::NoSources);
        }
        unknown_kind("eventSources", &alert.spec.event_sources)?;
        let compile = |list: &'static str, patterns: &[String]| {
            patterns
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    regex::Regex::new(p).map_err(|e| AlertError::Pattern { list, index, pattern: p.clone(), reason: e.to_string() })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            namespace: alert.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            errors_only,
            sources: alert.spec.event_sources.clone(),
            include: compile("inclusionList", &alert.spec.inclusion_list)?,
            exclude: compile("exclusionList", &alert.spec.exclusion_list)?,
        })
    }

    /// Whether any source names the event's object by `*` with labels (the caller then
    /// fetches the object's labels).
    pub fn needs_labels(&self, event: &Event) -> bool {
        self.sources.iter().any(|s| self.source_could_match(s, event) && s.name == "*" && !s.match_labels.is_empty())
    }

    fn source_could_match(&self, s: &EventSourceReference, event: &Event) -> bool {
        s.kind == event.kind && s.namespace.as_deref().unwrap_or(&self.namespace) == event.namespace
    }

    /// Whether the event goes out through this Alert. `labels` are the object's (empty when
    /// unknown).
    pub fn matches(&self, event: &Event, labels: &BTreeMap<String, String>) -> bool {
        if self.errors_only && event.severity != Severity::Error {
            return false;
        }
        let source = self.sources.iter().any(|s| {
            self.source_could_match(s, event)
                && match s.name.as_str() {
                    "*" => s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)),
                    name => name == event.name,
                }
        });
        if !source {
            return false;
        }
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(&event.message)) {
            return false;
        }
        !self.exclude.iter().any(|r| r.is_match(&event.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AlertSpec, LocalObjectReference};

    fn alert(sources: Vec<EventSourceReference>) -> Alert {
        let mut a = Alert::new(
            "a",
            AlertSpec {
                provider_ref: LocalObjectReference { name: "p".into() },
                event_severity: None,
                event_sources: sources,
                inclusion_list: vec![],
                exclusion_list: vec![],
                event_metadata: BTreeMap::new(),
                summary: None,
                suspend: false,
            },
        );
        a.metadata.namespace = Some("team".into());
        a
    }

    fn source(kind: &str, name: &str) -> EventSourceReference {
        EventSourceReference { kind: kind.into(), name: name.into(), ..Default::default() }
    }

    fn event(kind: &str, name: &str, severity: Severity, message: &str) -> Event {
        Event {
            time: "t".into(),
            kind: kind.into(),
            namespace: "team".into(),
            name: name.into(),
            reason: "DriftDetected".into(),
            severity,
            message: message.into(),
            revision: None,
            plan_id: None,
            drift_id: None,
        }
    }

    #[test]
    fn kind_name_namespace_and_wildcards() {
        let rules = AlertRules::new(&alert(vec![source("Terraform", "net"), source("Kustomization", "*")])).unwrap();
        let none = BTreeMap::new();
        assert!(rules.matches(&event("Terraform", "net", Severity::Info, "m"), &none));
        assert!(!rules.matches(&event("Terraform", "db", Severity::Info, "m"), &none));
        assert!(rules.matches(&event("Kustomization", "anything", Severity::Info, "m"), &none));
        let mut other_ns = event("Terraform", "net", Severity::Info, "m");
        other_ns.namespace = "elsewhere".into();
        assert!(!rules.matches(&other_ns, &none), "sources default to the Alert's namespace");
    }

    #[test]
    fn match_labels_severity_and_message_lists() {
        let mut s = source("Terraform", "*");
        s.match_labels.insert("tier".into(), "prod".into());
        let mut a = alert(vec![s]);
        a.spec.event_severity = Some("error".into());
        a.spec.exclusion_list = vec!["^ignore me".into()];
        let rules = AlertRules::new(&a).unwrap();
        let prod: BTreeMap<String, String> = [("tier".to_string(), "prod".to_string())].into();
        assert!(rules.needs_labels(&event("Terraform", "x", Severity::Error, "m")));
        assert!(rules.matches(&event("Terraform", "x", Severity::Error, "drift"), &prod));
        assert!(!rules.matches(&event("Terraform", "x", Severity::Error, "drift"), &BTreeMap::new()));
        assert!(!rules.matches(&event("Terraform", "x", Severity::Info, "drift"), &prod), "errors only");
        assert!(!rules.matches(&event("Terraform", "x", Severity::Error, "ignore me please"), &prod));
        a.spec.inclusion_list = vec!["drift".into()];
        let rules = AlertRules::new(&a).unwrap();
        assert!(!rules.matches(&event("Terraform", "x", Severity::Error, "plan failed"), &prod));
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let mut a = alert(vec![source("Terraform", "*")]);
        a.spec.inclusion_list = vec!["(".into()];
        let e = AlertRules::new(&a).unwrap_err().to_string();
        assert!(e.starts_with("spec.inclusionList[0]"), "{e}");
        a.spec.inclusion_list.clear();
        a.spec.event_severity = Some("warning".into());
        assert!(AlertRules::new(&a).unwrap_err().to_string().contains("eventSeverity"));
    }

    #[test]
    fn a_kind_driftless_does_not_reconcile_is_refused_not_silently_unmatched() {
        for kind in ["HelmChart", "OCIRepository", "HelmRepository", "Terraform"] {
            assert!(AlertRules::new(&alert(vec![source(kind, "*")])).is_ok(), "{kind}");
        }
        let e = AlertRules::new(&alert(vec![source("Terraform", "*"), source("HelmRelease", "*")])).unwrap_err().to_string();
        assert!(e.starts_with("spec.eventSources[1].kind: \"HelmRelease\"") && e.contains("HelmChart"), "{e}");
        assert!(unknown_kind("resources", &[source("ImagePolicy", "x")]).unwrap_err().to_string().starts_with("spec.resources[0].kind"));
    }
}
