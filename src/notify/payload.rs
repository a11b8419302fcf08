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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::{GROUP, PROVIDER_TYPES, VERSION};
use crate::store::{Event, Severity};

/// The `reportingController` of generic payloads, the default chat user name, and the
/// prefix of GitHub status contexts.
pub const REPORTING_CONTROLLER: &str = "driftless";
/// The timeout of one delivery attempt when the Provider sets none (as Flux).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// GitHub refuses longer commit status descriptions.
const GITHUB_DESCRIPTION_LIMIT: usize = 140;
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

/// The request that delivers `n` to `endpoint`, or why nothing is sent.
///
/// # Errors
/// A [`PayloadError`] when the Provider cannot work as configured (bad address, missing
/// token, invalid header), whatever the event; an event a Provider has nothing to say about
/// is `Ok(Prepared::Skip)`.
pub fn prepare(endpoint: &Endpoint, n: &Notification) -> Result<Prepared, PayloadError> {
    let kind = endpoint.kind;
    let (url, body, mut auth) = match kind {
        ProviderKind::Generic | ProviderKind::GenericHmac => {
            check_address(kind, &endpoint.address)?;
            let body = encode(kind, &generic(n))?;
            let mut auth = Vec::new();
            if kind == ProviderKind::GenericHmac {
                let key = token(endpoint, "the HMAC key that signs each request")?;
                auth.push(("X-Signature".to_string(), format!("sha256={}", sign(key.as_bytes(), &body))));
            }
            (endpoint.address.clone(), body, auth)
        }
        ProviderKind::Slack => {
            check_address(kind, &endpoint.address)?;
            let auth =
                endpoint.token.iter().filter(|t| !t.is_empty()).map(|t| ("Authorization".to_string(), format!("Bearer {t}"))).collect();
            (endpoint.address.clone(), encode(kind, &slack(endpoint, n))?, auth)
        }
        ProviderKind::MsTeams => {
            check_address(kind, &endpoint.address)?;
            (endpoint.address.clone(), encode(kind, &teams(n))?, Vec::new())
        }
        ProviderKind::Discord => {
            check_address(kind, &endpoint.address)?;
            (endpoint.address.clone(), encode(kind, &discord(endpoint, n))?, Vec::new())
        }
        ProviderKind::GitHub => {
            let token = token(endpoint, "an API token that may write commit statuses")?;
            let repository = github_repository(&endpoint.address)?;
            let Some(sha) = n.event.revision.as_deref().and_then(commit_sha) else {
                return Ok(Prepared::Skip(format!(
                    "{} has no Git commit revision ({}); a GitHub commit status needs one",
                    n.object(),
                    n.event.revision.as_deref().unwrap_or("none")
                )));
            };
            let url = format!("{}/repos/{}/{}/statuses/{sha}", repository.api, repository.owner, repository.repo);
            let auth = vec![
                ("Authorization".to_string(), format!("Bearer {token}")),
                ("Accept".to_string(), "application/vnd.github+json".to_string()),
                ("X-GitHub-Api-Version".to_string(), "2022-11-28".to_string()),
            ];
            (url, encode(kind, &github_status(n))?, auth)
        }
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

/// Lower-case hex HMAC-SHA256 of `body` keyed with `key`.
fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn generic(n: &Notification) -> Value {
    let e = &n.event;
    json!({
        "involvedObject": {
            "kind": e.kind,
            "namespace": e.namespace,
            "name": e.name,
            "apiVersion": format!("{GROUP}/{VERSION}"),
        },
        "severity": severity(e.severity),
        "timestamp": e.time,
        "message": e.message,
        "reason": e.reason,
        "metadata": n.metadata(),
        "reportingController": REPORTING_CONTROLLER,
    })
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Error => "error",
    }
}

fn username(endpoint: &Endpoint) -> &str {
    endpoint.username.as_deref().filter(|u| !u.is_empty()).unwrap_or(REPORTING_CONTROLLER)
}

/// Slack reads `&`, `<` and `>` as control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn slack(endpoint: &Endpoint, n: &Notification) -> Value {
    let e = &n.event;
    let object = n.object();
    let first_line = e.message.lines().next().unwrap_or_default();
    let fields: Vec<Value> =
        n.facts().iter().map(|(k, v)| json!({ "title": k, "value": slack_escape(v), "short": v.len() <= 40 })).collect();
    let mut attachment = json!({
        "fallback": slack_escape(&format!("{object}: {} {first_line}", e.reason)),
        "color": if n.is_error() { "danger" } else { "good" },
        "author_name": object,
        "title": e.reason,
        "text": slack_escape(&e.message),
        "mrkdwn_in": ["text"],
        "fields": fields,
        "footer": REPORTING_CONTROLLER,
    });
    if let Some(url) = &n.review_url {
        attachment["title_link"] = json!(url);
    }
    let mut payload = json!({ "username": username(endpoint), "attachments": [attachment] });
    if let Some(channel) = endpoint.channel.as_deref().filter(|c| !c.is_empty()) {
        payload["channel"] = json!(channel);
    }
    payload
}

