//! Receivers: webhooks that ask for an immediate reconcile of sources (a push to the
//! repository, a new bucket object), so a change lands without waiting for `interval`.
//!
//! The path is `/hook/<sha256(token + name + namespace)>`, as Flux derives it: unguessable
//! without the token, stable while the token is, and different per Receiver. A call is
//! verified as its service signs it (HMAC of the body, or GitLab's shared token); a bad
//! signature gets 401, an unknown path 404, a body over 1 MiB 413, and none triggers anything.
//!
//! Calls are unauthenticated until verified, so finding the Receiver must cost the API server
//! nothing: on a cluster Receivers are read from a watch's cache ([`Receivers::Watched`]), and
//! only the Receiver whose status publishes the called path is considered, so an unknown path
//! is answered from memory and a known one costs one read of its Secret. Refused calls (401,
//! 404) spend the caller's budget ([`CALL_BUDGET`]); past it, its calls get 429 with
//! `Retry-After` before any lookup. A call that verifies spends nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector;
use sha2::{Digest, Sha256, Sha512};

use crate::api::{EventSourceReference, Receiver, annotation};
use crate::store::{ObjectStore, StoreError};
use crate::throttle::{Budget, Peer, Throttle, retry_after_secs};

/// The largest body a Receiver reads; services send far less.
pub const MAX_BODY: usize = 1024 * 1024;

/// Refused calls per client address: 20 at once (a misconfigured service retrying), then one
/// more a second. Behind an Ingress, its address is the client's: set per-client limits there.
pub const CALL_BUDGET: Budget = Budget { burst: 20, every: Duration::from_secs(1) };
/// Client addresses whose refused calls are remembered at once.
const MAX_CLIENTS: usize = 4096;
/// How long a call waits for the watch's first list after the server starts.
const CACHE_WAIT: Duration = Duration::from_secs(5);

/// Where webhook calls find Receivers.
#[derive(Clone)]
pub enum Receivers {
    /// Read through the object store on each call: a local store, where that is a directory
    /// read and no API request.
    Listed,
    /// A watch's cache of every Receiver, kept by the controller.
    Watched(reflector::Store<Receiver>),
}

/// Why a call's Receiver could not be looked up (the call is answered 503: retry).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the Receivers have not been loaded from the API yet")]
    NotLoaded,
}

/// The webhook path of a Receiver with this token.
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{token}{name}{namespace}").as_bytes());
    format!("/hook/{}", hex::encode(digest))
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("signature header {0} is missing")]
    MissingSignature(&'static str),
    #[error("signature in {0} does not match the body")]
    BadSignature(&'static str),
    #[error("{0} does not match the Receiver's token")]
    BadToken(&'static str),
}

/// What a verified call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reconcile the Receiver's resources.
    Trigger,
    /// Verified, but an event type the Receiver does not list (e.g. GitHub's `ping`).
    Ignore(String),
}

/// Verifies one call for a Receiver of `type_` with `token`. Pure, so each service's scheme
/// is tested without a server.
pub fn verify(type_: &str, token: &str, events: &[String], headers: &HeaderMap, body: &[u8]) -> Result<Verdict, Rejection> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let event = match type_ {
        "generic" => None,
        "generic-hmac" => {
            let signature = header("x-signature").ok_or(Rejection::MissingSignature("X-Signature"))?;
            if !hmac_matches(token, body, signature) {
                return Err(Rejection::BadSignature("X-Signature"));
            }
            None
        }
        "github" => {
            let signature = header("x-hub-signature-256").ok_or(Rejection::MissingSignature("X-Hub-Signature-256"))?;
            if !signature.starts_with("sha256=") || !hmac_matches(token, body, signature) {
                return Err(Rejection::BadSignature("X-Hub-Signature-256"));
            }
            header("x-github-event")
        }
        "gitlab" => {
            let given = header("x-gitlab-token").ok_or(Rejection::MissingSignature("X-Gitlab-Token"))?;
            if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
                return Err(Rejection::BadToken("X-Gitlab-Token"));
            }
            header("x-gitlab-event")
        }
        // Refused by validation before a path is ever published.
        _ => return Err(Rejection::BadToken("type")),
    };
    if type_ == "github" && event == Some("ping") {
        return Ok(Verdict::Ignore("ping".into()));
    }
    match event {
        Some(e) if !events.is_empty() && !events.iter().any(|x| x.eq_ignore_ascii_case(e)) => Ok(Verdict::Ignore(e.to_string())),
        _ => Ok(Verdict::Trigger),
    }
}

