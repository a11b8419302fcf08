//! A fault-injecting HTTPS proxy in front of the apiserver: latency, error statuses and
//! dropped watch connections, per verb and resource, for the controller's reliability
//! tests. It serves a certificate from the cluster's CA, so clients built from
//! [`FaultProxy::access`] trust it exactly as they trust the apiserver.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::Client;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::certs::{Ca, CertError};
use crate::cluster::{ClusterAccess, ClusterError, TestCluster};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// Errors starting the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Its certificate could not be made.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The listener could not be bound.
    #[error("binding the proxy listener: {0}")]
    Bind(#[source] std::io::Error),
    /// A client could not be built.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// An API verb, as Kubernetes names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (including server-side apply).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

/// What a request is, from its method, path and query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The verb.
    pub verb: Verb,
    /// The resource (`pods`, `configmaps`, `widgets`), if the path names one.
    pub resource: Option<String>,
    /// The subresource (`status`), if any.
    pub subresource: Option<String>,
    /// The namespace, if any.
    pub namespace: Option<String>,
    /// The object's name, if any.
    pub name: Option<String>,
}

impl RequestInfo {
    /// Classifies a request the way the apiserver's request-info resolver does (for the
    /// resource paths `/api/v1/...` and `/apis/GROUP/VERSION/...`).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Self {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest: &[&str] = match segs.first() {
            Some(&"api") if segs.len() >= 2 => &segs[2..],
            Some(&"apis") if segs.len() >= 3 => &segs[3..],
            _ => &[],
        };
        let mut rest = rest.to_vec();
        let mut watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        if rest.first() == Some(&"watch") {
            watch = true;
            rest.remove(0);
        }
        let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
            (Some(rest[1].to_owned()), rest[2..].to_vec())
        } else {
            (None, rest)
        };
        let resource = rest.first().map(|s| (*s).to_owned());
        let name = rest.get(1).map(|s| (*s).to_owned());
        let subresource = rest.get(2).map(|s| (*s).to_owned());
        let verb = match *method {
            Method::POST => Verb::Create,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE if name.is_some() => Verb::Delete,
            Method::DELETE => Verb::DeleteCollection,
            _ if watch => Verb::Watch,
            _ if name.is_some() || resource.is_none() => Verb::Get,
            _ => Verb::List,
        };
        Self { verb, resource, subresource, namespace, name }
    }
}

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFault {
    /// Delay the request, then forward it.
    Latency(Duration),
    /// Answer with this status code and a Kubernetes `Status` body, without forwarding.
    Status(u16),
    /// Forward a watch, and cut its connection after this long.
    DropWatchAfter(Duration),
}

/// A fault, and which requests it applies to (unset filters match everything).
#[derive(Clone, Debug)]
pub struct FaultRule {
    fault: ApiFault,
    verb: Option<Verb>,
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    remaining: Option<u32>,
}

impl FaultRule {
    /// A rule applying `fault` to every request.
    pub fn new(fault: ApiFault) -> Self {
        Self { fault, verb: None, resource: None, namespace: None, name: None, remaining: None }
    }

    /// Only requests with this verb.
    #[must_use]
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    /// Only requests for this resource (plural, e.g. `configmaps`).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Only requests in this namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only requests for the object with this name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, info: &RequestInfo) -> bool {
        self.remaining != Some(0)
            && self.verb.is_none_or(|v| v == info.verb)
            && self.resource.as_ref().is_none_or(|r| info.resource.as_ref() == Some(r))
            && self.namespace.as_ref().is_none_or(|n| info.namespace.as_ref() == Some(n))
            && self.name.as_ref().is_none_or(|n| info.name.as_ref() == Some(n))
    }
}

struct ProxyState {
    upstream: String,
    rules: Mutex<Vec<FaultRule>>,
    drop_watches: watch::Sender<u64>,
    open_watches: AtomicUsize,
    requests: AtomicU64,
    /// Requests per verb and resource (see [`FaultProxy::request_counts`]).
    tally: Mutex<BTreeMap<String, u64>>,
    injected: AtomicU64,
    client: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
}

/// A running fault proxy. Stops when dropped.
pub struct FaultProxy {
    access: ClusterAccess,
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `cluster`'s apiserver.
    pub async fn start(cluster: &TestCluster) -> Result<Self, ProxyError> {
        Self::start_for(cluster.access(), cluster.ca()).await
    }

