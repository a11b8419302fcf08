//! Provider, Alert and Receiver: who hears about events, and who may wake a source. Field
//! names follow Flux's `notification.toolkit.fluxcd.io/v1beta3`, so Flux users move their
//! objects over by changing the apiVersion.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Duration, LocalObjectReference, status::Conditions};

/// Where alerts go: a chat service, a generic webhook, or commit statuses.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "NotificationStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// `generic`, `generic-hmac`, `slack`, `msteams`, `discord` or `github`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The webhook URL (chat services, generic) or the repository URL (`github`). A
    /// `secretRef` with an `address` key overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Chat channel, where the service takes one from the payload (Slack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The bot name the service shows (Slack, Discord).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret with `address` (overrides spec.address), `token` (HMAC key for
    /// `generic-hmac`, API token for `github`), and `headers` (YAML map sent as HTTP headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Secret with `ca.crt`: the CA that signs the endpoint's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Timeout of one delivery attempt (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub suspend: bool,
}

/// Which events go to which Provider.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Alert",
    namespaced,
    status = "NotificationStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// A Provider in the Alert's namespace.
    pub provider_ref: LocalObjectReference,
    /// `info` sends every event, `error` only errors (default `info`, as Flux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_severity: Option<String>,
    /// The objects whose events are sent.
    pub event_sources: Vec<EventSourceReference>,
    /// Regular expressions; when set, an event's message must match one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    /// Regular expressions; an event whose message matches one is not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    /// Added to every event's metadata (e.g. `env: production`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,
    /// A line put in front of every message (deprecated in Flux in favour of eventMetadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default)]
    pub suspend: bool,
}

/// An object (or, with `*` or `matchLabels`, a set of objects) whose events an Alert sends,
/// or whose reconcile a Receiver requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// A kind driftless reconciles: `Terraform`, `Kustomization`, a source kind.
    pub kind: String,
    /// A name, or `*` for every object of the kind.
    pub name: String,
    /// Defaults to the Alert's (or Receiver's) namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// With `name: *`: only objects carrying these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// A webhook that requests an immediate reconcile of sources (a push, a new image).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Receiver",
    namespaced,
    status = "ReceiverStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.webhookPath"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// `generic`, `generic-hmac`, `github` or `gitlab`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Event types that trigger (GitHub's `X-GitHub-Event`, GitLab's `X-Gitlab-Event`); empty
    /// accepts all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The sources to reconcile (`name: *` with `matchLabels` selects several).
    pub resources: Vec<EventSourceReference>,
    /// Secret with `token`: the shared secret, and part of the webhook path.
    pub secret_ref: LocalObjectReference,
    #[serde(default)]
    pub suspend: bool,
}

/// Status of a Provider or an Alert: Ready says whether it can deliver, and why not.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// When the last event was delivered (Provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
}

impl Conditions for NotificationStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// `/hook/<sha256 of token + name + namespace>`: where the service posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
}

impl Conditions for ReceiverStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

/// Provider types driftless delivers to.
pub const PROVIDER_TYPES: &[&str] = &["generic", "generic-hmac", "slack", "msteams", "discord", "github"];
/// Receiver types driftless verifies.
pub const RECEIVER_TYPES: &[&str] = &["generic", "generic-hmac", "github", "gitlab"];