fn teams(n: &Notification) -> Value {
    let e = &n.event;
    let mut message = json!({ "type": "TextBlock", "text": e.message, "wrap": true });
    if n.is_error() {
        message["color"] = json!("Attention");
    }
    let facts: Vec<Value> = n.facts().iter().map(|(k, v)| json!({ "title": k, "value": v })).collect();
    let mut body = vec![
        json!({ "type": "TextBlock", "text": n.object(), "size": "Large", "weight": "Bolder", "wrap": true }),
        json!({ "type": "TextBlock", "text": e.reason, "weight": "Bolder", "spacing": "None", "isSubtle": true, "wrap": true }),
        message,
    ];
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        // The newest version Teams renders everywhere.
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": body,
    });
    if let Some(url) = &n.review_url {
        card["actions"] = json!([{ "type": "Action.OpenUrl", "title": "Review", "url": url }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Discord's limits on a webhook message (characters).
mod discord_limits {
    pub const CONTENT: usize = 2000;
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    /// Title, description, field names and values, footer and author together.
    pub const EMBED_TOTAL: usize = 6000;
}

fn discord(endpoint: &Endpoint, n: &Notification) -> Value {
    use discord_limits as limit;
    let e = &n.event;
    let title = truncate(&n.object(), limit::TITLE);
    let footer = truncate(REPORTING_CONTROLLER, limit::FOOTER);
    let mut budget = limit::EMBED_TOTAL.saturating_sub(title.chars().count() + footer.chars().count());
    // Discord refuses an empty field value.
    let mut fields = Vec::new();
    for (k, v) in n.facts().into_iter().take(limit::FIELDS) {
        let name = truncate(&k, limit::FIELD_NAME);
        let value = truncate(if v.is_empty() { "-" } else { &v }, limit::FIELD_VALUE);
        let size = name.chars().count() + value.chars().count();
        // Keep room for at least the start of the message.
        if size + 200 > budget {
            break;
        }
        budget -= size;
        fields.push(json!({ "name": name, "value": value, "inline": false }));
    }
    let description = truncate(&e.message, limit::DESCRIPTION.min(budget));
    let mut embed = json!({
        "title": title,
        "description": description,
        "color": if n.is_error() { 0xE74C3C } else { 0x2ECC71 },
        "fields": fields,
        "footer": { "text": footer },
    });
    if let Some(url) = &n.review_url {
        embed["url"] = json!(url);
    }
    if !e.time.is_empty() {
        embed["timestamp"] = json!(e.time);
    }
    json!({
        "username": username(endpoint),
        "content": truncate(&format!("{}: {}", e.reason, n.object()), limit::CONTENT),
        "embeds": [embed],
        // An event message is not a place to ping @everyone from.
        "allowed_mentions": { "parse": [] },
    })
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

struct GitHubRepository {
    /// `https://api.github.com`, or `<scheme>://<host>/api/v3` for GitHub Enterprise.
    api: String,
    owner: String,
    repo: String,
}

/// The API base and `owner/repo` of a repository URL: `https://host/owner/repo[.git]`,
/// `ssh://git@host/owner/repo.git` or `git@host:owner/repo.git` (SSH forms map to https).
fn github_repository(address: &str) -> Result<GitHubRepository, PayloadError> {
    let bad = |problem| PayloadError::GitHubRepository { problem };
    let address = address.trim();
    if address.is_empty() {
        return Err(bad("it is empty"));
    }
    let (scheme, host, path) = if let Some(rest) = address.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        let host = authority.split(':').next().unwrap_or_default();
        ("https".to_string(), host.to_string(), path.to_string())
    } else if !address.contains("://") {
        // scp-like: git@github.com:owner/repo.git
        let rest = address.split_once('@').map_or(address, |(_, r)| r);
        let (host, path) = rest.split_once(':').ok_or_else(|| bad("it is neither a URL nor user@host:owner/repo"))?;
        ("https".to_string(), host.to_string(), path.to_string())
    } else {
        let uri: Uri = address.parse().map_err(|_| bad("it does not parse as a URL"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => return Err(bad("its scheme must be https, http or ssh")),
        };
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it carries credentials before the host; put the token in the Secret"));
        }
        let host = match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_string(),
        };
        (scheme, host, uri.path().to_string())
    };
    if host.is_empty() {
        return Err(bad("it has no host"));
    }
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("its path is not exactly <owner>/<repo>"));
    };
    let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok(owner) || !name_ok(repo) {
        return Err(bad("owner and repository names are letters, digits, `-`, `_` and `.`"));
    }
    let api = if host.eq_ignore_ascii_case("github.com") || host.eq_ignore_ascii_case("www.github.com") {
        "https://api.github.com".to_string()
    } else {
        format!("{scheme}://{host}/api/v3")
    };
    Ok(GitHubRepository { api, owner: owner.to_string(), repo: repo.to_string() })
}

