//! The cluster store: the same `ObjectStore` the reconcilers use on a local directory, over
//! the Kubernetes API. Objects go through `DynamicObject` so one generic code path serves
//! every kind (namespaced CRDs, Secrets, ConfigMaps) without a scope bound per call site.
//!
//! Guarantees: `apply` is server-side apply with the `driftless` field manager; `update`
//! is an optimistic read-modify-write (retried on conflict), writing status through the
//! status subresource and metadata/spec through the object, so status never bumps the
//! generation; `delete` of an object that carries driftless's finalizer also drops the
//! finalizer, so "delete" means "let it go" whether or not the API kept it for us; of an
//! object already being deleted it only drops the finalizer (no DELETE: the controller may
//! not delete users' objects, and the API server completes the deletion they asked for).

use std::time::Duration;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::{ObjectStore, Result, StoreError, StoredObject};

/// The field manager of everything driftless writes.
pub const FIELD_MANAGER: &str = "driftless";
/// Held on Terraform (and source) objects so deletion waits for their cleanup.
pub use driftless_core::names::FINALIZER;

/// How many times a conflicting `update` is retried before giving up.
const CONFLICT_RETRIES: usize = 8;
/// Backoff between writes refused by a transient server error (500s, 429): the first
/// waits, doubling, cover about 10 s, so a blip of the API server does not lose a run's
/// recorded result (the next reconcile would see the applied changes as "no changes").
const TRANSIENT_BACKOFF: [Duration; 6] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
    Duration::from_millis(3200),
    Duration::from_millis(4000),
];

/// An answer worth trying again: the server is overloaded, restarting or timing out.
fn is_transient(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 429 || s.code >= 500)
}

#[derive(Clone)]
pub struct KubeStore {
    client: kube::Client,
}

impl KubeStore {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn api<K: StoredObject>(&self, namespace: &str) -> (Api<DynamicObject>, ApiResource) {
        let resource = ApiResource::erase::<K>(&());
        (Api::namespaced_with(self.client.clone(), namespace, &resource), resource)
    }
}

fn kind<K: StoredObject>() -> String {
    K::kind(&()).to_string()
}

fn api_error<K: StoredObject>(namespace: &str, name: &str, e: kube::Error) -> StoreError {
    StoreError::Api { kind: kind::<K>(), namespace: namespace.to_string(), name: name.to_string(), reason: describe(&e) }
}

pub use driftless_core::error::describe;

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn decode<K: StoredObject>(object: DynamicObject) -> Result<K> {
    let name = object.metadata.name.clone().unwrap_or_default();
    serde_json::to_value(object).and_then(serde_json::from_value).map_err(|e| StoreError::Decode {
        path: name,
        kind: kind::<K>(),
        reason: e.to_string(),
    })
}

fn encode<K: StoredObject>(object: &K) -> Result<DynamicObject> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| StoreError::Encode { kind: kind::<K>(), reason: e.to_string() })
}

/// The parts of an object `update` writes through the main resource (not status).
fn body_of(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for server_owned in ["resourceVersion", "managedFields", "generation"] {
                m.remove(server_owned);
            }
        }
    }
    v
}

impl ObjectStore for KubeStore {
    async fn get<K: StoredObject>(&self, namespace: &str, name: &str) -> Result<Option<K>> {
        let (api, _) = self.api::<K>(namespace);
        match api.get_opt(name).await {
            Ok(Some(o)) => decode(o).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(api_error::<K>(namespace, name, e)),
        }
    }

    async fn list<K: StoredObject>(&self) -> Result<Vec<K>> {
        let resource = ApiResource::erase::<K>(&());
        list_sorted(Api::all_with(self.client.clone(), &resource), "*").await
    }

    async fn list_in<K: StoredObject>(&self, namespace: &str) -> Result<Vec<K>> {
        let (api, _) = self.api::<K>(namespace);
        list_sorted(api, namespace).await
    }

    async fn apply<K: StoredObject>(&self, object: &K) -> Result<K> {
        let meta = object.meta();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = meta.name.clone().unwrap_or_default();
        let (api, resource) = self.api::<K>(&namespace);
        let mut body = serde_json::to_value(object).map_err(|e| StoreError::Encode { kind: kind::<K>(), reason: e.to_string() })?;
        if let Some(o) = body.as_object_mut() {
            o.remove("status");
            o.insert("apiVersion".into(), Value::String(resource.api_version.clone()));
            o.insert("kind".into(), Value::String(resource.kind.clone()));
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                for server_owned in ["resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"] {
                    m.remove(server_owned);
                }
                m.insert("namespace".into(), Value::String(namespace.clone()));
            }
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api.patch(&name, &params, &Patch::Apply(&body)).await.map_err(|e| api_error::<K>(&namespace, &name, e))?;
        decode(applied)
    }

