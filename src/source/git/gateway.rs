//! A loopback gateway for one Git operation: libgit2 speaks plain HTTP to
//! `http://127.0.0.1:<port>/<token>/...`, and the gateway makes each request to the real
//! remote with driftless's own client (rustls with the Secret's CAs and client certificate,
//! through the proxy of `proxySecretRef`). libgit2's own https transport can neither
//! present a client certificate nor trust a CA per remote without changing it for the whole
//! process, and its safe API cannot plug in another transport.
//!
//! # Guarantees
//! - It listens on 127.0.0.1 only, for the life of one operation, and serves only paths
//!   under a random 128-bit token: another local process cannot use it to reach the remote
//!   with the client certificate without reading this process's memory.
//! - Requests and responses are streamed through unchanged but for the hop-by-hop headers,
//!   `Host`, and a `Location` on the remote's own origin (rewritten to the gateway, so a
//!   redirect stays on it). Credentials libgit2 sends (basic auth, the bearer header) pass
//!   through as they are; they cross loopback in plain text.
//! - A request the gateway cannot make (refused TLS, unreachable remote, a proxy that says
//!   no) is answered 502, and why is kept for [`Gateway::failure`]: that reason, not
//!   libgit2's "unexpected http status code: 502", is what the user is told.

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;

use super::proxy::Proxy;

