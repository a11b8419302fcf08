//! Where objects live: a Kubernetes cluster, or a local directory (`--store DIR`). The
//! reconcilers see one interface, so local mode is the same product, not a demo path.

mod events;
pub mod kube;
mod local;

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::kube::KubeStore;
pub use events::{Event, EventLog, EventTap, Notice, Severity};
pub use local::LocalStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {namespace}/{name} not found")]
    NotFound { kind: String, namespace: String, name: String },
    #[error("store I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid {kind}: {reason}")]
    Decode { path: String, kind: String, reason: String },
    #[error("cannot encode {kind}: {reason}")]
    Encode { kind: String, reason: String },
    #[error("{kind} {namespace}/{name}: the Kubernetes API refused: {reason}")]
    Api { kind: String, namespace: String, name: String, reason: String },
    #[error("no driftless store at {0}; create one with `driftless --store {0} apply -f FILE`")]
    NoStore(String),
}

/// A kind the store can hold: any Kubernetes resource type with serde.
pub trait StoredObject: ::kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<K> StoredObject for K where K: ::kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

pub trait ObjectStore: Send + Sync {
    fn get<K: StoredObject>(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<K>>> + Send;
    fn list<K: StoredObject>(&self) -> impl Future<Output = Result<Vec<K>>> + Send;
    /// The objects of one namespace. A cluster asks for that namespace only, so a user whose
    /// rights end at a namespace can still list it.
    fn list_in<K: StoredObject>(&self, namespace: &str) -> impl Future<Output = Result<Vec<K>>> + Send {
        async move {
            let mut all: Vec<K> = self.list().await?;
            all.retain(|o| o.meta().namespace.as_deref().unwrap_or("default") == namespace);
            Ok(all)
        }
    }
    /// Creates or updates the object's metadata and spec; status is kept. Returns it as stored.
    fn apply<K: StoredObject>(&self, object: &K) -> impl Future<Output = Result<K>> + Send;
    /// Read-modify-write under the store's lock (status writes, annotations). `mutate` may run
    /// more than once: a cluster retries it on a conflicting write.
    fn update<K: StoredObject>(
        &self,
        namespace: &str,
        name: &str,
        mutate: impl FnMut(&mut K) + Send,
    ) -> impl Future<Output = Result<K>> + Send;
    fn delete<K: StoredObject>(&self, namespace: &str, name: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Makes deletion of `object` wait for its cleanup (a cluster's finalizer). A local store
    /// deletes through the reconciler, so it needs none.
    fn ensure_finalizer<K: StoredObject>(&self, object: &K) -> impl Future<Output = Result<()>> + Send {
        let _ = object;
        async { Ok(()) }
    }
}

/// Sets (`Some`) or removes (`None`) annotations of one object in a single read-modify-write:
/// how the CLI and the review page ask for an approval, an acknowledgement or a reconcile,
/// so the reconcilers see one kind of request whoever made it. Returns the object as stored.
///
/// # Errors
/// [`StoreError::NotFound`] when there is no such object; the store's own errors otherwise.
pub async fn annotate<K: StoredObject, S: ObjectStore>(
    store: &S,
    namespace: &str,
    name: &str,
    changes: &[(&str, Option<&str>)],
) -> Result<K> {
    store
        .update::<K>(namespace, name, |o| {
            let annotations = o.meta_mut().annotations.get_or_insert_with(Default::default);
            for (key, value) in changes {
                match value {
                    Some(v) => {
                        annotations.insert((*key).to_string(), (*v).to_string());
                    }
                    None => {
                        annotations.remove(*key);
                    }
                }
            }
        })
        .await
}