    async fn update<K: StoredObject>(&self, namespace: &str, name: &str, mut mutate: impl FnMut(&mut K) + Send) -> Result<K> {
        let (api, _) = self.api::<K>(namespace);
        let not_found = || StoreError::NotFound { kind: kind::<K>(), namespace: namespace.into(), name: name.into() };
        let mut transient = TRANSIENT_BACKOFF.iter();
        let mut attempt = 0;
        while attempt < CONFLICT_RETRIES {
            attempt += 1;
            let Some(current) = api.get_opt(name).await.map_err(|e| api_error::<K>(namespace, name, e))? else {
                return Err(not_found());
            };
            let before = serde_json::to_value(&current).map_err(|e| StoreError::Encode { kind: kind::<K>(), reason: e.to_string() })?;
            let mut object: K = decode(current.clone())?;
            mutate(&mut object);
            let mut wanted = encode(&object)?;
            wanted.metadata.resource_version = current.metadata.resource_version.clone();
            let after = serde_json::to_value(&wanted).map_err(|e| StoreError::Encode { kind: kind::<K>(), reason: e.to_string() })?;
            let written: std::result::Result<DynamicObject, kube::Error> = async {
                let mut stored = current;
                if body_of(&before) != body_of(&after) {
                    stored = api.replace(name, &PostParams::default(), &wanted).await?;
                }
                if before.get("status") != after.get("status") {
                    let mut with_status = stored.clone();
                    if let (Value::Object(data), Some(status)) = (&mut with_status.data, after.get("status")) {
                        data.insert("status".into(), status.clone());
                    }
                    stored = api.replace_status(name, &PostParams::default(), &with_status).await?;
                }
                Ok(stored)
            }
            .await;
            match written {
                Ok(stored) => return decode(stored),
                Err(e) if is_status(&e, 409) && attempt < CONFLICT_RETRIES => continue,
                Err(e) if is_transient(&e) => match transient.next() {
                    Some(wait) => {
                        tracing::debug!(%namespace, %name, "write refused ({}); retrying in {wait:?}", describe(&e));
                        // A transient refusal is not a conflict: it does not use up those tries.
                        attempt -= 1;
                        tokio::time::sleep(*wait).await;
                    }
                    None => return Err(api_error::<K>(namespace, name, e)),
                },
                Err(e) if is_status(&e, 404) => return Err(not_found()),
                Err(e) => return Err(api_error::<K>(namespace, name, e)),
            }
        }
        Err(not_found())
    }

    async fn delete<K: StoredObject>(&self, namespace: &str, name: &str) -> Result<bool> {
        let (api, _) = self.api::<K>(namespace);
        let Some(current) = api.get_opt(name).await.map_err(|e| api_error::<K>(namespace, name, e))? else {
            return Ok(false);
        };
        if current.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == FINALIZER)) {
            remove_finalizer(&api, &current).await.map_err(|e| api_error::<K>(namespace, name, e))?;
        }
        // Already being deleted (a user deleted it and the controller is finalizing): with
        // our finalizer gone the API server completes that deletion. A second DELETE would
        // need a right the controller does not hold on users' objects (a 403).
        if current.metadata.deletion_timestamp.is_some() {
            return Ok(true);
        }
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(true),
            Err(e) => Err(api_error::<K>(namespace, name, e)),
        }
    }

    async fn ensure_finalizer<K: StoredObject>(&self, object: &K) -> Result<()> {
        ensure_finalizer(self, object).await
    }
}

/// Every object of `api`, decoded, in namespace/name order.
async fn list_sorted<K: StoredObject>(api: Api<DynamicObject>, namespace: &str) -> Result<Vec<K>> {
    let list = api.list(&Default::default()).await.map_err(|e| api_error::<K>(namespace, "*", e))?;
    let mut out: Vec<K> = list.items.into_iter().map(decode).collect::<Result<_>>()?;
    out.sort_by(|a, b| {
        (a.meta().namespace.as_deref(), a.meta().name.as_deref()).cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
    });
    Ok(out)
}

impl KubeStore {
    /// Deletes as a user does (`kubectl delete`): unlike [`ObjectStore::delete`], driftless's
    /// finalizer stays, so the controller runs its cleanup first (a Terraform with
    /// `destroyResourcesOnDeletion` destroys its resources). Returns false when there was no
    /// such object.
    pub async fn request_delete<K: StoredObject>(&self, namespace: &str, name: &str) -> Result<bool> {
        let (api, _) = self.api::<K>(namespace);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(api_error::<K>(namespace, name, e)),
        }
    }
}

/// Drops driftless's finalizer. The merge patch carries the resourceVersion it was computed
/// from, so a finalizer another controller added meanwhile is never lost (a conflict is
/// retried by the caller's next reconcile).
async fn remove_finalizer(api: &Api<DynamicObject>, object: &DynamicObject) -> std::result::Result<(), kube::Error> {
    let finalizers: Vec<String> = object.metadata.finalizers.clone().unwrap_or_default().into_iter().filter(|f| f != FINALIZER).collect();
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": object.metadata.resource_version }
    });
    let name = object.metadata.name.clone().unwrap_or_default();
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Adds driftless's finalizer when missing, before any work that needs cleanup on deletion.
pub async fn ensure_finalizer<K: StoredObject>(store: &KubeStore, object: &K) -> Result<()> {
    let meta = object.meta();
    if meta.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == FINALIZER)) || meta.deletion_timestamp.is_some() {
        return Ok(());
    }
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let (api, _) = store.api::<K>(&namespace);
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": meta.resource_version } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| api_error::<K>(&namespace, &name, e))?;
    Ok(())
}
