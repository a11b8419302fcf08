//! The one event type every reconciler emits, and the local store's append-only event log.
//! Alerts and the review page read these events; nothing keeps a second copy.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Error,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub severity: Severity,
    /// Never holds a sensitive value: messages are built from names, ids and counts.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_id: Option<String>,
}

/// What a reconciler says about its object: becomes one [`Event`] (and history entry) once
/// the object, time and revision are added (see [`crate::context::Context::announce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub reason: &'static str,
    pub severity: Severity,
    pub message: String,
    pub plan_id: Option<String>,
    pub drift_id: Option<String>,
}

impl Event {
    /// The object's history entry for this event; `by` names who approved an applied plan.
    pub fn history_entry(&self, by: Option<String>) -> crate::api::HistoryEntry {
        crate::api::HistoryEntry {
            time: self.time.clone(),
            action: self.reason.clone(),
            plan_id: self.plan_id.clone(),
            drift_id: self.drift_id.clone(),
            by,
            message: self.message.clone(),
        }
    }
}

/// The longest note the events API accepts.
const NOTE_LIMIT: usize = 1000;

/// Hears every event besides the sink: the notifier, which turns them into alerts. Handed
/// to the [`EventLog`] from above, so the store imports nothing of who listens.
pub trait EventTap: Send + Sync + std::fmt::Debug {
    fn send(&self, event: &Event);
    /// Waits (at most `limit`) until what was sent so far has been handled.
    fn flush(&self, limit: std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// Where events go: the local store's log file, or Kubernetes Events on a cluster.
#[derive(Clone, Debug)]
pub struct EventLog {
    sink: Sink,
    /// Alerts: every event also goes to the notifier, when one runs.
    tap: Option<std::sync::Arc<dyn EventTap>>,
}

#[derive(Clone, Debug)]
enum Sink {
    File(PathBuf),
    /// Published by a background task, so a reconcile never waits on (or fails with) the
    /// events API.
    Kubernetes(tokio::sync::mpsc::UnboundedSender<Event>),
}

impl EventLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { sink: Sink::File(path.into()), tap: None }
    }

    /// Events published as Kubernetes Events (events.k8s.io) regarding the object, reported
    /// by `controller` from `instance` (the pod name). With `review_url` (the review page's
    /// external URL) each note ends with the object's review link, so `kubectl events`
    /// leads where an alert does.
    pub fn kubernetes(client: kube::Client, controller: &str, instance: &str, review_url: Option<String>) -> Self {
        use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let reporter = Reporter { controller: controller.to_string(), instance: Some(instance.to_string()) };
        let recorder = Recorder::new(client, reporter);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let reference = k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some(api_version_of(&event.kind).to_string()),
                    kind: Some(event.kind.clone()),
                    namespace: Some(event.namespace.clone()),
                    name: Some(event.name.clone()),
                    ..Default::default()
                };
                let mut note = event.message.clone();
                if let Some(id) = &event.plan_id
                    && !note.contains(id.as_str())
                {
                    note.push_str(&format!(" (plan {id})"));
                }
                let link = review_url
                    .as_deref()
                    .map(|base| format!("; review: {}", crate::api::review_link(base, &event.kind, &event.namespace, &event.name)));
                // The API refuses notes over 1 kB; the message gives way, not the link.
                let room = NOTE_LIMIT.saturating_sub(link.as_ref().map_or(0, String::len));
                if note.len() > room {
                    let cut = (0..=room).rev().find(|i| note.is_char_boundary(*i)).unwrap_or(0);
                    note.truncate(cut);
                }
                note.push_str(link.as_deref().unwrap_or_default());
                let kube_event = KubeEvent {
                    type_: match event.severity {
                        Severity::Info => EventType::Normal,
                        Severity::Error => EventType::Warning,
                    },
                    reason: event.reason.clone(),
                    note: Some(note),
                    action: event.reason.clone(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&kube_event, &reference).await {
                    tracing::warn!(kind = %event.kind, name = %event.name, "cannot publish event {}: {}", event.reason, crate::store::kube::describe(&e));
                }
            }
        });
        Self { sink: Sink::Kubernetes(tx), tap: None }
    }

    /// Sends every event to `tap` too (the notifier, for Alerts).
    pub fn with_tap(mut self, tap: std::sync::Arc<dyn EventTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Waits (at most `limit`) for the alerts of the events emitted so far to be delivered;
    /// a short-lived command calls it before it exits.
    pub async fn flush(&self, limit: std::time::Duration) {
        if let Some(tap) = &self.tap {
            tap.flush(limit).await;
        }
    }

    /// Records one event; an event that cannot be written is logged, never fatal to a reconcile.
    pub fn emit(&self, event: &Event) {
        tracing::info!(
            kind = %event.kind, namespace = %event.namespace, name = %event.name,
            reason = %event.reason, "{}", event.message
        );
        if let Some(tap) = &self.tap {
            tap.send(event);
        }
        let path = match &self.sink {
            Sink::File(path) => path,
            Sink::Kubernetes(tx) => {
                let _ = tx.send(event.clone());
                return;
            }
        };
        let line = match serde_json::to_string(event) {
            Ok(l) => l,
            Err(e) => return tracing::warn!("cannot encode event: {e}"),
        };
        let result = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = result {
            tracing::warn!("cannot append to {}: {e}", path.display());
        }
    }

    /// The local log's events (a cluster's are read from the events API).
    pub fn read(&self) -> Vec<Event> {
        let Sink::File(path) = &self.sink else { return Vec::new() };
        std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// The apiVersion of a kind driftless emits events about (its own kinds; core ones are `v1`).
fn api_version_of(kind: &str) -> &'static str {
    match crate::api::Kind::from_api(kind) {
        Some(_) => "driftless.dev/v1alpha1",
        None => "v1",
    }
}