/// `sha256=<hex>` (or `sha512=`; sha1 is refused) HMAC of the body with the token.
fn hmac_matches(token: &str, body: &[u8], signature: &str) -> bool {
    let Some((algorithm, hex_sig)) = signature.split_once('=') else { return false };
    let Ok(given) = hex::decode(hex_sig) else { return false };
    match algorithm {
        "sha256" => Hmac::<Sha256>::new_from_slice(token.as_bytes()).is_ok_and(|mut m| {
            m.update(body);
            m.verify_slice(&given).is_ok()
        }),
        "sha512" => Hmac::<Sha512>::new_from_slice(token.as_bytes()).is_ok_and(|mut m| {
            m.update(body);
            m.verify_slice(&given).is_ok()
        }),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of a Receiver's Secret, or why there is none (for its status).
pub async fn receiver_token<S: ObjectStore>(store: &S, receiver: &Receiver) -> Result<Result<String, String>, StoreError> {
    let namespace = receiver.metadata.namespace.as_deref().unwrap_or("default");
    let name = &receiver.spec.secret_ref.name;
    let Some(secret) = store.get::<Secret>(namespace, name).await? else {
        return Ok(Err(format!("spec.secretRef: Secret {namespace}/{name} not found; create it with a `token` key")));
    };
    let Ok(data) = driftless_core::secret::secret_strings(&secret) else {
        return Ok(Err(format!("spec.secretRef: Secret {namespace}/{name} holds a value that is not text")));
    };
    Ok(match data.get("token").map(|t| t.trim()) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(format!("spec.secretRef: Secret {namespace}/{name} has no `token` key")),
    })
}

/// Asks for an immediate reconcile of every object a reference selects, as `driftless
/// reconcile` does (the `reconcile-requested-at` annotation); returns `Kind/ns/name` of each.
pub async fn request_reconcile<S: ObjectStore>(
    store: &S,
    default_namespace: &str,
    refs: &[EventSourceReference],
) -> Result<Vec<String>, StoreError> {
    let at = jiff::Timestamp::now().to_string();
    let mut touched = Vec::new();
    for r in refs {
        let namespace = r.namespace.as_deref().unwrap_or(default_namespace);
        let Some(kind) = crate::api::Kind::from_api(&r.kind).filter(|k| k.is_reconciled()) else { continue };
        let names = crate::with_reconciled_kind!(kind, K => selected::<S, K>(store, namespace, r).await?, _ => Vec::new());
        for name in names {
            let changes = [(annotation::RECONCILE_REQUESTED_AT, Some(at.as_str()))];
            crate::with_reconciled_kind!(kind, K => crate::store::annotate::<K, S>(store, namespace, &name, &changes).await.map(drop)?, _ => ());
            touched.push(format!("{}/{namespace}/{name}", r.kind));
        }
    }
    Ok(touched)
}

async fn selected<S: ObjectStore, K: crate::store::StoredObject>(
    store: &S,
    namespace: &str,
    r: &EventSourceReference,
) -> Result<Vec<String>, StoreError> {
    if r.name != "*" {
        return Ok(store.get::<K>(namespace, &r.name).await?.map(|_| r.name.clone()).into_iter().collect());
    }
    Ok(store
        .list_in::<K>(namespace)
        .await?
        .into_iter()
        .filter(|o| {
            let labels = o.meta().labels.clone().unwrap_or_default();
            r.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter_map(|o| o.meta().name.clone())
        .collect())
}

/// The webhook routes, served by the controller (`--receiver-addr`) and by `driftless run`.
pub fn router<S: ObjectStore + Clone + 'static>(store: S, receivers: Receivers, tenancy: crate::api::Tenancy) -> axum::Router {
    let refused = Arc::new(Mutex::new(Throttle::new(CALL_BUDGET, MAX_CLIENTS)));
    axum::Router::new().route("/hook/{digest}", axum::routing::post(hook::<S>)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(Hooks {
        store,
        receivers,
        tenancy,
        refused,
    })
}

/// Serves `router` on `listener` until `shutdown`, with each call's peer address (whose
/// refused calls are counted).
///
/// # Errors
/// When serving fails at the socket level.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await
}

/// What a webhook handler reads: the objects, where Receivers are found, what the cluster
/// owner allows, and the refused calls per client.
#[derive(Clone)]
struct Hooks<S> {
    store: S,
    receivers: Receivers,
    tenancy: crate::api::Tenancy,
    refused: Arc<Mutex<Throttle<IpAddr>>>,
}

impl<S> Hooks<S> {
    fn refused(&self) -> std::sync::MutexGuard<'_, Throttle<IpAddr>> {
        // A plain map: a panic while it was held cannot leave an entry half-written.
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a call's answer is the caller's failure (it keeps the attempt it spent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Charge {
    Refused,
    Free,
}

async fn hook<S: ObjectStore + Clone + 'static>(
    State(hooks): State<Hooks<S>>,
    Peer(client): Peer,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(wait) = hooks.refused().attempt(&client, Instant::now()) {
        let secs = retry_after_secs(wait);
        tracing::warn!(%client, "receiver: too many refused calls; refused for {secs} s");
        let message = format!("too many refused calls from your address; retry in {secs} s\n");
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, HeaderValue::from(secs))], message).into_response();
    }
    let (response, charge) = answer(&hooks, &format!("/hook/{digest}"), &headers, &body).await;
    if charge == Charge::Free {
        hooks.refused().forgive(&client, Instant::now());
    }
    response
}