    /// Starts a proxy in front of the apiserver of `access`, serving a certificate
    /// signed by `ca` (which must be the CA `access` trusts).
    pub async fn start_for(access: &ClusterAccess, ca: &Ca) -> Result<Self, ProxyError> {
        ensure_crypto_provider();
        let pair = ca.loopback_serving_cert("testkit-fault-proxy", &[])?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ProxyError::Tls(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| ProxyError::Tls(e.to_string()))?;
        let mut server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ProxyError::Tls(e.to_string()))?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(access.ca_pem().as_bytes()) {
            let cert = cert.map_err(|e| ProxyError::Tls(e.to_string()))?;
            roots.add(cert).map_err(|e| ProxyError::Tls(e.to_string()))?;
        }
        let client_config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(client_config).https_only().enable_http1().build();
        let client = HttpClient::builder(TokioExecutor::new()).build(connector);

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(ProxyError::Bind)?;
        let addr = listener.local_addr().map_err(ProxyError::Bind)?;
        let (drop_watches, _) = watch::channel(0);
        let state = Arc::new(ProxyState {
            upstream: access.server().trim_end_matches('/').to_owned(),
            rules: Mutex::new(Vec::new()),
            drop_watches,
            open_watches: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            tally: Mutex::default(),
            injected: AtomicU64::new(0),
            client,
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&state)));
        let access = access.with_server(format!("https://{addr}"));
        tracing::info!(%addr, "fault proxy listening");
        Ok(Self { access, addr, state, task })
    }

    /// Server URL (the proxy), CA and tokens.
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for `user`, through the proxy.
    pub fn client_for(&self, user: &str) -> Result<Client, ProxyError> {
        Ok(self.access.client_for(user)?)
    }

    /// A client for the admin user, through the proxy.
    pub fn admin_client(&self) -> Result<Client, ProxyError> {
        self.client_for(crate::cluster::ADMIN)
    }

    /// Adds a rule; rules are checked in the order added.
    pub fn add_rule(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.state.rules.lock() {
            rules.push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        if let Ok(mut rules) = self.state.rules.lock() {
            rules.clear();
        }
    }

    /// Cuts every watch connection open now (new watches are not affected).
    pub fn drop_watches(&self) {
        self.state.drop_watches.send_modify(|g| *g += 1);
    }

    /// Watches currently open through the proxy.
    pub fn open_watches(&self) -> usize {
        self.state.open_watches.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests seen so far per verb and resource, keyed `"<verb> <resource>[/<subresource>]"`
    /// in lower case (`"patch terraforms/status"`, `"watch pods"`; paths that name no
    /// resource, such as discovery, count as `"get (no resource)"`). Why: a client's API
    /// calls per unit of work (a reconcile, a run) are what a benchmark behind this proxy
    /// wants to see, and the apiserver's own metrics do not say which client sent what.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Faults injected so far (status answers and dropped watches; not latency).
    pub fn faults_injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_watches();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, state: Arc<ProxyState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn status_response(code: u16, info: &RequestInfo) -> Response<ProxyBody> {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("{reason}: injected by the testkit fault proxy"),
        "reason": reason,
        "code": code,
    });
    let mut body = body;
    let mut details = serde_json::Map::new();
    if let Some(name) = &info.name {
        details.insert("name".into(), name.clone().into());
    }
    if let Some(resource) = &info.resource {
        details.insert("kind".into(), resource.clone().into());
    }
    if !details.is_empty() {
        body["details"] = details.into();
    }
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    if code == 429 {
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    response
}

const HOP_BY_HOP: [&str; 8] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"];

async fn handle(state: Arc<ProxyState>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let info = RequestInfo::parse(req.method(), req.uri().path(), req.uri().query());
    if let Ok(mut tally) = state.tally.lock() {
        let verb = format!("{:?}", info.verb).to_lowercase();
        let key = match (&info.resource, &info.subresource) {
            (Some(r), Some(sub)) => format!("{verb} {r}/{sub}"),
            (Some(r), None) => format!("{verb} {r}"),
            (None, _) => format!("{verb} (no resource)"),
        };
        *tally.entry(key).or_default() += 1;
    }
    let (latency, fault) = {
        let mut latency = Duration::ZERO;
        let mut fault = None;
        if let Ok(mut rules) = state.rules.lock() {
            for rule in rules.iter_mut().filter(|r| r.matches(&info)) {
                match &rule.fault {
                    ApiFault::Latency(d) => latency += *d,
                    other if fault.is_none() => fault = Some(other.clone()),
                    _ => continue,
                }
                if let Some(n) = &mut rule.remaining {
                    *n = n.saturating_sub(1);
                }
            }
        }
        (latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(ApiFault::Status(code)) = fault {
        state.injected.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(?info, code, "fault proxy: injected status");
        return Ok(status_response(code, &info));
    }

    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
    let (parts, body) = req.into_parts();
    let mut upstream = Request::builder().method(parts.method).uri(format!("{}{}", state.upstream, path_and_query));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(upstream) = upstream.body(body) else {
        return Ok(status_response(502, &info));
    };
    let response = match state.client.request(upstream).await {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(%err, "fault proxy: upstream request failed");
            return Ok(status_response(502, &info));
        }
    };
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    if info.verb != Verb::Watch {
        return Ok(Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed()));
    }

    // A watch: forward frames until the proxy is told to drop watches, or a
    // DropWatchAfter deadline passes; then fail the body, which aborts the connection
    // mid-stream as a network failure would.
    let deadline = match fault {
        Some(ApiFault::DropWatchAfter(d)) => Some(tokio::time::Instant::now() + d),
        _ => None,
    };
    let drop_rx = state.drop_watches.subscribe();
    let guard = WatchGuard::new(Arc::clone(&state));
    let frames = BodyStream::new(body);
    let stream = futures::stream::unfold(
        (Box::pin(frames), drop_rx, deadline, false, guard),
        |(mut frames, mut drop_rx, deadline, done, guard)| async move {
            if done {
                return None;
            }
            let until_deadline = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let cut = |state: &ProxyState| -> Result<Frame<Bytes>, BoxError> {
                state.injected.fetch_add(1, Ordering::SeqCst);
                Err("watch connection dropped by the testkit fault proxy".into())
            };
            tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(frame)) => Some((Ok(frame), (frames, drop_rx, deadline, false, guard))),
                    Some(Err(err)) => Some((Err(Box::new(err) as BoxError), (frames, drop_rx, deadline, true, guard))),
                    None => None,
                },
                _ = drop_rx.changed() => {
                    let item = cut(&guard.state);
                    Some((item, (frames, drop_rx, deadline, true, guard)))
                }
                () = until_deadline => {
                    let item = cut(&guard.state);
                    Some((item, (frames, drop_rx, deadline, true, guard)))
                }
            }
        },
    );
    Ok(Response::from_parts(parts, BoxBody::new(StreamBody::new(stream))))
}

