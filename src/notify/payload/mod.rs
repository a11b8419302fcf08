//! What one event looks like to one Provider: the URL, headers and body of the request for
//! each service, built without I/O.
//!
//! # Guarantees
//! - [`prepare`] is pure: no network, no clock, no randomness. The same endpoint and
//!   notification give the same bytes, so an HMAC signature covers exactly what is sent.
//! - A webhook URL is a credential (whoever knows a Slack, Teams or Discord webhook URL
//!   can post to it). `Debug` of [`Endpoint`] and [`OutgoingRequest`], and every error of
//!   this module, show an address only as `scheme://host[:port]`, and never show the token
//!   or a header value.
//!
//! # Shapes
//! - `generic` / `generic-hmac`: Flux's event JSON (`involvedObject`, `severity`,
//!   `timestamp`, `message`, `reason`, `metadata`, `reportingController`), so receivers
//!   written for Flux read it unchanged; `generic-hmac` adds
//!   `X-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the token>`.
//! - `slack`: a message with one attachment (colour `good`/`danger`); a token, when set,
//!   is sent as a bearer token (for `chat.postMessage`).
//! - `msteams`: an Adaptive Card in a `message`, what Teams workflow webhooks take.
//! - `discord`: Discord's own webhook JSON (`content`, `username`, `embeds`), inside
//!   Discord's length limits, with mentions disabled.
//! - `github`: a commit status on the commit of the event's revision.
//!
//! # Layout
//! This file holds what every Provider type shares: the types, [`prepare`] (which adds the
//! common headers and the Secret's extra headers), and the address, token and encoding
//! checks. Each Provider type's URL, body and own headers are built in its file: `generic`
//! (both generic types), `slack`, `msteams`, `discord`, `github`.

mod discord;
mod generic;
mod github;
mod msteams;
mod slack;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::api::PROVIDER_TYPES;
use crate::store::{Event, Severity};

pub use github::commit_sha;

/// The `reportingController` of generic payloads, the default chat user name, and the
/// prefix of GitHub status contexts.
pub const REPORTING_CONTROLLER: &str = "driftless";
/// The timeout of one delivery attempt when the Provider sets none (as Flux).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
const REDACTED: &str = "<redacted>";

/// The services driftless delivers to; `FromStr` takes the Provider's `spec.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Generic,
    GenericHmac,
    Slack,
    MsTeams,
    Discord,
    GitHub,
}

impl ProviderKind {
    /// The `spec.type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Generic => "generic",
            ProviderKind::GenericHmac => "generic-hmac",
            ProviderKind::Slack => "slack",
            ProviderKind::MsTeams => "msteams",
            ProviderKind::Discord => "discord",
            ProviderKind::GitHub => "github",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Provider `spec.type` driftless does not deliver to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Provider type `{given}`; expected one of: {}", PROVIDER_TYPES.join(", "))]
pub struct UnknownProviderType {
    pub given: String,
}

impl FromStr for ProviderKind {
    type Err = UnknownProviderType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "generic" => ProviderKind::Generic,
            "generic-hmac" => ProviderKind::GenericHmac,
            "slack" => ProviderKind::Slack,
            "msteams" => ProviderKind::MsTeams,
            "discord" => ProviderKind::Discord,
            "github" => ProviderKind::GitHub,
            _ => return Err(UnknownProviderType { given: s.to_string() }),
        })
    }
}

