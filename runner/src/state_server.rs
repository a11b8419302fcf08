//! A loopback HTTP server speaking terraform's `http` backend protocol over a `StateStore`,
//! so every store gets the same locking and terraform never needs the store's credentials.
//!
//! Guarantees: it listens on 127.0.0.1 only, serves one state, and remembers the locks it
//! granted so a terraform killed mid-run leaves no lock behind.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use driftless_core::backend::{BackendError, LockInfo, StateKey, StateStore};

struct Shared<S> {
    store: S,
    key: StateKey,
    granted: Mutex<Vec<String>>,
    /// The holder of a lock terraform was refused, for the run's error report.
    refused_by: Mutex<Option<LockInfo>>,
    failure: Mutex<Option<String>>,
}

pub struct StateServer<S: StateStore> {
    shared: Arc<Shared<S>>,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S: StateStore> StateServer<S> {
    /// Starts on a random loopback address, or on `at` (the address a saved plan recorded:
    /// terraform applies a saved plan with the backend address the plan was made with).
    pub async fn start(store: S, key: StateKey, at: Option<SocketAddr>) -> std::io::Result<Self> {
        let shared =
            Arc::new(Shared { store, key, granted: Mutex::new(Vec::new()), refused_by: Mutex::new(None), failure: Mutex::new(None) });
        let listener = match at {
            Some(addr) => tokio::net::TcpListener::bind(addr).await?,
            None => bind_random_loopback().await?,
        };
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback({
            let shared = shared.clone();
            move |req: Request<Body>| handle(shared.clone(), req)
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("state server stopped: {e}");
            }
        });
        Ok(Self { shared, addr, shutdown: Some(tx), task })
    }

    /// The `terraform { backend "http" {} }` block pointing at this server.
    pub fn backend_block(&self) -> String {
        let base = format!("http://{}", self.addr);
        format!(
            "terraform {{\n  backend \"http\" {{\n    address        = \"{base}/state\"\n    lock_address   = \"{base}/lock\"\n    unlock_address = \"{base}/lock\"\n    lock_method    = \"LOCK\"\n    unlock_method  = \"UNLOCK\"\n    retry_max      = 2\n  }}\n}}\n"
        )
    }

    pub fn refused_by(&self) -> Option<LockInfo> {
        self.shared.refused_by.lock().ok().and_then(|g| g.clone())
    }

    /// The lock terraform took and has not released (its unlock failed, or it was killed):
    /// what a write on its behalf goes under before [`StateServer::stop`] releases it.
    pub fn held_lock(&self) -> Option<String> {
        self.shared.granted.lock().ok().and_then(|g| g.last().cloned())
    }

    /// A store error terraform only saw as an HTTP 500.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|g| g.clone())
    }

    /// Stops serving, finishes the store's pending work, and releases any lock this run
    /// still holds.
    pub async fn stop(mut self) {
        if let Err(e) = self.shared.store.flush().await {
            tracing::warn!("state backend of {} could not finish: {e}", self.shared.key);
        }
        let leftover: Vec<String> = self.shared.granted.lock().map(|g| g.clone()).unwrap_or_default();
        for id in leftover {
            if let Err(e) = self.shared.store.unlock(&self.shared.key, &id).await {
                tracing::warn!("could not release lock {id} of {}: {e}", self.shared.key);
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A random address in 127.0.0.0/8 with a kernel-chosen port: the address a later apply
/// must bind again, so it should be one nothing else is likely to hold by then.
async fn bind_random_loopback() -> std::io::Result<tokio::net::TcpListener> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let r = h.finish().to_le_bytes();
        let ip = std::net::Ipv4Addr::new(127, r[0].max(1), r[1], r[2].clamp(2, 254));
        if let Ok(l) = tokio::net::TcpListener::bind((ip, 0)).await {
            return Ok(l);
        }
    }
    tokio::net::TcpListener::bind(("127.0.0.1", 0)).await
}

async fn handle<S: StateStore>(shared: Arc<Shared<S>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 512 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let query_id = parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ID="))).map(|s| s.to_string());
    let key = &shared.key;
    let result: Result<Response, BackendError> = match (parts.uri.path(), parts.method.as_str()) {
        ("/state", "GET") => shared.store.get(key).await.map(|state| match state {
            Some(bytes) => (StatusCode::OK, bytes).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        }),
        ("/state", "POST") => shared.store.put(key, &body, query_id.as_deref()).await.map(|_| StatusCode::OK.into_response()),
        ("/state", "DELETE") => shared.store.delete(key).await.map(|_| StatusCode::OK.into_response()),
        ("/lock", "LOCK") => {
            let info: LockInfo = match serde_json::from_slice(&body) {
                Ok(i) => i,
                Err(_) => return StatusCode::BAD_REQUEST.into_response(),
            };
            match shared.store.lock(key, &info).await {
                Ok(()) => {
                    if let Ok(mut g) = shared.granted.lock() {
                        g.push(info.id.clone());
                    }
                    Ok(StatusCode::OK.into_response())
                }
                Err(BackendError::Locked { holder, .. }) => {
                    let body = serde_json::to_vec(&*holder).unwrap_or_default();
                    if let Ok(mut g) = shared.refused_by.lock() {
                        *g = Some(*holder);
                    }
                    Ok((StatusCode::LOCKED, body).into_response())
                }
                Err(e) => Err(e),
            }
        }
        ("/lock", "UNLOCK") => {
            // Pending work of this run's writes (S3's history copies) finishes while the
            // lock still keeps other writers out.
            if let Err(e) = shared.store.flush().await {
                tracing::warn!("state backend of {key} could not finish before unlock: {e}");
            }
            let id = serde_json::from_slice::<LockInfo>(&body).map(|i| i.id).unwrap_or_default();
            shared.store.unlock(key, &id).await.map(|_| {
                if let Ok(mut g) = shared.granted.lock() {
                    g.retain(|x| x != &id);
                }
                StatusCode::OK.into_response()
            })
        }
        _ => Ok((StatusCode::METHOD_NOT_ALLOWED, format!("{} {} is not part of the state protocol", parts.method, parts.uri.path()))
            .into_response()),
    };
    match result {
        Ok(r) => r,
        Err(BackendError::LockMismatch { .. }) => StatusCode::CONFLICT.into_response(),
        Err(e) => {
            tracing::error!("state backend error: {e}");
            if let Ok(mut g) = shared.failure.lock() {
                *g = Some(e.to_string());
            }
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}
