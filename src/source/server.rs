//! The artifact server: runner pods download source artifacts from the controller over
//! HTTP, as Flux's source-controller serves them, so a pod needs no access to Git, buckets
//! or the controller's disk.
//!
//! # Guarantees
//! - Paths are the store's content-addressed paths (`<kind>/<namespace>/<name>/<sha256>.tar.gz`);
//!   anything else is 404, and `..` never leaves the store.
//! - Only artifacts of sources that still exist are served: a deleted source's artifacts are
//!   gone from the API at once, whatever is still on disk.
//! - Every response carries the digest (`X-Artifact-Digest: sha256:<hex>`) and, for the
//!   source's current artifact, its revision (`X-Artifact-Revision`). The runner checks the
//!   bytes against the digest its RunSpec names, so a wrong or truncated download is never
//!   unpacked.
//! - A download needs a URL signed for a run ([`super::access`]): the unsigned URL in a
//!   source's status is answered 403, so reading an object's status gives no access to its
//!   content, and artifact URLs in messages carry no token.
//! - Files are streamed, never read whole into memory, and at most [`MAX_DOWNLOADS`] at a
//!   time; a download that waits longer than [`QUEUE_WAIT`] for its turn is answered 503
//!   with `Retry-After` (the runner retries), so parallel runs cannot exhaust the
//!   controller's memory.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ArtifactStore;
use super::access::ArtifactAccess;
use crate::api::{Kind, Reconciled, StatusModel};
use crate::store::ObjectStore;

pub const DIGEST_HEADER: &str = "x-artifact-digest";
pub const REVISION_HEADER: &str = "x-artifact-revision";
/// Downloads streamed at once; more wait for a turn.
pub const MAX_DOWNLOADS: usize = 8;
/// How long a download waits for its turn before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(20);

struct Shared<S> {
    artifacts: ArtifactStore,
    store: S,
    access: ArtifactAccess,
    turns: Arc<tokio::sync::Semaphore>,
}

/// The router serving `GET /<kind>/<namespace>/<name>/<file>?expires=..&token=..`.
pub fn router<S: ObjectStore + Clone + 'static>(artifacts: ArtifactStore, store: S, access: ArtifactAccess) -> axum::Router {
    let turns = Arc::new(tokio::sync::Semaphore::new(MAX_DOWNLOADS));
    axum::Router::new().route("/{kind}/{namespace}/{name}/{file}", axum::routing::get(artifact::<S>)).with_state(Arc::new(Shared {
        artifacts,
        store,
        access,
        turns,
    }))
}

/// Serves until `shutdown` resolves.
pub async fn serve<S: ObjectStore + Clone + 'static>(
    listener: tokio::net::TcpListener,
    artifacts: ArtifactStore,
    store: S,
    access: ArtifactAccess,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(artifacts, store, access)).with_graceful_shutdown(shutdown).await
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

async fn artifact<S: ObjectStore + Clone + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    Path((kind, namespace, name, file)): Path<(String, String, String, String)>,
    uri: Uri,
) -> Response {
    let Some(hex) = file.strip_suffix(".tar.gz").filter(|h| super::parse_digest(h).is_ok()) else {
        return not_found("not an artifact path");
    };
    let path = format!("{kind}/{namespace}/{name}/{file}");
    if let Err(denied) = shared.access.check(&path, uri.query(), SystemTime::now()) {
        return (StatusCode::FORBIDDEN, format!("{denied}\n")).into_response();
    }
    let Some(source) = Kind::from_api(&kind).filter(|k| k.is_source()) else {
        return not_found("unknown source kind");
    };
    let status = crate::with_reconciled_kind!(source, K => shared.store.get::<K>(&namespace, &name).await.map(|o| o.map(|o| o.status().and_then(|s| s.artifact()).cloned())), _ => Ok(None));
    let current = match status {
        Ok(Some(artifact)) => artifact,
        Ok(None) => return not_found(&format!("{kind} {namespace}/{name} does not exist")),
        Err(e) => {
            tracing::warn!("artifact server cannot read {kind} {namespace}/{name}: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "cannot read the source object\n").into_response();
        }
    };
    let local = match shared.artifacts.local_path(&path) {
        Ok(p) => p,
        Err(_) => return not_found("not an artifact path"),
    };
    let file_handle = match tokio::fs::File::open(&local).await {
        Ok(f) => f,
        Err(_) => return not_found(&format!("no artifact {file} for {kind} {namespace}/{name}")),
    };
    let length = file_handle.metadata().await.map(|m| m.len()).ok();
    let Ok(Ok(turn)) = tokio::time::timeout(QUEUE_WAIT, shared.turns.clone().acquire_owned()).await else {
        let mut busy = (StatusCode::SERVICE_UNAVAILABLE, "too many artifact downloads at once; retry shortly\n").into_response();
        busy.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return busy;
    };
    // The turn is held by the body stream: given back when the last byte is sent or the
    // client goes away.
    let stream = futures::StreamExt::map(tokio_util::io::ReaderStream::new(file_handle), move |chunk| {
        let _held = &turn;
        chunk
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("sha256:{hex}")) {
        headers.insert(DIGEST_HEADER, v);
    }
    if let Some(revision) = current.as_ref().filter(|a| a.path == path).map(|a| a.revision.clone())
        && let Ok(v) = HeaderValue::from_str(&revision)
    {
        headers.insert(REVISION_HEADER, v);
    }
    response
}