/// One Provider, resolved: its spec with the Secret's `address`, `token`, `headers` and the
/// `ca.crt` of `certSecretRef` already read.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub kind: ProviderKind,
    /// The webhook URL, or the repository URL for `github`. A secret for chat services.
    pub address: String,
    /// Slack channel.
    pub channel: Option<String>,
    /// The name the chat service shows (Slack, Discord); `driftless` when unset.
    pub username: Option<String>,
    /// HMAC key (`generic-hmac`), API token (`github`), bot token (`slack`).
    pub token: Option<String>,
    /// Extra HTTP headers (the Secret's `headers` key); they replace same-named defaults
    /// (`Content-Type`, `User-Agent`) but never the signature or the GitHub token.
    pub headers: BTreeMap<String, String>,
    /// A PEM CA trusted besides the system's roots.
    pub ca_pem: Option<String>,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Endpoint {
    /// An endpoint with no channel, user name, token, headers or CA, and the default timeout.
    pub fn new(kind: ProviderKind, address: impl Into<String>) -> Self {
        Self {
            kind,
            address: address.into(),
            channel: None,
            username: None,
            token: None,
            headers: BTreeMap::new(),
            ca_pem: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `scheme://host[:port]` of the address: the only part of it safe to show.
    pub fn origin(&self) -> String {
        origin(&self.address)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self.headers.keys().map(|k| (k.as_str(), REDACTED)).collect();
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("address", &redacted_url(&self.address))
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("headers", &headers)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| format!("<{} bytes>", pem.len())))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One event on its way to one Provider, with what the Alert adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub event: Event,
    /// The Alert's `eventMetadata`; the event's own keys (`revision`, `planId`, `driftId`,
    /// `reviewUrl`, `summary`) win over it.
    pub metadata: BTreeMap<String, String>,
    /// The Alert's `summary`, sent as the `summary` metadata key.
    pub summary: Option<String>,
    /// Where a person reviews the object (plan, drift): linked from chat messages and the
    /// GitHub status.
    pub review_url: Option<String>,
}

impl Notification {
    pub fn new(event: Event) -> Self {
        Self { event, metadata: BTreeMap::new(), summary: None, review_url: None }
    }

    /// `Kind/namespace/name` of the event's object.
    pub fn object(&self) -> String {
        format!("{}/{}/{}", self.event.kind, self.event.namespace, self.event.name)
    }

    /// The metadata every payload carries: the Alert's `eventMetadata`, then `summary`,
    /// `revision`, `planId`, `driftId` and `reviewUrl` over it.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut metadata = self.metadata.clone();
        for (key, value) in self.own_metadata() {
            metadata.insert(key.to_string(), value.to_string());
        }
        metadata
    }

    fn own_metadata(&self) -> Vec<(&'static str, &str)> {
        let e = &self.event;
        [
            ("summary", self.summary.as_deref()),
            ("revision", e.revision.as_deref()),
            ("planId", e.plan_id.as_deref()),
            ("driftId", e.drift_id.as_deref()),
            ("reviewUrl", self.review_url.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// What chat messages list as fields: the summary first, then revision, plan and drift
    /// ids, then the Alert's metadata by key. The review URL is a link, not a field.
    fn facts(&self) -> Vec<(String, String)> {
        let own = self.own_metadata();
        let mut facts: Vec<(String, String)> =
            own.iter().filter(|(k, _)| *k != "reviewUrl").map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (key, value) in &self.metadata {
            if !own.iter().any(|(k, _)| k == key) {
                facts.push((key.clone(), value.clone()));
            }
        }
        facts
    }

    fn is_error(&self) -> bool {
        self.event.severity == Severity::Error
    }
}

/// An HTTP POST, ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutgoingRequest {
    /// The value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), REDACTED)).collect();
        f.debug_struct("OutgoingRequest")
            .field("url", &redacted_url(&self.url))
            .field("headers", &headers)
            .field("body", &format!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// What to do with one notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    Send(OutgoingRequest),
    /// Nothing to send, and why (e.g. a `github` event without a commit revision).
    Skip(String),
}

/// A Provider that cannot deliver as configured. Never contains the address beyond its
/// origin, the token or a header value.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "the {kind} Provider's address is not a usable URL ({problem}); check spec.address, or the `address` key of the Secret named by spec.secretRef"
    )]
    InvalidAddress { kind: ProviderKind, problem: &'static str },
    #[error("a {kind} Provider needs {what}: set the `token` key in the Secret named by the Provider's spec.secretRef")]
    MissingToken { kind: ProviderKind, what: &'static str },
    #[error(
        "the github Provider's address must be the repository URL, like https://github.com/<owner>/<repo> ({problem}); check spec.address, or the `address` key of the Secret named by spec.secretRef"
    )]
    GitHubRepository { problem: &'static str },
    #[error("the header {name} from the `headers` key of the Provider's Secret is not valid HTTP ({problem})")]
    InvalidHeader { name: String, problem: &'static str },
    #[error("cannot encode the {kind} payload: {source}")]
    Encode { kind: ProviderKind, source: serde_json::Error },
}

/// A Provider type's share of a request, as its file builds it.
enum Draft {
    /// Where to send, the body, and the headers set after the Secret's extra headers, so
    /// those cannot replace them (a signature, a token).
    Send { url: String, body: Vec<u8>, auth: Vec<(String, String)> },
    /// Nothing to send, and why.
    Skip(String),
}

/// The request that delivers `n` to `endpoint`, or why nothing is sent.
///
/// # Errors
/// A [`PayloadError`] when the Provider cannot work as configured (bad address, missing
/// token, invalid header), whatever the event; an event a Provider has nothing to say about
/// is `Ok(Prepared::Skip)`.
pub fn prepare(endpoint: &Endpoint, n: &Notification) -> Result<Prepared, PayloadError> {
    let draft = match endpoint.kind {
        ProviderKind::Generic | ProviderKind::GenericHmac => generic::draft(endpoint, n)?,
        ProviderKind::Slack => slack::draft(endpoint, n)?,
        ProviderKind::MsTeams => msteams::draft(endpoint, n)?,
        ProviderKind::Discord => discord::draft(endpoint, n)?,
        ProviderKind::GitHub => github::draft(endpoint, n)?,
    };
    let (url, body, mut auth) = match draft {
        Draft::Send { url, body, auth } => (url, body, auth),
        Draft::Skip(why) => return Ok(Prepared::Skip(why)),
    };

    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("User-Agent".to_string(), format!("{REPORTING_CONTROLLER}/{}", env!("CARGO_PKG_VERSION"))),
    ];
    for (name, value) in &endpoint.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(PayloadError::InvalidHeader { name: "(an invalid name)".into(), problem: "the name is not an HTTP token" });
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(PayloadError::InvalidHeader { name: name.clone(), problem: "the value has a character HTTP does not allow" });
        }
        set_header(&mut headers, name, value);
    }
    for (name, value) in auth.drain(..) {
        set_header(&mut headers, &name, &value);
    }
    Ok(Prepared::Send(OutgoingRequest { url, headers, body }))
}