/// The answer to one call that is within its client's budget.
async fn answer<S: ObjectStore + Clone + 'static>(hooks: &Hooks<S>, path: &str, headers: &HeaderMap, body: &[u8]) -> (Response, Charge) {
    let found = match find(&hooks.store, &hooks.receivers, path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("receiver lookup failed: {e}");
            return ((StatusCode::SERVICE_UNAVAILABLE, "cannot read Receivers now; retry\n").into_response(), Charge::Free);
        }
    };
    let Some((receiver, token)) = found else {
        return ((StatusCode::NOT_FOUND, "no Receiver at this path\n").into_response(), Charge::Refused);
    };
    let namespace = receiver.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = receiver.metadata.name.clone().unwrap_or_default();
    let verdict = verify(&receiver.spec.type_, &token, &receiver.spec.events, headers, body);
    let response = match verdict {
        Err(rejection) => {
            tracing::warn!(%namespace, %name, "receiver refused a call: {rejection}");
            return ((StatusCode::UNAUTHORIZED, format!("{rejection}\n")).into_response(), Charge::Refused);
        }
        Ok(Verdict::Ignore(event)) => {
            (StatusCode::OK, format!("event {event:?} is not in spec.events; nothing requested\n")).into_response()
        }
        Ok(Verdict::Trigger) if let Some(refused) = super::objects::receiver_refusal(&receiver, &hooks.tenancy) => {
            tracing::warn!(%namespace, %name, "receiver refused by the cluster's rules: {refused}");
            (StatusCode::FORBIDDEN, format!("{refused}\n")).into_response()
        }
        Ok(Verdict::Trigger) => match request_reconcile(&hooks.store, &namespace, &receiver.spec.resources).await {
            Ok(touched) => {
                tracing::info!(%namespace, %name, resources = ?touched, "receiver requested a reconcile");
                (StatusCode::OK, format!("reconcile requested: {}\n", touched.join(", "))).into_response()
            }
            Err(e) => {
                tracing::warn!(%namespace, %name, "cannot request the reconcile: {e}");
                (StatusCode::SERVICE_UNAVAILABLE, "cannot request the reconcile now; retry\n").into_response()
            }
        },
    };
    (response, Charge::Free)
}

/// Whether a call to `path` is for this Receiver: not suspended, and its status publishes
/// that path (the path is published within seconds of a Receiver's creation or token
/// change; until then it answers nothing). Pure, so an unknown path costs no API request.
fn serves(receiver: &Receiver, path: &str) -> bool {
    !receiver.spec.suspend && receiver.status.as_ref().and_then(|s| s.webhook_path.as_deref()) == Some(path)
}

