//! Alert delivery against a real HTTP server on loopback: the payload each Provider type
//! sends, signatures, GitHub commit statuses, retries, timeouts, TLS with a Provider's CA,
//! and errors that never show the webhook path or the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftless::notify::{Delivery, DeliveryError, Endpoint, HttpClients, Notification, ProviderKind, RetryPolicy, deliver};
use driftless::store::{Event, Severity};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";
const HOOK_PATH: &str = "/services/T0SECRET/B0SECRET/hookpathsecret";
const TOKEN: &str = "tokensecret-3f9a";
const REVIEW: &str = "https://driftless.example/review/infra/Terraform/network";

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    /// Names lower-cased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the server answers one request.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    delay: Duration,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self { status, delay: Duration::ZERO, body: String::new(), headers: Vec::new() }
    }
    fn ok() -> Self {
        Self::status(200)
    }
    fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

struct State {
    seen: Mutex<Vec<Seen>>,
    /// Answers in order; `200` once they run out.
    script: Mutex<VecDeque<Reply>>,
}

/// A recording HTTP/1.1 server on 127.0.0.1, plain or TLS.
struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
}

impl Server {
    async fn start(script: Vec<Reply>) -> Self {
        Self::start_with(script, None).await
    }

    async fn start_tls(script: Vec<Reply>, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        Self::start_with(script, Some(acceptor)).await
    }

    async fn start_with(script: Vec<Reply>, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State { seen: Mutex::new(Vec::new()), script: Mutex::new(script.into()) });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let state = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, state).await;
                            }
                        }
                        None => serve(tcp, state).await,
                    }
                });
            }
        });
        Self { addr, scheme, state }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0].clone()
    }
}

/// Reads one request, records it, answers from the script and closes the connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<State>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: BTreeMap<String, String> =
        lines.filter_map(|l| l.split_once(':')).map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string())).collect();
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    state.seen.lock().unwrap().push(Seen { method, path, headers, body });
    let reply = state.script.lock().unwrap().pop_front().unwrap_or_else(Reply::ok);
    tokio::time::sleep(reply.delay).await;
    let mut response = format!("HTTP/1.1 {} Scripted\r\ncontent-length: {}\r\nconnection: close\r\n", reply.status, reply.body.len());
    for (name, value) in &reply.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&reply.body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn event(severity: Severity, reason: &str, revision: Option<&str>) -> Event {
    Event {
        time: "2025-03-04T05:06:07Z".into(),
        kind: "Terraform".into(),
        namespace: "infra".into(),
        name: "network".into(),
        reason: reason.into(),
        severity,
        message: "plan plan-89abcde-0a1b2c3d4e: 2 to add, 0 to change, 1 to destroy".into(),
        revision: revision.map(str::to_string),
        plan_id: Some("plan-89abcde-0a1b2c3d4e".into()),
        drift_id: Some("drift-5f6e7d".into()),
    }
}

/// A PlanPending notification with the Alert's metadata, summary and a review link.
fn notification(severity: Severity, reason: &str) -> Notification {
    let mut n = Notification::new(event(severity, reason, Some(&format!("main@sha1:{SHA}"))));
    n.metadata = BTreeMap::from([("env".to_string(), "production".to_string())]);
    n.summary = Some("network stack".into());
    n.review_url = Some(REVIEW.into());
    n
}

fn fast(attempts: u32) -> RetryPolicy {
    RetryPolicy { attempts, first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(40) }
}

fn endpoint(kind: ProviderKind, address: String) -> Endpoint {
    let mut e = Endpoint::new(kind, address);
    e.timeout = Duration::from_secs(5);
    e
}

fn assert_no_secrets(text: &str) {
    for secret in [HOOK_PATH, "hookpathsecret", "T0SECRET", TOKEN, "headersecret"] {
        assert!(!text.contains(secret), "`{secret}` leaked into: {text}");
    }
}