/// The commit of a Git revision: `<ref>@sha1:<sha>`, `sha1:<sha>`, a bare 40-hex sha, or
/// the older `<branch>/<sha>`. `None` for anything else (e.g. a Bucket's `sha256:` digest).
pub fn commit_sha(revision: &str) -> Option<String> {
    let revision = revision.trim();
    let candidate = match revision.rsplit_once('@') {
        Some((_, hash)) => hash.strip_prefix("sha1:")?,
        None => match revision.strip_prefix("sha1:") {
            Some(hash) => hash,
            None => revision.rsplit_once('/').map_or(revision, |(_, hash)| hash),
        },
    };
    (candidate.len() == 40 && candidate.chars().all(|c| c.is_ascii_hexdigit())).then(|| candidate.to_ascii_lowercase())
}

/// `pending` while a plan waits or work is under way, `failure` for errors, else `success`.
fn github_state(n: &Notification) -> &'static str {
    use crate::api::reason;
    if n.event.reason == reason::PLAN_PENDING || n.event.reason == reason::PROGRESSING {
        "pending"
    } else if n.is_error() {
        "failure"
    } else {
        "success"
    }
}

fn github_status(n: &Notification) -> Value {
    let e = &n.event;
    let first_line = e.message.lines().next().unwrap_or_default();
    let description = if first_line.is_empty() { e.reason.as_str() } else { first_line };
    let mut status = json!({
        "state": github_state(n),
        // The namespace too: two objects of one name in two namespaces, reconciling the same
        // commit, must not overwrite each other's status.
        "context": format!("{REPORTING_CONTROLLER}/{}/{}/{}", e.kind.to_ascii_lowercase(), e.namespace, e.name),
        "description": truncate(description, GITHUB_DESCRIPTION_LIMIT),
    });
    if let Some(url) = &n.review_url {
        status["target_url"] = json!(url);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn event(severity: Severity, reason: &str, revision: Option<&str>) -> Event {
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

    fn send(endpoint: &Endpoint, n: &Notification) -> OutgoingRequest {
        match prepare(endpoint, n).unwrap() {
            Prepared::Send(r) => r,
            Prepared::Skip(why) => panic!("skipped: {why}"),
        }
    }

    fn body(r: &OutgoingRequest) -> Value {
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
    fn commit_sha_reads_flux_revisions_and_nothing_else() {
        assert_eq!(commit_sha(&format!("main@sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("refs/tags/v1.0@sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(SHA).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("main/{}", SHA.to_uppercase())).as_deref(), Some(SHA));
        assert_eq!(commit_sha("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), None);
        assert_eq!(commit_sha("main@sha1:abc"), None);
        assert_eq!(commit_sha("main"), None);
    }

    #[test]
    fn github_addresses_give_the_api_base_and_repository() {
        let r = github_repository("https://github.com/acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.owner.as_str(), r.repo.as_str()), ("https://api.github.com", "acme", "infra"));
        let r = github_repository("https://git.example.com:8443/acme/infra/").unwrap();
        assert_eq!(r.api, "https://git.example.com:8443/api/v3");
        let r = github_repository("ssh://git@git.example.com:22/acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.repo.as_str()), ("https://git.example.com/api/v3", "infra"));
        let r = github_repository("git@github.com:acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.owner.as_str()), ("https://api.github.com", "acme"));
        assert!(github_repository("https://github.com/acme").is_err());
        assert!(github_repository("https://github.com/acme/infra/tree/main").is_err());
        assert!(github_repository("https://github.com/acme/in%2Ffra").is_err());
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
    fn slack_escapes_control_characters_and_colours_by_severity() {
        let mut endpoint = Endpoint::new(ProviderKind::Slack, "https://hooks.slack.com/services/T0/B0/secret");
        endpoint.channel = Some("#ops".into());
        let b = body(&send(&endpoint, &Notification::new(event(Severity::Error, "ApplyFailed", None))));
        assert_eq!(b["channel"], "#ops");
        assert_eq!(b["username"], "driftless");
        let a = &b["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["author_name"], "Terraform/infra/network");
        assert_eq!(a["text"], "plan plan-0123abc-aaaaaaaaaa: 1 to add &lt;b&gt; &amp; 0 to destroy");
    }

    #[test]
    fn discord_stays_inside_its_limits() {
        let mut n = Notification::new(event(Severity::Info, "PlanApplied", None));
        n.event.message = "x".repeat(10_000);
        n.metadata = (0..40).map(|i| (format!("key{i:02}"), "v".repeat(2000))).collect();
        let b = body(&send(&Endpoint::new(ProviderKind::Discord, "https://discord.com/api/webhooks/1/abc"), &n));
        let embed = &b["embeds"][0];
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25);
        let total: usize = embed["title"].as_str().unwrap().chars().count()
            + embed["description"].as_str().unwrap().chars().count()
            + embed["footer"]["text"].as_str().unwrap().chars().count()
            + fields
                .iter()
                .map(|f| f["name"].as_str().unwrap().chars().count() + f["value"].as_str().unwrap().chars().count())
                .sum::<usize>();
        assert!(total <= 6000, "{total}");
        assert!(fields.iter().all(|f| f["value"].as_str().unwrap().chars().count() <= 1024));
        assert!(!embed["description"].as_str().unwrap().is_empty());
    }

    #[test]
    fn github_description_is_cut_to_140_characters() {
        let mut n = Notification::new(event(Severity::Info, "PlanApplied", Some(SHA)));
        n.event.message = "é".repeat(300);
        let mut endpoint = Endpoint::new(ProviderKind::GitHub, "https://github.com/acme/infra");
        endpoint.token = Some("t".into());
        let b = body(&send(&endpoint, &n));
        assert_eq!(b["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(b["context"], "driftless/terraform/infra/network");
    }

    #[test]
    fn extra_headers_replace_defaults_but_not_the_signature() {
        let mut endpoint = Endpoint::new(ProviderKind::GenericHmac, "http://hook.example/in");
        endpoint.token = Some("key".into());
        endpoint.headers =
            BTreeMap::from([("content-type".into(), "application/cloudevents+json".into()), ("x-signature".into(), "forged".into())]);
        let r = send(&endpoint, &Notification::new(event(Severity::Info, "PlanApplied", None)));
        assert_eq!(r.header("Content-Type"), Some("application/cloudevents+json"));
        assert_eq!(r.header("x-signature"), Some(format!("sha256={}", sign(b"key", &r.body)).as_str()));
        assert_eq!(r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-type")).count(), 1);
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