/// `scheme://host[:port]` of a URL, or a placeholder when it is none: the only part of an
/// address errors and logs may show.
pub fn origin(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            },
            _ => "<address without scheme or host>".to_string(),
        },
        Err(_) => "<unparsable address>".to_string(),
    }
}

fn redacted_url(url: &str) -> String {
    format!("{}/{REDACTED}", origin(url))
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_string(), value.to_string()));
}

fn token<'a>(endpoint: &'a Endpoint, what: &'static str) -> Result<&'a str, PayloadError> {
    match endpoint.token.as_deref() {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(PayloadError::MissingToken { kind: endpoint.kind, what }),
    }
}

/// A webhook address must be a plain http(s) URL with a host and no user info.
fn check_address(kind: ProviderKind, address: &str) -> Result<(), PayloadError> {
    let invalid = |problem| Err(PayloadError::InvalidAddress { kind, problem });
    if address.is_empty() {
        return invalid("it is empty");
    }
    let Ok(uri) = address.parse::<Uri>() else {
        return invalid("it does not parse as a URL");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return invalid("its scheme must be http or https");
    }
    let Some(authority) = uri.authority() else {
        return invalid("it has no host");
    };
    if authority.as_str().contains('@') {
        return invalid("it carries credentials before the host; send them in the Secret's `headers` instead");
    }
    if authority.host().is_empty() {
        return invalid("it has no host");
    }
    Ok(())
}

fn encode(kind: ProviderKind, value: &Value) -> Result<Vec<u8>, PayloadError> {
    serde_json::to_vec(value).map_err(|source| PayloadError::Encode { kind, source })
}