#[tokio::test]
async fn generic_posts_flux_shaped_event_json_with_metadata_and_extra_headers() {
    let server = Server::start(vec![]).await;
    let mut e = endpoint(ProviderKind::Generic, server.url("/hooks/driftless"));
    e.headers.insert("X-Tenant".into(), "blue".into());

    let delivered = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanPending"), &fast(3)).await.unwrap();
    assert_eq!(delivered, Delivery { attempts: 1, skipped: None });

    let r = server.only_request();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks/driftless"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("driftless/"), "{:?}", r.header("user-agent"));
    assert_eq!(r.header("x-tenant"), Some("blue"));
    assert_eq!(r.header("x-signature"), None);
    let b = r.json();
    assert_eq!(b["involvedObject"]["kind"], "Terraform");
    assert_eq!(b["involvedObject"]["namespace"], "infra");
    assert_eq!(b["involvedObject"]["name"], "network");
    assert_eq!(b["involvedObject"]["apiVersion"], "driftless.dev/v1alpha1");
    assert_eq!(b["severity"], "info");
    assert_eq!(b["timestamp"], "2025-03-04T05:06:07Z");
    assert_eq!(b["reason"], "PlanPending");
    assert_eq!(b["message"], "plan plan-89abcde-0a1b2c3d4e: 2 to add, 0 to change, 1 to destroy");
    assert_eq!(b["reportingController"], "driftless");
    let m = &b["metadata"];
    assert_eq!(m["revision"], format!("main@sha1:{SHA}"));
    assert_eq!(m["planId"], "plan-89abcde-0a1b2c3d4e");
    assert_eq!(m["driftId"], "drift-5f6e7d");
    assert_eq!(m["reviewUrl"], REVIEW);
    assert_eq!(m["summary"], "network stack");
    assert_eq!(m["env"], "production");
}

#[tokio::test]
async fn generic_hmac_signature_matches_an_hmac_of_the_received_body() {
    let server = Server::start(vec![]).await;
    let mut e = endpoint(ProviderKind::GenericHmac, server.url("/hook"));
    e.token = Some(TOKEN.into());

    deliver(&HttpClients::default(), &e, &notification(Severity::Error, "ApplyFailed"), &fast(1)).await.unwrap();

    let r = server.only_request();
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("x-signature"), Some(expected.as_str()));
    assert_eq!(r.json()["severity"], "error");
}

