//! How one notification reaches one Provider: prepare the request, POST it over HTTP/1.1
//! (rustls on ring, the system's CA roots plus the Provider's CA), retry what may pass.
//!
//! # Guarantees
//! - Each attempt is bounded by the endpoint's timeout (connect, TLS, request and reading
//!   the answer together); a delivery takes at most `attempts × timeout` plus the backoffs.
//! - Retried, with doubling backoff: connection failures, timeouts, `429` (honouring a
//!   `Retry-After` in seconds, up to `max_backoff`) and `5xx`. Not retried: other answers
//!   outside `2xx`, TLS failures, and a Provider that cannot work as configured.
//! - Errors and logs name the endpoint as `scheme://host[:port]` only. The address path and
//!   query, the token and header values never appear in them: text that comes from the
//!   network (error chains, response bodies) is scrubbed of them before it is kept.
//!
//! # Errors
//! [`DeliveryError`] says what happened and what to check; [`DeliveryError::metric_label`]
//! names its kind for metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::RETRY_AFTER;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::tls::{find_rustls_error, native_roots};

use super::payload::{Endpoint, Notification, OutgoingRequest, PayloadError, Prepared, ProviderKind, origin, prepare};

/// How much of an answer's body is read (for the error message, and Slack's `ok` field).
const BODY_LIMIT: usize = 16 * 1024;
/// How much of an answer's body an error quotes.
const EXCERPT_CHARS: usize = 200;

/// How often and how patiently to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waiting 1 s, 2 s and 4 s between them (never more than 30 s).
    fn default() -> Self {
        Self { attempts: 4, first_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): `first_backoff × 2^(attempt-1)`,
    /// at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A notification that was delivered, or that the Provider had nothing to say about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// Why nothing was sent (e.g. a `github` event without a commit revision).
    pub skipped: Option<String>,
}

/// Why a notification did not arrive. `endpoint` is always `scheme://host[:port]`.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("cannot set up TLS for {endpoint}: {problem}")]
    TlsSetup { endpoint: String, problem: String },
    #[error(
        "the TLS handshake with {endpoint} failed ({problem}); if a private CA signs its certificate, put that CA as `ca.crt` in the Secret named by the Provider's spec.certSecretRef"
    )]
    Tls { endpoint: String, problem: String },
    #[error(
        "cannot reach {endpoint} ({attempts} attempts): {problem}; check the Provider's address, DNS, and that network policies let the controller reach it"
    )]
    Unreachable { endpoint: String, attempts: u32, problem: String },
    #[error(
        "{endpoint} did not answer within {} ({attempts} attempts); check that the service is up, or raise the Provider's spec.timeout",
        humantime::format_duration(*.timeout)
    )]
    Timeout { endpoint: String, attempts: u32, timeout: Duration },
    #[error("{endpoint} answered {status} ({attempts} attempts){detail}; the service is failing or limiting the rate of requests")]
    Unavailable { endpoint: String, attempts: u32, status: u16, detail: String },
    #[error("{endpoint} refused the notification with {status}{detail}; {hint}")]
    Rejected { endpoint: String, status: u16, detail: String, hint: &'static str },
}

impl DeliveryError {
    /// A short, stable name of the error's kind, for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DeliveryError::Payload(_) => "invalid_provider",
            DeliveryError::TlsSetup { .. } => "tls_setup",
            DeliveryError::Tls { .. } => "tls",
            DeliveryError::Unreachable { .. } => "unreachable",
            DeliveryError::Timeout { .. } => "timeout",
            DeliveryError::Unavailable { .. } => "unavailable",
            DeliveryError::Rejected { .. } => "rejected",
        }
    }
}

