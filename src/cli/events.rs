//! `events [KIND [NAME]]`: what the reconcilers reported. A local store keeps them in its
//! event log; on a cluster they are Kubernetes Events (events.k8s.io) regarding driftless
//! objects, read back into the same [`Event`] so both print alike.

use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::Api;

use super::cluster::ClusterError;
use super::objects::print_table;
use super::target::Target;
use super::{Result, kind_of};
use crate::store::{Event, Severity};

/// The API group of the kinds driftless reconciles (events about anything else are not ours).
const GROUP: &str = "driftless.dev/";

/// Prints the events of `namespace` (`None`: all), optionally of one kind or object; with
/// `watch`, then each new one (read every second) until the process is interrupted.
pub async fn show<T: Target>(target: &T, kind: Option<&str>, name: Option<&str>, namespace: Option<&str>, watch: bool) -> Result<()> {
    use std::io::Write as _;
    let kind = kind.map(kind_of).transpose()?;
    let rows = async || -> Result<Vec<Vec<String>>> {
        Ok(target
            .events(namespace)
            .await?
            .into_iter()
            .filter(|e| kind.is_none_or(|k| e.kind == k.as_str()) && name.is_none_or(|n| e.name == n))
            .map(|e| {
                let object = format!("{}/{}", e.kind.to_lowercase(), e.name);
                let mut row = vec![e.time, object, e.reason, e.message];
                if namespace.is_none() {
                    row.insert(1, e.namespace);
                }
                row
            })
            .collect())
    };
    let header: &[&str] =
        if namespace.is_none() { &["TIME", "NAMESPACE", "OBJECT", "REASON", "MESSAGE"] } else { &["TIME", "OBJECT", "REASON", "MESSAGE"] };
    let first = rows().await?;
    print_table(header, &first);
    if !watch {
        return Ok(());
    }
    let mut seen: std::collections::HashSet<Vec<String>> = first.into_iter().collect();
    loop {
        let _ = std::io::stdout().flush();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for row in rows().await? {
            if seen.insert(row.clone()) {
                println!("{}", row.join("   "));
            }
        }
    }
}

/// The cluster's events about driftless objects, oldest first.
///
/// # Errors
/// When the events cannot be listed (e.g. no right to list events.k8s.io Events).
pub async fn on_cluster(client: &kube::Client, namespace: Option<&str>) -> Result<Vec<Event>> {
    let api: Api<KubeEvent> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let listed = api.list(&Default::default()).await.map_err(|e| {
        ClusterError::api(format!("listing events in {}", namespace.map_or("every namespace".to_string(), |n| format!("namespace {n}"))), e)
    })?;
    let mut events: Vec<(Option<jiff::Timestamp>, Event)> = listed.items.into_iter().filter_map(from_kube).collect();
    events.sort_by_key(|(at, _)| *at);
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

/// One Kubernetes Event as driftless's own, with the time it was last seen; `None` for
/// events about objects that are not driftless's.
fn from_kube(event: KubeEvent) -> Option<(Option<jiff::Timestamp>, Event)> {
    let regarding = event.regarding?;
    if !regarding.api_version.as_deref().is_some_and(|v| v.starts_with(GROUP)) {
        return None;
    }
    // A repeated event is one object with a series: its last occurrence is what matters.
    let at = event
        .series
        .map(|s| s.last_observed_time.0)
        .or(event.event_time.map(|t| t.0))
        .or(event.deprecated_last_timestamp.map(|t| t.0))
        .or(event.metadata.creation_timestamp.map(|t| t.0));
    let shown = Event {
        time: at.map(|t| t.to_string()).unwrap_or_default(),
        kind: regarding.kind.unwrap_or_default(),
        namespace: regarding.namespace.or(event.metadata.namespace).unwrap_or_default(),
        name: regarding.name.unwrap_or_default(),
        reason: event.reason.unwrap_or_default(),
        severity: if event.type_.as_deref() == Some("Warning") { Severity::Error } else { Severity::Info },
        message: event.note.unwrap_or_default(),
        revision: None,
        plan_id: None,
        drift_id: None,
    };
    Some((at, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kube_event(api_version: &str, kind: &str) -> KubeEvent {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "app.1", "namespace": "team" },
            "eventTime": "2025-01-02T03:04:05.000000Z",
            "regarding": { "apiVersion": api_version, "kind": kind, "name": "app", "namespace": "team" },
            "reason": "PlanPending", "note": "plan plan-abc waits for approval", "type": "Normal",
            "series": { "count": 3, "lastObservedTime": "2025-01-02T04:00:00.000000Z" }
        }))
        .unwrap()
    }

    #[test]
    fn an_event_about_a_driftless_object_reads_as_its_own_with_its_last_occurrence() {
        let (_, e) = from_kube(kube_event("driftless.dev/v1alpha1", "Terraform")).unwrap();
        assert_eq!((e.kind.as_str(), e.namespace.as_str(), e.name.as_str()), ("Terraform", "team", "app"));
        assert_eq!((e.reason.as_str(), e.severity), ("PlanPending", Severity::Info));
        assert_eq!(e.message, "plan plan-abc waits for approval");
        assert!(e.time.starts_with("2025-01-02T04:00:00"), "{}", e.time);
    }

    #[test]
    fn events_about_other_objects_are_left_out() {
        assert!(from_kube(kube_event("v1", "Pod")).is_none());
    }
}
