//! The review page: every Terraform and Kustomization with its state, pending plan and
//! drift, and the three things a reviewer does (approve a plan, acknowledge a drift, ask for
//! a reconcile) as annotations on the object, the same ones the CLI sets.
//!
//! One implementation serves both places objects live, generic over a [`Host`]: `driftless
//! review` on a local store (this process then reconciles what was acted on, since nothing
//! else would) and `driftless controller --review-addr` on a cluster (the controller notices
//! the annotation). Who may do what is [`auth`]'s business; pages are rendered on the server
//! with every interpolated string escaped ([`html::escape`]), plus one small script that
//! keeps the overview live by polling `/api/objects`.
//!
//! Guarantees: nothing is rendered that status and the stored plan renderings do not hold
//! (they carry field paths and masked values only; no Secret but a plan's rendering is
//! read, and that only for a caller who may `get` Secrets in the object's namespace, since
//! it is read with the controller's rights); an approval names the exact plan id the reviewer saw and is refused (409) when
//! that plan is no longer the one waiting; every response carries a `default-src 'self'`
//! CSP, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` and `Cache-Control:
//! no-store`. (Not `no-referrer`: under it a browser sends `Origin: null` even with a
//! same-origin form, and the origin check would refuse every click.)

mod actions;
mod auth;
mod cache;
mod html;
mod model;
mod pages;
mod snapshot;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State as AxumState};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::Instrument;

pub use auth::Caller;
pub use model::{Filters, Kind, Object, Row, State, state_of};

use crate::store::ObjectStore;

/// Why the review server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(
        "{0} is not a loopback address: a local review page acts with the store's rights and must not be reachable from the network; use 127.0.0.1:PORT (the controller serves a cluster's page with --review-addr)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot read random bytes for the login token: {0}")]
    Random(std::io::Error),
    #[error("serving the review page: {0}")]
    Serve(std::io::Error),
}

/// A stored plan's readable rendering, as the reconciler left it for reviewers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanRendering {
    Text(String),
    /// The plan is no longer stored (superseded and pruned), or none was stored for this id.
    Missing,
    /// The backend could not be read; why.
    Unreadable(String),
}

/// Where the reviewed objects live, and what happens after an action there.
pub trait Host: Send + Sync + 'static {
    type Store: ObjectStore + 'static;

    fn store(&self) -> &Self::Store;

    /// The rendering of plan `plan_id` of an object: the one `driftless plan show` prints.
    fn plan_rendering(&self, kind: Kind, namespace: &str, name: &str, plan_id: &str) -> impl Future<Output = PlanRendering> + Send;

    /// An action annotated this object. A local store reconciles it now (nothing else
    /// would); a cluster's controller notices the annotation by itself.
    fn after_action(&self, kind: Kind, namespace: &str, name: &str);
}

/// How callers are authenticated.
pub enum Access {
    /// A local store: a one-time login token (see [`login_token`]).
    Local { token: String },
    /// A cluster: TokenReview and SubjectAccessReview through this client.
    Cluster(kube::Client),
}

/// A fresh login token for [`Access::Local`]: 32 hex digits from the kernel's random source.
///
/// # Errors
/// When the random source cannot be read.
pub fn login_token() -> Result<String, ReviewError> {
    auth::random_hex(16)
}

/// The page of one object, relative to the server's base URL: what events and alerts link to.
pub fn object_path(kind: Kind, namespace: &str, name: &str) -> String {
    crate::api::object_path(kind, namespace, name)
}

/// The local login link for a server bound to `addr`.
pub fn login_url(addr: SocketAddr, token: &str) -> String {
    format!("http://{addr}/login?token={token}")
}

/// What every handler shares.
pub(crate) struct App<H> {
    host: Arc<H>,
    auth: auth::Auth,
    snapshots: snapshot::Snapshots,
}