/// Delivers `n` to `endpoint` with one of `clients`, retrying as `policy` says.
///
/// # Errors
/// The last attempt's [`DeliveryError`] once no attempt is left or the failure cannot pass
/// by itself; a Provider that cannot work as configured fails before any attempt.
pub async fn deliver(
    clients: &HttpClients,
    endpoint: &Endpoint,
    n: &Notification,
    policy: &RetryPolicy,
) -> Result<Delivery, DeliveryError> {
    let request = match prepare(endpoint, n)? {
        Prepared::Send(request) => request,
        Prepared::Skip(why) => {
            tracing::debug!(provider = %endpoint.kind, endpoint = %endpoint.origin(), "nothing to send: {why}");
            return Ok(Delivery { attempts: 0, skipped: Some(why) });
        }
    };
    let target = origin(&request.url);
    let scrub = Scrubber::new(endpoint, &request);
    let client = clients.client(endpoint, &request.url, &target)?;
    let body = Bytes::from(request.body.clone());
    let attempts = policy.attempts.max(1);
    let object = n.object();
    let mut attempt = 0;
    loop {
        attempt += 1;
        tracing::debug!(provider = %endpoint.kind, endpoint = %target, attempt, attempts, "sending {} of {object}", n.event.reason);
        let http_request = http_request(endpoint.kind, &request, &body)?;
        let outcome = match tokio::time::timeout(endpoint.timeout, exchange(&client, http_request)).await {
            Err(_elapsed) => {
                Outcome::Retry(DeliveryError::Timeout { endpoint: target.clone(), attempts: attempt, timeout: endpoint.timeout }, None)
            }
            Ok(Err(e)) => transport_failure(&e, &target, attempt, &scrub),
            Ok(Ok(answer)) => judge(endpoint.kind, answer, &target, attempt, &scrub),
        };
        let (error, retry_after) = match outcome {
            Outcome::Delivered => {
                tracing::debug!(provider = %endpoint.kind, endpoint = %target, attempt, "delivered {} of {object}", n.event.reason);
                return Ok(Delivery { attempts: attempt, skipped: None });
            }
            Outcome::Fail(error) => return Err(error),
            Outcome::Retry(error, retry_after) => (error, retry_after),
        };
        if attempt >= attempts {
            return Err(error);
        }
        let wait = retry_after.map_or(policy.backoff(attempt), |r| r.max(policy.backoff(attempt)).min(policy.max_backoff));
        tracing::debug!(provider = %endpoint.kind, endpoint = %target, attempt, "attempt failed, retrying in {wait:?}: {error}");
        tokio::time::sleep(wait).await;
    }
}

enum Outcome {
    Delivered,
    Retry(DeliveryError, Option<Duration>),
    Fail(DeliveryError),
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// The POST of `request`; `prepare` checked its URL and headers, so this fails only on a
/// URL it built itself that HTTP refuses.
fn http_request(kind: ProviderKind, request: &OutgoingRequest, body: &Bytes) -> Result<hyper::Request<Full<Bytes>>, PayloadError> {
    let mut builder = hyper::Request::post(request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(body.clone()))
        .map_err(|_| PayloadError::InvalidAddress { kind, problem: "HTTP does not take the URL made of it" })
}

/// One POST, and the start of its answer.
async fn exchange(client: &HttpClient, http_request: hyper::Request<Full<Bytes>>) -> Result<Answer, hyper_util::client::legacy::Error> {
    let response = client.request(http_request).await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < BODY_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            // The status is what counts; a body cut short changes nothing.
            Some(Err(_)) | None => break,
        }
    }
    Ok(Answer { status, retry_after, body: bytes })
}

fn judge(kind: ProviderKind, answer: Answer, endpoint: &str, attempt: u32, scrub: &Scrubber) -> Outcome {
    let status = answer.status;
    let detail = excerpt(&answer.body, scrub);
    if status.is_success() {
        // Slack's Web API (chat.postMessage) answers 200 with `"ok": false` on errors.
        if kind == ProviderKind::Slack
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && map.get("ok") == Some(&serde_json::Value::Bool(false))
        {
            let error = map.get("error").and_then(|e| e.as_str()).unwrap_or("no error given");
            return Outcome::Fail(DeliveryError::Rejected {
                endpoint: endpoint.to_string(),
                status: status.as_u16(),
                detail: format!(": Slack error `{}`", scrub.clean(error)),
                hint: "check the token's scopes and that the bot is in the channel",
            });
        }
        return Outcome::Delivered;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let error = DeliveryError::Unavailable { endpoint: endpoint.to_string(), attempts: attempt, status: status.as_u16(), detail };
        return Outcome::Retry(error, answer.retry_after);
    }
    Outcome::Fail(DeliveryError::Rejected { endpoint: endpoint.to_string(), status: status.as_u16(), detail, hint: hint(kind, status) })
}

fn hint(kind: ProviderKind, status: StatusCode) -> &'static str {
    match status.as_u16() {
        300..=399 => "the address redirects; set the Provider's address to where it leads",
        401 | 403 if kind == ProviderKind::GitHub => {
            "check the token in the Provider's Secret: it must be valid and may write commit statuses of the repository"
        }
        401 | 403 => "check the credentials: the token or headers in the Provider's Secret, or the webhook URL itself",
        404 | 410 if kind == ProviderKind::GitHub => "check the repository in the Provider's address, and that the token can see it",
        404 | 410 => "check the Provider's address: the webhook may have been deleted",
        422 if kind == ProviderKind::GitHub => "check that the commit of the event's revision exists in the repository",
        413 => "the service takes smaller messages",
        _ => "the service did not accept the payload",
    }
}

/// `: <start of the body>` scrubbed of secrets on one line, or nothing for an empty body.
fn excerpt(body: &[u8], scrub: &Scrubber) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return String::new();
    }
    let clean = scrub.clean(&line);
    let mut cut: String = clean.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < clean.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