/// The name a chat service shows as the sender (Slack, Discord).
fn username(endpoint: &Endpoint) -> &str {
    endpoint.username.as_deref().filter(|u| !u.is_empty()).unwrap_or(REPORTING_CONTROLLER)
}

/// `s` cut to at most `max` characters, the last one an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The tests of the shared types, and the helpers every Provider type's tests use.
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    pub(super) fn event(severity: Severity, reason: &str, revision: Option<&str>) -> Event {
        Event {
            time: "2025-01-02T03:04:05Z".into(),
            kind: "Terraform".into(),
            namespace: "infra".into(),
            name: "network".into(),
            reason: reason.into(),
            severity,
            message: "plan plan-0123abc-aaaaaaaaaa: 1 to add <b> & 0 to destroy".into(),
            revision: revision.map(str::to_string),
            plan_id: Some("plan-0123abc-aaaaaaaaaa".into()),
            drift_id: None,
        }
    }

    pub(super) fn send(endpoint: &Endpoint, n: &Notification) -> OutgoingRequest {
        match prepare(endpoint, n).unwrap() {
            Prepared::Send(r) => r,
            Prepared::Skip(why) => panic!("skipped: {why}"),
        }
    }

    pub(super) fn body(r: &OutgoingRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn every_provider_type_parses_and_unknown_ones_name_the_valid_types() {
        for t in PROVIDER_TYPES {
            assert_eq!(t.parse::<ProviderKind>().unwrap().as_str(), *t);
        }
        let err = "teams".parse::<ProviderKind>().unwrap_err().to_string();
        assert!(err.contains("`teams`") && err.contains("msteams") && err.contains("generic-hmac"), "{err}");
    }

    #[test]
    fn metadata_carries_the_alerts_keys_under_the_events_own() {
        let mut n = Notification::new(event(Severity::Info, "PlanApplied", Some("main@sha1:x")));
        n.metadata = BTreeMap::from([("env".into(), "prod".into()), ("revision".into(), "spoofed".into())]);
        n.summary = Some("network stack".into());
        n.review_url = Some("https://driftless.example/review".into());
        let m = n.metadata();
        assert_eq!(m["env"], "prod");
        assert_eq!(m["revision"], "main@sha1:x");
        assert_eq!(m["summary"], "network stack");
        assert_eq!(m["planId"], "plan-0123abc-aaaaaaaaaa");
        assert_eq!(m["reviewUrl"], "https://driftless.example/review");
        assert!(!m.contains_key("driftId"));
        let facts: Vec<String> = n.facts().into_iter().map(|(k, _)| k).collect();
        assert_eq!(facts, ["summary", "revision", "planId", "env"]);
    }

    #[test]
    fn debug_and_errors_never_show_the_secret_parts() {
        let mut endpoint = Endpoint::new(ProviderKind::Slack, "https://hooks.slack.com/services/T0/B0/hooksecret?sig=querysecret");
        endpoint.token = Some("tokensecret".into());
        endpoint.headers = BTreeMap::from([("X-Api-Key".into(), "headersecret".into())]);
        let r = send(&endpoint, &Notification::new(event(Severity::Info, "PlanApplied", None)));
        let shown = format!("{endpoint:?} {r:?}");
        for secret in ["hooksecret", "querysecret", "tokensecret", "headersecret", "/services"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("https://hooks.slack.com") && shown.contains("X-Api-Key"), "{shown}");

        endpoint.kind = ProviderKind::GenericHmac;
        endpoint.token = None;
        let err = prepare(&endpoint, &Notification::new(event(Severity::Info, "PlanApplied", None))).unwrap_err().to_string();
        assert!(err.contains("`token`") && err.contains("spec.secretRef") && !err.contains("hooksecret"), "{err}");

        endpoint.address = "https://user:pass@hooks.example/hooksecret".into();
        endpoint.token = Some("k".into());
        let err = prepare(&endpoint, &Notification::new(event(Severity::Info, "PlanApplied", None))).unwrap_err().to_string();
        assert!(!err.contains("pass") && !err.contains("hooksecret"), "{err}");
    }
}