/// The Receiver whose current token gives `path`, with the token. Its published path is
/// checked against the Secret on every call, so a rotated token takes the old path down at
/// once.
async fn find<S: ObjectStore>(store: &S, receivers: &Receivers, path: &str) -> Result<Option<(Receiver, String)>, LookupError> {
    let candidate = match receivers {
        Receivers::Listed => store.list::<Receiver>().await?.into_iter().find(|r| serves(r, path)),
        Receivers::Watched(cache) => {
            match tokio::time::timeout(CACHE_WAIT, cache.wait_until_ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(LookupError::NotLoaded),
            }
            cache.find(|r| serves(r, path)).map(|r| Receiver::clone(&r))
        }
    };
    let Some(receiver) = candidate else { return Ok(None) };
    let Ok(token) = receiver_token(store, &receiver).await? else { return Ok(None) };
    let name = receiver.metadata.name.as_deref().unwrap_or_default();
    let namespace = receiver.metadata.namespace.as_deref().unwrap_or("default");
    Ok((webhook_path(&token, name, namespace) == path).then_some((receiver, token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(token: &str, body: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(token.as_bytes()).unwrap();
        m.update(body);
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn receiver(suspend: bool, published: Option<&str>) -> Receiver {
        let mut r: Receiver = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Receiver",
            "metadata": { "name": "r", "namespace": "ns" },
            "spec": { "type": "github", "secretRef": { "name": "s" }, "resources": [{ "kind": "GitRepository", "name": "app" }] }
        }))
        .unwrap();
        r.spec.suspend = suspend;
        r.status = published.map(|p| crate::api::ReceiverStatus { webhook_path: Some(p.into()), ..Default::default() });
        r
    }

    #[test]
    fn only_the_receiver_publishing_the_path_is_looked_at() {
        assert!(serves(&receiver(false, Some("/hook/a")), "/hook/a"));
        assert!(!serves(&receiver(false, Some("/hook/a")), "/hook/b"));
        assert!(!serves(&receiver(true, Some("/hook/a")), "/hook/a"), "suspended");
        assert!(!serves(&receiver(false, None), "/hook/a"), "not published yet: no Secret is read for it");
    }

    #[test]
    fn the_path_depends_on_token_name_and_namespace() {
        let p = webhook_path("t", "r", "ns");
        assert!(p.starts_with("/hook/") && p.len() == 6 + 64);
        assert_ne!(p, webhook_path("u", "r", "ns"));
        assert_ne!(p, webhook_path("t", "s", "ns"));
    }

    #[test]
    fn github_signatures_and_events() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let ok = headers(&[("x-hub-signature-256", &signed("tok", body)), ("x-github-event", "push")]);
        assert_eq!(verify("github", "tok", &["push".into()], &ok, body), Ok(Verdict::Trigger));
        let wrong = headers(&[("x-hub-signature-256", &signed("other", body)), ("x-github-event", "push")]);
        assert_eq!(verify("github", "tok", &[], &wrong, body), Err(Rejection::BadSignature("X-Hub-Signature-256")));
        assert!(verify("github", "tok", &[], &HeaderMap::new(), body).is_err());
        let ping = headers(&[("x-hub-signature-256", &signed("tok", body)), ("x-github-event", "ping")]);
        assert_eq!(verify("github", "tok", &[], &ping, body), Ok(Verdict::Ignore("ping".into())));
        let issue = headers(&[("x-hub-signature-256", &signed("tok", body)), ("x-github-event", "issues")]);
        assert_eq!(verify("github", "tok", &["push".into()], &issue, body), Ok(Verdict::Ignore("issues".into())));
    }

    #[test]
    fn gitlab_token_and_generic_hmac() {
        let ok = headers(&[("x-gitlab-token", "tok"), ("x-gitlab-event", "Push Hook")]);
        assert_eq!(verify("gitlab", "tok", &[], &ok, b""), Ok(Verdict::Trigger));
        let bad = headers(&[("x-gitlab-token", "nope")]);
        assert_eq!(verify("gitlab", "tok", &[], &bad, b""), Err(Rejection::BadToken("X-Gitlab-Token")));
        let body = b"{}";
        let signed_ok = headers(&[("x-signature", &signed("k", body))]);
        assert_eq!(verify("generic-hmac", "k", &[], &signed_ok, body), Ok(Verdict::Trigger));
        let signed_other = headers(&[("x-signature", &signed("k", b"other"))]);
        assert!(verify("generic-hmac", "k", &[], &signed_other, body).is_err());
        assert_eq!(verify("generic", "k", &[], &HeaderMap::new(), body), Ok(Verdict::Trigger));
    }
}
