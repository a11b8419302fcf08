//! The controller's HTTP endpoint, scraped by Prometheus and probed by the kubelet:
//! `GET /metrics`, `GET /healthz`, `GET /readyz`.
//!
//! Why liveness and readiness differ: `/healthz` answers 200 as long as the process serves
//! HTTP, so the kubelet restarts only a wedged process. `/readyz` answers 200 only once the
//! controller said it is ready (caches synced, and leading or a healthy standby), so a
//! rollout waits for the new pod before it stops the old one.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Whether the controller is ready, and why not. Cheap to clone; all clones share one flag.
/// Starts not ready ("starting").
#[derive(Clone, Debug)]
pub struct Readiness {
    /// `None` when ready, else why not.
    not_ready: Arc<Mutex<Option<String>>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// Not ready yet, reason "starting".
    pub fn new() -> Self {
        Self { not_ready: Arc::new(Mutex::new(Some("starting".to_owned()))) }
    }

    /// Ready: `/readyz` answers 200.
    pub fn set_ready(&self) {
        *self.lock() = None;
    }

    /// Not ready: `/readyz` answers 503 with `reason` (one short line, e.g. "waiting for
    /// caches to sync").
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.lock().is_none()
    }

    /// Why not ready, or `None` when ready.
    pub fn reason(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The value is a plain flag; a panic while it was held cannot leave it half-written.
        self.not_ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct Endpoints {
    metrics: Metrics,
    readiness: Readiness,
}

/// The routes, without a listener (for [`serve`] and tests).
fn router(metrics: Metrics, readiness: Readiness) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { metrics, readiness })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` completes,
/// then stops accepting connections and waits for the requests in progress.
///
/// # Errors
/// When accepting or serving fails at the socket level.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, readiness)).with_graceful_shutdown(shutdown).await
}

async fn metrics_text(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed\n").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.readiness.reason() {
        None => "ok\n".into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_starts_not_ready_and_is_shared_by_clones() {
        let readiness = Readiness::new();
        assert_eq!(readiness.reason().as_deref(), Some("starting"));
        let clone = readiness.clone();
        clone.set_ready();
        assert!(readiness.is_ready());
        clone.set_not_ready("leadership lost");
        assert_eq!(readiness.reason().as_deref(), Some("leadership lost"));
    }
}