/// Headers of one connection, never forwarded (RFC 9110 section 7.6.1), plus `Host`, which
/// the client sets for the remote.
const HOP_BY_HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::HOST,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// How long past its operation's deadline a gateway keeps serving, at most.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The gateway of one operation; stops when dropped, or at the operation's deadline.
pub(super) struct Gateway {
    /// `http://127.0.0.1:<port>/<token>`: what libgit2 is given in place of `origin`.
    local: String,
    /// `scheme://host[:port]` of the remote.
    origin: String,
    failure: Arc<Mutex<Option<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Forward {
    origin: String,
    local: String,
    prefix: String,
    host: String,
    /// `host:port` of the proxy, when tunnelling through one.
    proxy: Option<String>,
    client: Upstream,
    failure: Arc<Mutex<Option<String>>>,
}

/// The client to the remote: direct, or tunnelled through a proxy with CONNECT.
enum Upstream {
    Direct(Client<HttpsConnector<HttpConnector>, Body>),
    Proxied(Client<HttpsConnector<Tunnel<HttpConnector>>, Body>),
}

impl Gateway {
    /// Start a gateway to `origin` (`https://host[:port]` or `http://...`), with `tls` for
    /// https and through `proxy` when given.
    pub(super) fn start(
        origin: &str,
        host: &str,
        tls: rustls::ClientConfig,
        proxy: Option<&Proxy>,
        deadline: std::time::Instant,
    ) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on loopback: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| format!("no randomness for the gateway's token: {e}"))?;
        let prefix = format!("/{}", hex::encode(token));
        let local = format!("http://127.0.0.1:{port}{prefix}");
        let failure = Arc::new(Mutex::new(None));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let tls_for = |config: rustls::ClientConfig| {
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1()
        };
        let client = match proxy {
            None => Upstream::Direct(Client::builder(TokioExecutor::new()).build(tls_for(tls).wrap_connector(http))),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.authorization() {
                    tunnel = tunnel.with_auth(auth);
                }
                Upstream::Proxied(Client::builder(TokioExecutor::new()).build(tls_for(tls).wrap_connector(tunnel)))
            }
        };
        let state = Arc::new(Forward {
            origin: origin.to_string(),
            local: local.clone(),
            prefix,
            host: host.to_string(),
            proxy: proxy.map(|p| p.address().to_string()),
            client,
            failure: failure.clone(),
        });
        std::thread::Builder::new()
            .name("driftless-git-gateway".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let app = axum::Router::new().fallback(forward).with_state(state);
                    // Stopped when the operation is over, or at its deadline (plus a grace)
                    // if it was abandoned: dropping the runtime then closes every connection,
                    // so a libgit2 call still waiting on a silent remote ends too.
                    let until = tokio::time::Instant::from_std(deadline + STOP_GRACE);
                    tokio::select! {
                        served = axum::serve(listener, app) => {
                            if let Err(e) = served {
                                tracing::debug!("git gateway stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                });
            })
            .map_err(|e| format!("cannot start the gateway thread: {e}"))?;
        Ok(Gateway { local, origin: origin.to_string(), failure, stop: Some(stop) })
    }

    /// `url` (on the remote's origin) as libgit2 must be given it: on the gateway, with the
    /// URL's user info (libgit2 reads credentials from it) kept.
    pub(super) fn local_url(&self, url: &str) -> String {
        match split_url(url) {
            Some((_, userinfo, _, path)) => {
                let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
                format!("http://{userinfo}{}{path}", self.local.trim_start_matches("http://"))
            }
            None => url.to_string(),
        }
    }

    /// A message of libgit2's with the gateway's address put back to the remote's.
    pub(super) fn unmap(&self, message: &str) -> String {
        let local_authority = self.local.trim_start_matches("http://");
        let origin_authority = self.origin.split_once("://").map_or(self.origin.as_str(), |(_, a)| a);
        message.replace(&self.local, &self.origin).replace(local_authority, origin_authority)
    }

    /// Why the last request the gateway could not make failed, if one did.
    pub(super) fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn forward(State(state): State<Arc<Forward>>, request: Request) -> Response {
    let target = request.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let Some(rest) = target.strip_prefix(&state.prefix).filter(|r| r.starts_with('/')) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(uri) = format!("{}{rest}", state.origin).parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    strip_hop_by_hop(&mut parts.headers);
    let upstream = Request::from_parts(parts, body);
    let sent = match &state.client {
        Upstream::Direct(client) => client.request(upstream).await,
        Upstream::Proxied(client) => client.request(upstream).await,
    };
    match sent {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(location) = parts.headers.get(header::LOCATION).and_then(|l| l.to_str().ok())
                && let Some(rest) = location.strip_prefix(&state.origin)
                && let Ok(rewritten) = HeaderValue::from_str(&format!("{}{rest}", state.local))
            {
                parts.headers.insert(header::LOCATION, rewritten);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            let why = describe(&e, &state.host, state.proxy.as_deref());
            tracing::debug!(origin = %state.origin, error = %why, "git gateway request failed");
            *state.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}

/// Why a request failed: the proxy's answer when tunnelling (hyper-util's tunnel errors are
/// known by their text only), else what TLS or the connection says.
fn describe(error: &(dyn std::error::Error + 'static), host: &str, proxy: Option<&str>) -> String {
    if let Some(proxy) = proxy {
        let chain = super::tls::chain_text(error);
        if chain.contains("tunnel error: proxy authorization required") {
            return format!(
                "the proxy {proxy} asks for credentials (407): set or fix username and password in the Secret of spec.proxySecretRef"
            );
        }
        if chain.contains("tunnel error: unsuccessful") {
            return format!("the proxy {proxy} refused to open a tunnel (CONNECT) to {host}");
        }
        if chain.contains("tunnel error: failed to create underlying connection") {
            return format!("cannot reach the proxy {proxy}: {chain}");
        }
    }
    super::tls::describe_failure(error, host)
}

/// `scheme://[userinfo@]authority/path` -> (scheme, userinfo, authority, path).
pub(super) fn split_url(url: &str) -> Option<(&str, Option<&str>, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find('/').unwrap_or(after.len());
    let (authority, path) = after.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => Some((scheme, Some(userinfo), host, path)),
        None => Some((scheme, None, authority, path)),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        assert_eq!(
            split_url("https://u:p@git.example.com:8443/org/repo.git"),
            Some(("https", Some("u:p"), "git.example.com:8443", "/org/repo.git"))
        );
        assert_eq!(split_url("https://git.example.com"), Some(("https", None, "git.example.com", "")));
        assert_eq!(split_url("no scheme"), None);
    }

    #[test]
    fn libgit2_is_given_the_gateway_and_messages_get_the_remote_back() {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let gateway = Gateway::start("https://git.example.com", "git.example.com", tls, None, deadline).expect("gateway");
        let local = gateway.local_url("https://flux@git.example.com/org/repo.git");
        assert!(local.starts_with("http://flux@127.0.0.1:") && local.ends_with("/org/repo.git"), "{local}");
        let token = gateway.local.rsplit('/').next().expect("token");
        assert_eq!(token.len(), 32, "{local}");
        let message = format!("failed to connect to {}", gateway.local_url("https://git.example.com/org/repo.git"));
        assert_eq!(gateway.unmap(&message), "failed to connect to https://git.example.com/org/repo.git");
    }
}
