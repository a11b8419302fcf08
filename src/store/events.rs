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

#[derive(Clone, Debug)]
pub struct EventLog {
    path: PathBuf,
}

impl EventLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Appends one line; an event that cannot be written is logged, never fatal to a reconcile.
    pub fn emit(&self, event: &Event) {
        tracing::info!(
            kind = %event.kind, namespace = %event.namespace, name = %event.name,
            reason = %event.reason, "{}", event.message
        );
        let line = match serde_json::to_string(event) {
            Ok(l) => l,
            Err(e) => return tracing::warn!("cannot encode event: {e}"),
        };
        let result = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = result {
            tracing::warn!("cannot append to {}: {e}", self.path.display());
        }
    }

    pub fn read(&self) -> Vec<Event> {
        std::fs::read_to_string(&self.path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}