/// The routes, without a listener.
pub fn router<H: Host>(host: Arc<H>, access: Access) -> Router {
    let auth = match access {
        Access::Local { token } => auth::Auth::local(token),
        Access::Cluster(client) => auth::Auth::cluster(client),
    };
    let app = Arc::new(App { host, auth, snapshots: snapshot::Snapshots::default() });
    Router::new()
        .route("/", get(pages::overview::<H>))
        .route("/api/objects", get(pages::api_objects::<H>))
        .route("/objects/{kind}/{namespace}/{name}", get(pages::object::<H>))
        .route("/objects/{kind}/{namespace}/{name}/approve", post(actions::approve::<H>))
        .route("/objects/{kind}/{namespace}/{name}/acknowledge", post(actions::acknowledge::<H>))
        .route("/objects/{kind}/{namespace}/{name}/reconcile", post(actions::reconcile::<H>))
        .route("/login", get(pages::login_page::<H>).post(pages::login_form::<H>))
        .route("/logout", post(pages::logout::<H>))
        .route("/assets/review.css", get(pages::css))
        .route("/assets/review.js", get(pages::js))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), around::<H>))
        .with_state(app)
}

/// Serves the review page on `listener` until `shutdown` completes.
///
/// # Errors
/// When serving fails at the socket level.
pub async fn serve<H: Host>(
    listener: tokio::net::TcpListener,
    host: Arc<H>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ReviewError> {
    // The peer address is the client whose failed logins are counted.
    let service = router(host, access).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await.map_err(ReviewError::Serve)
}

/// Binds a local review page: loopback addresses only.
///
/// # Errors
/// A non-loopback address, or one that cannot be bound.
pub async fn bind_local(addr: SocketAddr) -> Result<tokio::net::TcpListener, ReviewError> {
    if !addr.ip().is_loopback() {
        return Err(ReviewError::NotLoopback(addr));
    }
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ReviewError::Listen { addr, source })
}

/// Around every request: a span, the loopback check of local mode, the security headers, and
/// a `Server-Timing` header (the benchmark reads it). The query string is never logged: the
/// login link carries its token there.
async fn around<H: Host>(AxumState(app): AxumState<Arc<App<H>>>, request: Request, next: Next) -> Response {
    let span = tracing::info_span!("review", method = %request.method(), path = %request.uri().path(), status = tracing::field::Empty);
    let started = Instant::now();
    let mut response = if app.auth.is_local() && !auth::loopback_host(request.headers()) {
        Problem::new(StatusCode::FORBIDDEN, "a local review page answers only on its loopback address").into_response()
    } else {
        next.run(request).instrument(span.clone()).await
    };
    span.record("status", response.status().as_u16());
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Same-origin requests keep their Origin (the CSRF check needs it); other sites
        // still get neither a Referer nor an Origin of this page.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        headers.insert("server-timing", v);
    }
    tracing::debug!(parent: &span, elapsed_ms = ms, "served");
    response
}

impl<H: Host> FromRequestParts<Arc<App<H>>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<H>>) -> Result<Self, Problem> {
        let api = parts.uri.path().starts_with("/api/");
        let client = crate::throttle::peer(&parts.extensions);
        app.auth.caller(&parts.headers, client).await.map_err(|p| if api { p.json() } else { p })
    }
}

/// An error answer: a status and a message saying what happened and what to do. Pages get
/// a small HTML page with the message in `#flash`; `/api/` gets `{"error": ...}`.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub message: String,
    json: bool,
    /// Link to the token login form (cluster mode's 401).
    login: bool,
    /// Seconds to wait before trying again (a 429's `Retry-After`).
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), json: false, login: false, retry_after: None }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    fn json(mut self) -> Self {
        self.json = true;
        self
    }

    fn login(mut self, form: bool) -> Self {
        self.login = form;
        self
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("review page: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))
    }

    fn unavailable(message: String) -> Self {
        tracing::warn!("review page: {message}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    fn store(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            other => Self::unavailable(format!("the object store failed: {other}")),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = if self.json {
            let body = serde_json::json!({ "error": self.message }).to_string();
            (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        } else {
            (self.status, axum::response::Html(pages::problem_page(&self.message, self.status, self.login))).into_response()
        };
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