#[tokio::test]
async fn generic_hmac_without_a_token_fails_before_anything_is_sent() {
    let server = Server::start(vec![]).await;
    let e = endpoint(ProviderKind::GenericHmac, server.url(HOOK_PATH));

    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Payload(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`token`") && text.contains("spec.secretRef"), "{text}");
    assert_no_secrets(&text);
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn slack_gets_channel_user_and_a_coloured_attachment_with_fields() {
    let server = Server::start(vec![Reply::ok().body("ok")]).await;
    let mut e = endpoint(ProviderKind::Slack, server.url(HOOK_PATH));
    e.channel = Some("#infra-alerts".into());
    e.username = Some("terraform-bot".into());
    e.token = Some(TOKEN.into());

    deliver(&HttpClients::default(), &e, &notification(Severity::Error, "ApplyFailed"), &fast(1)).await.unwrap();

    let r = server.only_request();
    assert_eq!(r.path, HOOK_PATH);
    assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    let b = r.json();
    assert_eq!(b["channel"], "#infra-alerts");
    assert_eq!(b["username"], "terraform-bot");
    let a = &b["attachments"][0];
    assert_eq!(a["color"], "danger");
    assert_eq!(a["author_name"], "Terraform/infra/network");
    assert_eq!(a["title"], "ApplyFailed");
    assert_eq!(a["title_link"], REVIEW);
    assert!(a["text"].as_str().unwrap().contains("2 to add"));
    assert!(a["fallback"].as_str().unwrap().starts_with("Terraform/infra/network"));
    let fields: BTreeMap<String, String> = a["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["title"].as_str().unwrap().to_string(), f["value"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(fields["summary"], "network stack");
    assert_eq!(fields["planId"], "plan-89abcde-0a1b2c3d4e");
    assert_eq!(fields["env"], "production");
    assert_eq!(a["fields"][0]["title"], "summary", "the summary comes first");

    let info = Server::start(vec![]).await;
    deliver(
        &HttpClients::default(),
        &endpoint(ProviderKind::Slack, info.url("/hook")),
        &notification(Severity::Info, "PlanApplied"),
        &fast(1),
    )
    .await
    .unwrap();
    let b = info.only_request().json();
    assert_eq!(b["attachments"][0]["color"], "good");
    assert_eq!(b["username"], "driftless");
    assert!(b.get("channel").is_none());
}

#[tokio::test]
async fn slack_api_error_in_a_200_answer_is_a_failure_without_retry() {
    let server = Server::start(vec![Reply::ok().body(r#"{"ok":false,"error":"channel_not_found"}"#)]).await;
    let mut e = endpoint(ProviderKind::Slack, server.url("/api/chat.postMessage"));
    e.token = Some(TOKEN.into());

    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Rejected { status: 200, .. }), "{err:?}");
    assert!(err.to_string().contains("channel_not_found"), "{err}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn msteams_gets_an_adaptive_card_message() {
    let server = Server::start(vec![Reply::status(202)]).await;
    let e = endpoint(ProviderKind::MsTeams, server.url("/workflows/abc/triggers/manual/paths/invoke?sig=querysecret"));

    deliver(&HttpClients::default(), &e, &notification(Severity::Error, "DriftDetected"), &fast(1)).await.unwrap();

    let r = server.only_request();
    assert_eq!(r.path, "/workflows/abc/triggers/manual/paths/invoke?sig=querysecret");
    let b = r.json();
    assert_eq!(b["type"], "message");
    let attachment = &b["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    assert_eq!(card["version"], "1.4");
    let body = card["body"].as_array().unwrap();
    let texts: Vec<&str> = body.iter().filter(|b| b["type"] == "TextBlock").map(|b| b["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Terraform/infra/network", "DriftDetected", "plan plan-89abcde-0a1b2c3d4e: 2 to add, 0 to change, 1 to destroy"]);
    assert!(body.iter().any(|b| b["color"] == "Attention"), "an error is shown in red");
    let facts = body.iter().find(|b| b["type"] == "FactSet").unwrap()["facts"].as_array().unwrap().clone();
    assert_eq!(facts[0]["title"], "summary");
    assert!(facts.iter().any(|f| f["title"] == "env" && f["value"] == "production"));
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], REVIEW);
}

#[tokio::test]
async fn discord_gets_its_native_webhook_json_with_an_embed() {
    let server = Server::start(vec![Reply::status(204)]).await;
    let e = endpoint(ProviderKind::Discord, server.url("/api/webhooks/123/hookpathsecret"));

    deliver(&HttpClients::default(), &e, &notification(Severity::Error, "ApplyFailed"), &fast(1)).await.unwrap();

    let b = server.only_request().json();
    assert_eq!(b["username"], "driftless");
    assert!(b["content"].as_str().unwrap().contains("ApplyFailed"));
    assert!(b.get("attachments").is_none(), "Discord's own format, not Slack's");
    assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
    let embed = &b["embeds"][0];
    assert_eq!(embed["title"], "Terraform/infra/network");
    assert_eq!(embed["url"], REVIEW);
    assert!(embed["description"].as_str().unwrap().contains("1 to destroy"));
    assert_eq!(embed["color"], 0xE74C3C);
    assert_eq!(embed["timestamp"], "2025-03-04T05:06:07Z");
    assert!(embed["fields"].as_array().unwrap().iter().any(|f| f["name"] == "env" && f["value"] == "production"));
}

#[tokio::test]
async fn github_sets_a_commit_status_on_the_revisions_commit() {
    let server = Server::start(vec![]).await;
    let mut e = endpoint(ProviderKind::GitHub, server.url("/acme/infra.git"));
    e.token = Some(TOKEN.into());

    for (severity, reason, state) in [
        (Severity::Info, "PlanPending", "pending"),
        (Severity::Error, "ApplyFailed", "failure"),
        (Severity::Info, "PlanApplied", "success"),
    ] {
        deliver(&HttpClients::default(), &e, &notification(severity, reason), &fast(1)).await.unwrap();
        let r = server.seen().pop().unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/api/v3/repos/acme/infra/statuses/{SHA}"));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        let b = r.json();
        assert_eq!(b["state"], state, "{reason}");
        assert_eq!(b["context"], "driftless/terraform/infra/network");
        assert_eq!(b["target_url"], REVIEW);
        assert!(b["description"].as_str().unwrap().chars().count() <= 140);
    }
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn github_event_without_a_commit_revision_is_skipped() {
    let server = Server::start(vec![]).await;
    let mut e = endpoint(ProviderKind::GitHub, server.url("/acme/infra"));
    e.token = Some(TOKEN.into());

    for revision in [None, Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")] {
        let n = Notification::new(event(Severity::Info, "PlanApplied", revision));
        let delivered = deliver(&HttpClients::default(), &e, &n, &fast(3)).await.unwrap();
        assert_eq!(delivered.attempts, 0);
        assert!(delivered.skipped.as_deref().unwrap().contains("commit"), "{delivered:?}");
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let server = Server::start(vec![Reply::status(500), Reply::status(503), Reply::ok()]).await;
    let e = endpoint(ProviderKind::Generic, server.url("/hook"));

    let delivered = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(4)).await.unwrap();

    assert_eq!(delivered, Delivery { attempts: 3, skipped: None });
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.windows(2).all(|w| w[0].body == w[1].body), "every attempt sends the same body");
}

#[tokio::test]
async fn rate_limited_answers_are_retried() {
    let server = Server::start(vec![Reply::status(429).header("retry-after", "0"), Reply::ok()]).await;
    let e = endpoint(ProviderKind::Discord, server.url("/api/webhooks/1/x"));

    let delivered = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap();

    assert_eq!(delivered.attempts, 2);
}

#[tokio::test]
async fn server_errors_give_up_after_the_policys_attempts() {
    let server = Server::start(vec![Reply::status(502); 5]).await;
    let e = endpoint(ProviderKind::Generic, server.url(HOOK_PATH));

    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Unavailable { status: 502, attempts: 3, .. }), "{err:?}");
    assert_eq!(server.seen().len(), 3);
    assert_no_secrets(&err.to_string());
}

#[tokio::test]
async fn client_errors_are_not_retried_and_their_text_hides_path_and_token() {
    // A server that echoes what it got, as some frameworks' error pages do.
    let echo = format!("Cannot POST {HOOK_PATH} (token {TOKEN}, key headersecret)");
    let server = Server::start(vec![Reply::status(400).body(echo)]).await;
    let mut e = endpoint(ProviderKind::GenericHmac, server.url(HOOK_PATH));
    e.token = Some(TOKEN.into());
    e.headers.insert("X-Api-Key".into(), "headersecret".into());

    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(4)).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Rejected { status: 400, .. }), "{err:?}");
    assert_eq!(server.seen().len(), 1, "a 400 is not retried");
    let text = err.to_string();
    assert!(text.contains(&server.origin()) && text.contains("Cannot POST"), "{text}");
    assert_no_secrets(&text);
    assert_no_secrets(&format!("{err:?}"));
}