fn transport_failure(error: &hyper_util::client::legacy::Error, endpoint: &str, attempt: u32, scrub: &Scrubber) -> Outcome {
    let problem = scrub.clean(&describe(error));
    if let Some(tls) = find_rustls_error(error) {
        // A handshake fails the same way next time.
        return Outcome::Fail(DeliveryError::Tls { endpoint: endpoint.to_string(), problem: scrub.clean(&tls.to_string()) });
    }
    Outcome::Retry(DeliveryError::Unreachable { endpoint: endpoint.to_string(), attempts: attempt, problem }, None)
}

/// An error and its sources on one line, skipping levels that only repeat the one before.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// How many clients (one per trusted-CA set) a [`HttpClients`] keeps.
const CLIENTS_KEPT: usize = 64;

/// The HTTP clients deliveries share, one per scheme and trusted CA. Building a client
/// parses the system's roots into a TLS config, and a kept client keeps its connections
/// open, so a burst of alerts to one service reuses them instead of paying a TCP and TLS
/// handshake per alert. Connections belong to the runtime that opened them: keep one
/// `HttpClients` per runtime (the notifier owns one; a one-shot command makes its own).
#[derive(Clone, Default)]
pub struct HttpClients {
    kept: Arc<Mutex<HashMap<ClientKey, HttpClient>>>,
}

/// Whether the URL is `https`, and the Provider's CA (PEM), if any.
type ClientKey = (bool, Option<String>);

impl HttpClients {
    fn client(&self, endpoint: &Endpoint, url: &str, target: &str) -> Result<HttpClient, DeliveryError> {
        let key = (url.starts_with("https:"), endpoint.ca_pem.clone().filter(|p| !p.trim().is_empty()));
        if let Some(kept) = self.kept.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(kept.clone());
        }
        let built = build_client(endpoint, url, target)?;
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < CLIENTS_KEPT {
            kept.insert(key, built.clone());
        }
        Ok(built)
    }
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients").finish_non_exhaustive()
    }
}

fn build_client(endpoint: &Endpoint, url: &str, target: &str) -> Result<HttpClient, DeliveryError> {
    let setup = |problem: String| DeliveryError::TlsSetup { endpoint: target.to_string(), problem };
    let mut roots = rustls::RootCertStore::empty();
    if url.starts_with("https:") {
        roots.add_parsable_certificates(native_roots().iter().cloned());
    }
    if let Some(pem) = endpoint.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup(format!("the CA from the Provider's spec.certSecretRef (`ca.crt`) is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(setup("the CA from the Provider's spec.certSecretRef (`ca.crt`) holds no PEM certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| setup(format!("the CA from the Provider's spec.certSecretRef (`ca.crt`) is not a usable certificate: {e}")))?;
        }
    }
    if url.starts_with("https:") && roots.is_empty() {
        return Err(setup(
            "no CA certificates are trusted: the system has none (install ca-certificates) and the Provider names no spec.certSecretRef"
                .into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Removes an endpoint's secrets from text that came from the network: the webhook URL and
/// its parts, the token and header values, in every form (core's scrubber).
struct Scrubber {
    secrets: driftless_core::scrub::Scrubber,
}

impl Scrubber {
    fn new(endpoint: &Endpoint, request: &OutgoingRequest) -> Self {
        let mut secrets = Vec::new();
        for url in [endpoint.address.as_str(), request.url.as_str()] {
            secrets.push(url.to_string());
            if let Ok(uri) = url.parse::<hyper::Uri>() {
                if let Some(pq) = uri.path_and_query() {
                    secrets.push(pq.as_str().trim_start_matches('/').to_string());
                }
                // A part of a webhook path or query can be echoed on its own.
                let parts = uri.path().split('/').chain(uri.query().unwrap_or_default().split('&').flat_map(|kv| kv.split('=')));
                secrets.extend(parts.filter(|p| p.len() >= 6).map(str::to_string));
            }
        }
        secrets.extend(endpoint.token.iter().cloned());
        secrets.extend(endpoint.headers.values().cloned());
        Self { secrets: driftless_core::scrub::Scrubber::new(secrets) }
    }

    fn clean(&self, text: &str) -> String {
        self.secrets.scrub_with(text, "<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(200), Duration::from_secs(30));
    }

    #[test]
    fn scrubber_removes_path_query_parts_token_and_header_values() {
        let mut endpoint = Endpoint::new(ProviderKind::MsTeams, "https://example.logic.azure.com/workflows/abc123def/invoke?sig=s3cr3tsig");
        endpoint.token = Some("tok".into());
        endpoint.headers.insert("X-Key".into(), "headerval".into());
        let request = OutgoingRequest { url: endpoint.address.clone(), headers: Vec::new(), body: Vec::new() };
        let scrub = Scrubber::new(&endpoint, &request);
        let cleaned = scrub.clean("Cannot POST /workflows/abc123def/invoke?sig=s3cr3tsig; sig s3cr3tsig, id abc123def, tok, headerval");
        for secret in ["abc123def", "s3cr3tsig", "tok,", "headerval", "/workflows"] {
            assert!(!cleaned.contains(secret), "{secret} in {cleaned}");
        }
    }
}