/// Counts open watches.
struct WatchGuard {
    state: Arc<ProxyState>,
}

impl WatchGuard {
    fn new(state: Arc<ProxyState>) -> Self {
        state.open_watches.fetch_add(1, Ordering::SeqCst);
        Self { state }
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.state.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_like_the_apiserver_does() {
        let info = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/ns1/pods", Some("watch=true&resourceVersion=5"));
        assert_eq!(info.verb, Verb::Watch);
        assert_eq!(info.resource.as_deref(), Some("pods"));
        assert_eq!(info.namespace.as_deref(), Some("ns1"));
        let info = RequestInfo::parse(&Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/web/status", None);
        assert_eq!((info.verb, info.name.as_deref(), info.subresource.as_deref()), (Verb::Patch, Some("web"), Some("status")));
        let info = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/a", None);
        assert_eq!((info.verb, info.resource.as_deref(), info.name.as_deref()), (Verb::Get, Some("namespaces"), Some("a")));
        let info = RequestInfo::parse(&Method::GET, "/api/v1/nodes", None);
        assert_eq!(info.verb, Verb::List);
        let info = RequestInfo::parse(&Method::DELETE, "/api/v1/namespaces/a/configmaps", None);
        assert_eq!(info.verb, Verb::DeleteCollection);
    }

    #[test]
    fn a_counted_rule_stops_matching_when_used_up() {
        let info = RequestInfo::parse(&Method::POST, "/api/v1/namespaces/a/configmaps", None);
        let rule = FaultRule::new(ApiFault::Status(409)).verb(Verb::Create).resource("configmaps").times(0);
        assert!(!rule.matches(&info));
        let rule = FaultRule::new(ApiFault::Status(409)).verb(Verb::Create).resource("configmaps");
        assert!(rule.matches(&info));
        assert!(!FaultRule::new(ApiFault::Status(500)).resource("secrets").matches(&info));
    }
}