#[tokio::test]
async fn a_slow_endpoint_times_out_on_every_attempt() {
    let server = Server::start(vec![Reply::ok().delay(Duration::from_secs(10)); 3]).await;
    let mut e = endpoint(ProviderKind::Slack, server.url(HOOK_PATH));
    e.timeout = Duration::from_millis(300);
    e.token = Some(TOKEN.into());

    let started = Instant::now();
    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(2)).await.unwrap_err();
    let took = started.elapsed();

    assert!(matches!(err, DeliveryError::Timeout { attempts: 2, .. }), "{err:?}");
    assert!(took >= Duration::from_millis(600), "2 attempts of 300ms took {took:?}");
    assert!(took < Duration::from_secs(3), "2 attempts of 300ms took {took:?}");
    assert_eq!(server.seen().len(), 2);
    let text = err.to_string();
    assert!(text.contains("spec.timeout") && text.contains(&server.origin()), "{text}");
    assert_no_secrets(&text);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_and_named_by_its_origin_only() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut e = endpoint(ProviderKind::Discord, format!("http://{addr}{HOOK_PATH}"));
    e.token = Some(TOKEN.into());

    let err = deliver(&HttpClients::default(), &e, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Unreachable { attempts: 3, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("http://{addr}")), "{text}");
    assert_no_secrets(&text);
}

fn tls_server_config(ca: &testkit::certs::Ca) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pair = ca.loopback_serving_cert("notify-test", &[]).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn https_endpoints_trust_the_providers_ca_and_refuse_unknown_ones_without_retry() {
    let ca = testkit::certs::Ca::new("notify-test-ca").unwrap();
    let server = Server::start_tls(vec![], tls_server_config(&ca)).await;

    let mut trusted = endpoint(ProviderKind::Generic, server.url("/hook"));
    trusted.ca_pem = Some(ca.cert_pem());
    let delivered = deliver(&HttpClients::default(), &trusted, &notification(Severity::Info, "PlanApplied"), &fast(3)).await.unwrap();
    assert_eq!(delivered.attempts, 1);
    assert_eq!(server.only_request().json()["reason"], "PlanApplied");

    let mut untrusted = endpoint(ProviderKind::Generic, server.url(HOOK_PATH));
    untrusted.token = Some(TOKEN.into());
    let started = Instant::now();
    let err = deliver(&HttpClients::default(), &untrusted, &notification(Severity::Info, "PlanApplied"), &RetryPolicy::default())
        .await
        .unwrap_err();
    // The system's roots do not know the test CA; a machine without any roots fails earlier.
    assert!(matches!(err, DeliveryError::Tls { .. } | DeliveryError::TlsSetup { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "a certificate failure is not retried");
    let text = err.to_string();
    assert!(text.contains("certSecretRef") && text.contains(&server.origin()), "{text}");
    assert_no_secrets(&text);
    assert_eq!(server.seen().len(), 1, "nothing arrived over the untrusted connection");

    let mut bad_ca = trusted.clone();
    bad_ca.ca_pem = Some("not a certificate".into());
    let err = deliver(&HttpClients::default(), &bad_ca, &notification(Severity::Info, "PlanApplied"), &fast(1)).await.unwrap_err();
    assert!(matches!(err, DeliveryError::TlsSetup { .. }) && err.to_string().contains("ca.crt"), "{err:?}");
}
