//! State, locks and saved plans as Kubernetes objects in one namespace (the Terraform
//! object's own), through the runner's own Kubernetes credentials: no bucket, no second
//! system to run, and `kubectl` shows everything.
//!
//! Layout (names are DNS-1123 subdomains; an input that is too long or not valid as a name
//! is cleaned, truncated and suffixed with a short hash of itself, so names never collide):
//! - `Secret tfstate-<state>-<object>`: the state, gzip-compressed, in key `tfstate` (the
//!   name and the encoding of tofu-controller and of terraform's own `kubernetes` backend,
//!   so their Secrets are read as they are);
//! - `Lease tflock-<state>-<object>` (`coordination.k8s.io/v1`): the lock. `holderIdentity`
//!   is terraform's lock id, the annotation `driftless.dev/lock-info` holds the whole
//!   [`LockInfo`], `renewTime + leaseDurationSeconds` is when it stops counting;
//! - `Secret tfplan-<object>-<plan id>-<n>`: the plan file in chunks of at most 512 KiB (a
//!   Secret holds at most 1 MiB, and plans can be bigger), and `Secret
//!   tfplan-<object>-<plan id>`: the [`PlanMeta`] JSON, the digest and the chunk count.
//!
//! Every object carries `app.kubernetes.io/managed-by: driftless`, `driftless.dev/kind` and
//! `driftless.dev/name` (plans also `driftless.dev/plan` and `driftless.dev/plan-part`), so
//! superseded plans are found by label.
//!
//! The runner's ServiceAccount needs, in that namespace: `secrets` get, list, create,
//! update, delete; `leases` (coordination.k8s.io) get, create, update, delete.
//!
//! # Guarantees
//! - A lock is taken by creating the Lease: of racing runners exactly one create succeeds
//!   (the apiserver answers the others 409), and each loser is told the holder.
//! - A Lease past `renewTime + leaseDurationSeconds` belongs to a runner that is gone (the
//!   duration is longer than the runner's own deadline): the next `lock` takes it over by a
//!   replace carrying the resourceVersion it read, so again only one runner wins.
//! - A lock is released or broken by a delete with a resourceVersion precondition: only the
//!   Lease that was read is deleted, never one another runner took in between.
//! - State is written only while the caller's lock id holds the Lease (checked before each
//!   write, as the S3 backend does), with the resourceVersion it read: a failed write leaves
//!   the previous state whole, and a write whose answer was lost is read back to learn
//!   whether it landed.
//! - A plan's chunks are written before its meta Secret: a reader never sees a meta naming
//!   a half-written plan. A plan is returned only when its bytes hash to the digest
//!   recorded in its meta: anything else is [`BackendError::PlanDigestMismatch`].
//! - Errors name the verb, resource and namespace; no Secret content is ever put in an
//!   error or a log line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use ::kube::{Client, Config};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::{BackendError, LockInfo, PlanMeta, PlanStore, Result, StateKey, StateStore, sha256_digest};
use crate::error::chain;
use crate::key::ObjectKey;

// `PART_LABEL` is `meta` or `chunk`: prune deletes metas first, so no meta outlives its
// chunks. `CHUNK_ANNOTATION` on a chunk is its index, checked on read (a chunk of another
// plan is corrupt data).
use crate::names::annotation::{CHUNK as CHUNK_ANNOTATION, LOCK_INFO as LOCK_INFO_ANNOTATION};
use crate::names::label::{
    KIND as KIND_LABEL, MANAGED_BY as MANAGED_BY_LABEL, MANAGED_BY_VALUE as MANAGED_BY, NAME as NAME_LABEL, PLAN as PLAN_LABEL,
    PLAN_PART as PART_LABEL, STATE as STATE_LABEL,
};

/// The state's key in its Secret, as terraform's `kubernetes` backend names it.
const STATE_DATA: &str = "tfstate";
const CHUNK_DATA: &str = "tfplan";
const META_DATA: &str = "meta.json";
const DIGEST_DATA: &str = "digest";
const CHUNKS_DATA: &str = "chunks";

/// A plan chunk's size: half of what a Secret may hold, leaving room for the rest.
const CHUNK_SIZE: usize = 512 * 1024;
/// What the apiserver accepts in one Secret's data.
const SECRET_DATA_LIMIT: usize = 1024 * 1024;
/// Rounds of read-and-retry when an object changes between our read and our write.
const ATTEMPTS: usize = 4;

const SECRETS: &str = "secrets";
const LEASES: &str = "leases.coordination.k8s.io";

/// The Kubernetes StateStore and PlanStore.
#[derive(Clone)]
pub struct SecretBackend {
    client: Client,
    namespace: String,
    /// How long a lock is valid; longer than the runner's own deadline.
    lock_ttl: Duration,
    /// The API server's URL when known, for messages.
    endpoint: String,
}

impl fmt::Debug for SecretBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBackend")
            .field("namespace", &self.namespace)
            .field("lock_ttl", &self.lock_ttl)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// A Lease that is held: its lock info and the resourceVersion it was read at.
struct Held {
    info: LockInfo,
    resource_version: Option<String>,
    expired: bool,
}

impl SecretBackend {
    /// A backend on `client`, keeping everything in `namespace`; locks it takes expire after
    /// `lock_ttl`.
    pub fn new(client: Client, namespace: impl Into<String>, lock_ttl: Duration) -> Self {
        Self { client, namespace: namespace.into(), lock_ttl, endpoint: "the Kubernetes API".into() }
    }

    /// A backend with the client `kube::Client::try_default()` would build (`KUBECONFIG`, the
    /// default kubeconfig, or the pod's in-cluster ServiceAccount), remembering the server's
    /// URL for messages.
    pub async fn connect(namespace: impl Into<String>, lock_ttl: Duration) -> Result<Self> {
        let unconfigured = |detail: String| BackendError::Remote {
            op: "configure",
            key: "a Kubernetes client".into(),
            detail: format!("{detail}; set KUBECONFIG, or run in a pod with a ServiceAccount"),
        };
        let config = Config::infer().await.map_err(|e| unconfigured(chain(&e)))?;
        let endpoint = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| unconfigured(chain(&e)))?;
        Ok(Self { endpoint, ..Self::new(client, namespace, lock_ttl) })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The BackendError for a failed request: `verb` on `resource` named `name`.
    fn error(&self, op: &'static str, verb: &'static str, resource: &'static str, name: &str, err: ::kube::Error) -> BackendError {
        let key = format!("{resource}/{}/{name}", self.namespace);
        match err {
            ::kube::Error::Api(status) if status.code == 403 => {
                BackendError::Forbidden { verb, resource, namespace: self.namespace.clone(), detail: status.message }
            }
            ::kube::Error::Api(status) if status.code == 503 || status.code == 504 => {
                BackendError::Unreachable { endpoint: self.endpoint.clone(), detail: format!("{} ({})", status.message, status.code) }
            }
            ::kube::Error::Api(status) => {
                BackendError::Remote { op, key, detail: format!("{} ({} {})", status.message, status.code, status.reason) }
            }
            e @ (::kube::Error::Service(_) | ::kube::Error::HyperError(_)) => {
                BackendError::Unreachable { endpoint: self.endpoint.clone(), detail: chain(&e) }
            }
            e => BackendError::Remote { op, key, detail: chain(&e) },
        }
    }

    /// Labels every object of `object` carries, plus `extra`.
    fn labels(&self, object: &ObjectKey, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        [(MANAGED_BY_LABEL, MANAGED_BY), (KIND_LABEL, &object.kind), (NAME_LABEL, &object.name)]
            .into_iter()
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_string(), label_value(v)))
            .collect()
    }

    fn meta(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta { name: Some(name.into()), namespace: Some(self.namespace.clone()), labels: Some(labels), ..Default::default() }
    }

    // ---- locks ----

    /// A Lease held for `info` from now on, replacing the one at `resource_version`.
    fn lease(&self, key: &StateKey, info: &LockInfo, resource_version: Option<String>, transitions: Option<i32>) -> Result<Lease> {
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from(self.lock_ttl.as_secs().max(1) + u64::from(self.lock_ttl.subsec_nanos() > 0)).unwrap_or(i32::MAX);
        let mut info = info.clone();
        info.expires = now.checked_add(jiff::SignedDuration::from_secs(i64::from(seconds))).ok().map(|t| t.to_string());
        let json = serde_json::to_string(&info).map_err(|e| BackendError::Corrupt { what: "lock info".into(), reason: e.to_string() })?;
        let mut meta = self.meta(&lock_lease_name(key), self.labels(&key.object, &[(STATE_LABEL, &key.state_name)]));
        meta.annotations = Some([(LOCK_INFO_ANNOTATION.to_string(), json)].into());
        meta.resource_version = resource_version;
        Ok(Lease {
            metadata: meta,
            spec: Some(LeaseSpec {
                holder_identity: Some(info.id.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: transitions,
                ..Default::default()
            }),
        })
    }

    /// The Lease of `key` as it is now (`None`: no Lease).
    async fn read_lease(&self, key: &StateKey) -> Result<Option<Lease>> {
        let name = lock_lease_name(key);
        self.leases().get_opt(&name).await.map_err(|e| self.error("read lock", "get", LEASES, &name, e))
    }

    async fn read_lock(&self, key: &StateKey) -> Result<Option<Held>> {
        Ok(self.read_lease(key).await?.as_ref().and_then(held))
    }

    /// Deletes the Lease only if it is still at `resource_version`. `Ok(false)`: it changed.
    async fn delete_lease(&self, key: &StateKey, resource_version: Option<String>) -> Result<bool> {
        let name = lock_lease_name(key);
        let params = DeleteParams { preconditions: Some(Preconditions { resource_version, uid: None }), ..Default::default() };
        match self.leases().delete(&name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(409) => Ok(false),
            // Gone already: whoever removed it did what we wanted.
            Err(e) if status(&e) == Some(404) => Ok(true),
            Err(e) => Err(self.error("release lock", "delete", LEASES, &name, e)),
        }
    }

    // ---- state ----

    /// The state Secret of `key`; one labelled as another object's state is refused, never
    /// read or overwritten (two objects' names can map to one Secret name). A Secret without
    /// driftless's labels (tofu-controller's, terraform's own backend's) is adopted: the next
    /// write labels it.
    async fn read_state_secret(&self, key: &StateKey) -> Result<Option<Secret>> {
        let name = state_secret_name(key);
        let secret = self.secrets().get_opt(&name).await.map_err(|e| self.error("read state", "get", SECRETS, &name, e))?;
        if let Some(owner) = secret.as_ref().and_then(|s| foreign_owner(s.metadata.labels.as_ref(), key)) {
            return Err(BackendError::Foreign { what: format!("Secret {}/{name}", self.namespace), key: key.to_string(), owner });
        }
        Ok(secret)
    }

    /// The state a Secret holds.
    fn state_of(&self, key: &StateKey, secret: &Secret) -> Result<Vec<u8>> {
        let corrupt = |reason: String| BackendError::Corrupt {
            what: format!("state of {key} (Secret {}/{})", self.namespace, state_secret_name(key)),
            reason,
        };
        let data = secret.data.as_ref().and_then(|d| d.get(STATE_DATA)).ok_or_else(|| corrupt(format!("it has no key {STATE_DATA}")))?;
        gunzip(&data.0).map_err(|e| corrupt(format!("key {STATE_DATA} is not gzip data: {e}")))
    }

    /// Whether the stored state is `state` (a write whose answer was lost may have landed).
    async fn holds(&self, key: &StateKey, state: &[u8]) -> bool {
        match self.read_state_secret(key).await {
            Ok(Some(secret)) => self.state_of(key, &secret).is_ok_and(|stored| stored == state),
            _ => false,
        }
    }

    async fn check_holder(&self, key: &StateKey, id: &str) -> Result<()> {
        match self.read_lock(key).await? {
            Some(held) if held.info.id == id => Ok(()),
            _ => Err(BackendError::LockMismatch { key: key.to_string(), id: id.to_string() }),
        }
    }

    // ---- plans ----

    /// Creates the Secret, or replaces the one of that name.
    async fn upsert(&self, op: &'static str, secret: Secret) -> Result<()> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let api = self.secrets();
        for _ in 0..ATTEMPTS {
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(self.error(op, "create", SECRETS, &name, e)),
            }
            let current = api.get_opt(&name).await.map_err(|e| self.error(op, "get", SECRETS, &name, e))?;
            let Some(current) = current else { continue };
            let mut next = secret.clone();
            next.metadata.resource_version = current.metadata.resource_version;
            match api.replace(&name, &PostParams::default(), &next).await {
                Ok(_) => return Ok(()),
                Err(e) if matches!(status(&e), Some(409 | 404)) => {}
                Err(e) => return Err(self.error(op, "update", SECRETS, &name, e)),
            }
        }
        Err(BackendError::Remote { op, key: format!("{SECRETS}/{}/{name}", self.namespace), detail: "the Secret kept changing".into() })
    }

    /// Deletes a Secret; one already gone is fine.
    async fn delete_secret(&self, op: &'static str, name: &str) -> Result<()> {
        match self.secrets().delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error(op, "delete", SECRETS, name, e)),
        }
    }

    /// The names of an object's plan Secrets (metadata only: chunks are big), as
    /// `(name, plan label, is meta, chunk index)`.
    async fn plan_secrets(&self, object: &ObjectKey, plan: Option<&str>) -> Result<Vec<(String, String, bool, Option<usize>)>> {
        let mut selector = format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{KIND_LABEL}={},{NAME_LABEL}={},{PLAN_LABEL}",
            label_value(&object.kind),
            label_value(&object.name)
        );
        if let Some(id) = plan {
            selector.push_str(&format!("={}", label_value(id)));
        }
        let list = self
            .secrets()
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error("list plans", "list", SECRETS, &format!("tfplan-{}-*", object.name), e))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|s| {
                let labels = s.metadata.labels.unwrap_or_default();
                let index = s.metadata.annotations.as_ref().and_then(|a| a.get(CHUNK_ANNOTATION)).and_then(|n| n.parse().ok());
                Some((
                    s.metadata.name?,
                    labels.get(PLAN_LABEL).cloned().unwrap_or_default(),
                    labels.get(PART_LABEL).is_some_and(|p| p == "meta"),
                    index,
                ))
            })
            .collect())
    }

    /// A plan's meta Secret: its meta, digest and chunk count.
    async fn read_plan_meta(&self, object: &ObjectKey, id: &str) -> Result<Option<(PlanMeta, String, usize)>> {
        let name = plan_meta_secret_name(object, id);
        let secret = self.secrets().get_opt(&name).await.map_err(|e| self.error("read plan meta", "get", SECRETS, &name, e))?;
        let Some(secret) = secret else { return Ok(None) };
        let corrupt = |reason: String| BackendError::Corrupt { what: format!("plan {id} of {object} (Secret {name})"), reason };
        let data = secret.data.unwrap_or_default();
        let field = |key: &str| data.get(key).map(|v| v.0.as_slice()).ok_or_else(|| corrupt(format!("it has no key {key}")));
        let meta: PlanMeta = serde_json::from_slice(field(META_DATA)?).map_err(|e| corrupt(e.to_string()))?;
        if meta.id != id {
            return Err(corrupt(format!("it holds plan {}", meta.id)));
        }
        let digest = String::from_utf8_lossy(field(DIGEST_DATA)?).into_owned();
        let chunks = std::str::from_utf8(field(CHUNKS_DATA)?)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| corrupt(format!("key {CHUNKS_DATA} is not a number")))?;
        Ok(Some((meta, digest, chunks)))
    }
}

/// The lock a Lease stands for; `None` when nobody holds it.
fn held(lease: &Lease) -> Option<Held> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    let expires =
        since.zip(spec.lease_duration_seconds).and_then(|(t, s)| t.checked_add(jiff::SignedDuration::from_secs(i64::from(s))).ok());
    let recorded = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LOCK_INFO_ANNOTATION))
        .and_then(|json| serde_json::from_str::<LockInfo>(json).ok())
        .filter(|info| info.id == holder);
    // A Lease someone made by hand (or whose annotation was edited) still locks the state.
    let mut info = recorded.unwrap_or_else(|| LockInfo {
        id: holder.clone(),
        who: holder.clone(),
        created: spec.acquire_time.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        ..Default::default()
    });
    info.expires = expires.map(|t| t.to_string());
    Some(Held {
        info,
        resource_version: lease.metadata.resource_version.clone(),
        expired: expires.is_some_and(|t| t <= jiff::Timestamp::now()),
    })
}

impl StateStore for SecretBackend {
    async fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>> {
        match self.read_state_secret(key).await? {
            None => Ok(None),
            Some(secret) => self.state_of(key, &secret).map(Some),
        }
    }

    async fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> Result<()> {
        let name = state_secret_name(key);
        let compressed =
            gzip(state).map_err(|e| BackendError::Remote { op: "compress state", key: key.to_string(), detail: e.to_string() })?;
        if compressed.len() > SECRET_DATA_LIMIT - 1024 {
            return Err(BackendError::Remote {
                op: "write state",
                key: format!("{SECRETS}/{}/{name}", self.namespace),
                detail: format!("the compressed state is {} bytes, more than a Secret holds (1 MiB)", compressed.len()),
            });
        }
        let api = self.secrets();
        for _ in 0..ATTEMPTS {
            if let Some(id) = lock_id {
                self.check_holder(key, id).await?;
            }
            let current = self.read_state_secret(key).await?;
            let (verb, written) = match current {
                // Only the data and our labels change: labels or annotations others added stay.
                Some(mut secret) => {
                    secret.data.get_or_insert_default().insert(STATE_DATA.into(), ByteString(compressed.clone()));
                    secret.metadata.labels.get_or_insert_default().extend(self.labels(&key.object, &[(STATE_LABEL, &key.state_name)]));
                    secret.metadata.managed_fields = None;
                    ("update", api.replace(&name, &PostParams::default(), &secret).await)
                }
                None => {
                    let secret = Secret {
                        metadata: self.meta(&name, self.labels(&key.object, &[(STATE_LABEL, &key.state_name)])),
                        data: Some([(STATE_DATA.to_string(), ByteString(compressed.clone()))].into()),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    };
                    ("create", api.create(&PostParams::default(), &secret).await)
                }
            };
            match written {
                Ok(_) => return Ok(()),
                // Another write came between our read and ours (or ours landed and its answer
                // was lost, and a retry conflicts with it): read again.
                Err(e) if status(&e) == Some(409) => {
                    if self.holds(key, state).await {
                        return Ok(());
                    }
                    tracing::debug!("state Secret {name} changed while it was written; retrying");
                }
                Err(e) => {
                    let e = self.error("write state", verb, SECRETS, &name, e);
                    if matches!(e, BackendError::Unreachable { .. }) && self.holds(key, state).await {
                        return Ok(());
                    }
                    return Err(e);
                }
            }
        }
        Err(BackendError::Remote {
            op: "write state",
            key: format!("{SECRETS}/{}/{name}", self.namespace),
            detail: "the state Secret kept changing while it was written".into(),
        })
    }

    async fn delete(&self, key: &StateKey) -> Result<()> {
        let name = state_secret_name(key);
        for _ in 0..ATTEMPTS {
            let Some(secret) = self.read_state_secret(key).await? else { return Ok(()) };
            let resource_version = secret.metadata.resource_version;
            let params = DeleteParams { preconditions: Some(Preconditions { resource_version, uid: None }), ..Default::default() };
            match self.secrets().delete(&name, &params).await {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(404) => return Ok(()),
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(self.error("delete state", "delete", SECRETS, &name, e)),
            }
        }
        Err(BackendError::Remote {
            op: "delete state",
            key: format!("{SECRETS}/{}/{name}", self.namespace),
            detail: "the state Secret kept changing".into(),
        })
    }

    async fn lock(&self, key: &StateKey, info: &LockInfo) -> Result<()> {
        let name = lock_lease_name(key);
        // A few rounds: the holder may release, or an expired lock may be taken over, between
        // our create and our read.
        for _ in 0..ATTEMPTS {
            match self.leases().create(&PostParams::default(), &self.lease(key, info, None, None)?).await {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(self.error("take lock", "create", LEASES, &name, e)),
            }
            let Some(current) = self.read_lease(key).await? else { continue };
            let prior = held(&current);
            if let Some(h) = &prior {
                if !h.expired {
                    return Err(BackendError::Locked { key: key.to_string(), holder: Box::new(h.info.clone()) });
                }
                tracing::warn!(
                    "state lock {} of {key} held by {} expired at {}; taking it over",
                    h.info.id,
                    h.info.who,
                    h.info.expires.as_deref().unwrap_or("?")
                );
            }
            let transitions = current.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0).saturating_add(1);
            let lease = self.lease(key, info, current.metadata.resource_version.clone(), Some(transitions))?;
            match self.leases().replace(&name, &PostParams::default(), &lease).await {
                Ok(_) => return Ok(()),
                // Another runner took it over (or released it) first: look again.
                Err(e) if matches!(status(&e), Some(409 | 404)) => {
                    if let Some(h) = self.read_lock(key).await?.filter(|h| !h.expired) {
                        return Err(BackendError::Locked { key: key.to_string(), holder: Box::new(h.info) });
                    }
                }
                Err(e) => return Err(self.error("take lock", "update", LEASES, &name, e)),
            }
        }
        let holder = self.read_lock(key).await?.map(|h| h.info).unwrap_or_default();
        Err(BackendError::Locked { key: key.to_string(), holder: Box::new(holder) })
    }

    async fn unlock(&self, key: &StateKey, id: &str) -> Result<()> {
        for _ in 0..ATTEMPTS {
            match self.read_lock(key).await? {
                None => return Ok(()),
                Some(held) if held.info.id == id => {
                    if self.delete_lease(key, held.resource_version).await? {
                        return Ok(());
                    }
                }
                Some(_) => return Err(BackendError::LockMismatch { key: key.to_string(), id: id.to_string() }),
            }
        }
        Err(BackendError::Remote {
            op: "release lock",
            key: format!("{LEASES}/{}/{}", self.namespace, lock_lease_name(key)),
            detail: "the lock kept changing".into(),
        })
    }

    async fn lock_info(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        Ok(self.read_lock(key).await?.map(|h| h.info))
    }

    async fn force_unlock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        let mut broken = None;
        for _ in 0..ATTEMPTS {
            match self.read_lock(key).await? {
                None => return Ok(broken),
                Some(held) => {
                    if self.delete_lease(key, held.resource_version).await? {
                        return Ok(Some(held.info));
                    }
                    broken = Some(held.info);
                }
            }
        }
        Ok(broken)
    }
}

impl PlanStore for SecretBackend {
    async fn put_plan(&self, object: &ObjectKey, meta: &PlanMeta, plan: &[u8]) -> Result<()> {
        let id = meta.id.as_str();
        let chunks: Vec<&[u8]> = plan.chunks(CHUNK_SIZE).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let index = n.to_string();
            let mut metadata =
                self.meta(&plan_chunk_secret_name(object, id, n), self.labels(object, &[(PLAN_LABEL, id), (PART_LABEL, "chunk")]));
            metadata.annotations = Some([(CHUNK_ANNOTATION.to_string(), index)].into());
            let secret = Secret {
                metadata,
                data: Some([(CHUNK_DATA.to_string(), ByteString(chunk.to_vec()))].into()),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            self.upsert("store plan", secret).await?;
        }
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| BackendError::Corrupt { what: "plan meta".into(), reason: e.to_string() })?;
        let data = [
            (META_DATA.to_string(), ByteString(json)),
            (DIGEST_DATA.to_string(), ByteString(meta.digest.clone().into_bytes())),
            (CHUNKS_DATA.to_string(), ByteString(chunks.len().to_string().into_bytes())),
        ];
        let secret = Secret {
            metadata: self.meta(&plan_meta_secret_name(object, id), self.labels(object, &[(PLAN_LABEL, id), (PART_LABEL, "meta")])),
            data: Some(data.into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        self.upsert("store plan meta", secret).await?;
        // Chunks left by an earlier, longer version of the same plan id.
        for (name, _, is_meta, index) in self.plan_secrets(object, Some(id)).await? {
            if !is_meta && index.is_none_or(|n| n >= chunks.len()) {
                self.delete_secret("delete plan", &name).await?;
            }
        }
        Ok(())
    }

    async fn get_plan(&self, object: &ObjectKey, id: &str) -> Result<(PlanMeta, Vec<u8>)> {
        let not_found = || BackendError::PlanNotFound { object: object.to_string(), id: id.to_string() };
        let (meta, digest, count) = self.read_plan_meta(object, id).await?.ok_or_else(not_found)?;
        let mut bytes = Vec::with_capacity(count * CHUNK_SIZE);
        for n in 0..count {
            let name = plan_chunk_secret_name(object, id, n);
            let corrupt = |reason: String| BackendError::Corrupt { what: format!("plan {id} of {object}"), reason };
            let secret = self.secrets().get_opt(&name).await.map_err(|e| self.error("read plan", "get", SECRETS, &name, e))?;
            let secret = secret.ok_or_else(|| corrupt(format!("chunk {n} of {count} (Secret {name}) is missing")))?;
            let labels = secret.metadata.labels.unwrap_or_default();
            let index = secret.metadata.annotations.as_ref().and_then(|a| a.get(CHUNK_ANNOTATION));
            if labels.get(PLAN_LABEL) != Some(&label_value(id)) || index != Some(&n.to_string()) {
                return Err(corrupt(format!("Secret {name} is not chunk {n} of this plan")));
            }
            let chunk =
                secret.data.and_then(|mut d| d.remove(CHUNK_DATA)).ok_or_else(|| corrupt(format!("Secret {name} has no plan data")))?;
            bytes.extend_from_slice(&chunk.0);
        }
        super::verified_plan(object, id, meta, bytes, &[digest.as_str()])
    }

    async fn plan_meta(&self, object: &ObjectKey, id: &str) -> Result<Option<PlanMeta>> {
        Ok(self.read_plan_meta(object, id).await?.map(|(meta, _, _)| meta))
    }

    async fn prune_plans(&self, object: &ObjectKey, keep: &[&str]) -> Result<()> {
        let keep: Vec<String> = keep.iter().map(|id| label_value(id)).collect();
        let (metas, chunks): (Vec<_>, Vec<_>) =
            self.plan_secrets(object, None).await?.into_iter().filter(|(_, plan, _, _)| !keep.contains(plan)).partition(|s| s.2);
        // Metas first: a plan whose chunks are going is never named by a meta.
        for (name, ..) in metas.into_iter().chain(chunks) {
            self.delete_secret("delete plan", &name).await?;
        }
        Ok(())
    }
}

/// The Secret holding a state: `tfstate-<state>-<object>`, as tofu-controller names it.
pub fn state_secret_name(key: &StateKey) -> String {
    object_name(&format!("tfstate-{}-{}", key.state_name, key.object.name))
}

/// The Lease locking a state.
pub fn lock_lease_name(key: &StateKey) -> String {
    object_name(&format!("tflock-{}-{}", key.state_name, key.object.name))
}

/// The Secret holding a plan's meta, digest and chunk count.
pub fn plan_meta_secret_name(object: &ObjectKey, id: &str) -> String {
    object_name(&format!("tfplan-{}-{id}", object.name))
}

/// The Secret holding chunk `n` of a plan.
pub fn plan_chunk_secret_name(object: &ObjectKey, id: &str, n: usize) -> String {
    object_name(&format!("tfplan-{}-{id}-{n}", object.name))
}

/// 10 hex digits of sha256: the suffix that keeps shortened or cleaned names apart.
fn short_hash(s: &str) -> String {
    sha256_digest(s.as_bytes()).trim_start_matches("sha256:")[..10].to_string()
}

/// `cleaned` when it is `wanted` and short enough; else cut to fit `max` with a hash of
/// `wanted` appended, so two inputs never end up with one name.
fn fit(wanted: &str, cleaned: String, max: usize) -> String {
    if cleaned == wanted && cleaned.len() <= max {
        return cleaned;
    }
    let hash = short_hash(wanted);
    let mut head: String = cleaned.chars().take(max - hash.len() - 1).collect();
    while head.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        head.pop();
    }
    if head.is_empty() { hash } else { format!("{head}-{hash}") }
}

/// A valid object name (DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, each
/// dot-separated part starting and ending alphanumeric, at most 253 characters).
fn object_name(wanted: &str) -> String {
    let mapped: String =
        wanted.chars().map(|c| c.to_ascii_lowercase()).map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    let cleaned = mapped.split('.').map(|part| part.trim_matches('-')).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(".");
    fit(wanted, cleaned, 253)
}

/// A valid label value (alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric, at
/// most 63 characters).
/// Who else a state Secret's labels say it belongs to, if not to `key`.
fn foreign_owner(labels: Option<&BTreeMap<String, String>>, key: &StateKey) -> Option<String> {
    let labels = labels?;
    let (kind, name, state) = (labels.get(KIND_LABEL)?, labels.get(NAME_LABEL)?, labels.get(STATE_LABEL));
    let ours = *kind == label_value(&key.object.kind)
        && *name == label_value(&key.object.name)
        && state.is_none_or(|s| *s == label_value(&key.state_name));
    (!ours).then(|| format!("{kind} {name} (state {})", state.map_or("?", String::as_str)))
}

fn label_value(wanted: &str) -> String {
    let mapped: String = wanted.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    let cleaned = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    fit(wanted, cleaned, 63)
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// The HTTP status of an API error (`None`: no answer from the API server).
fn status(err: &::kube::Error) -> Option<u16> {
    match err {
        ::kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: &str, name: &str) -> StateKey {
        StateKey { object: ObjectKey { kind: "Terraform".into(), namespace: "ns".into(), name: name.into() }, state_name: state.into() }
    }

    #[test]
    fn names_follow_tofu_controller_when_they_are_valid() {
        assert_eq!(state_secret_name(&key("default", "app")), "tfstate-default-app");
        assert_eq!(lock_lease_name(&key("default", "app.v2")), "tflock-default-app.v2");
        let object = key("default", "app").object;
        assert_eq!(plan_meta_secret_name(&object, "plan-abc1234-0123456789"), "tfplan-app-plan-abc1234-0123456789");
        assert_eq!(plan_chunk_secret_name(&object, "plan-abc1234-0123456789", 3), "tfplan-app-plan-abc1234-0123456789-3");
    }

    #[test]
    fn invalid_or_long_names_are_cleaned_and_kept_apart_by_a_hash() {
        let a = state_secret_name(&key("My_Workspace", "app"));
        let b = state_secret_name(&key("my-workspace", "app"));
        assert!(a.starts_with("tfstate-my-workspace-app-") && a.len() == "tfstate-my-workspace-app-".len() + 10, "{a}");
        assert_eq!(b, "tfstate-my-workspace-app");
        let long = state_secret_name(&key("default", &"x".repeat(300)));
        assert!(long.len() <= 253 && long.starts_with("tfstate-default-xxx"), "{long}");
        assert_ne!(long, state_secret_name(&key("default", &"x".repeat(301))));
        assert_eq!(object_name("a.-b..c-"), format!("a.b.c-{}", short_hash("a.-b..c-")));
    }

    #[test]
    fn a_state_secret_labelled_for_another_object_is_foreign_and_an_unlabelled_one_is_adopted() {
        let key =
            StateKey { object: ObjectKey { kind: "Terraform".into(), namespace: "ns".into(), name: "a-b".into() }, state_name: "c".into() };
        let labels = |name: &str, state: &str| -> BTreeMap<String, String> {
            [
                (KIND_LABEL.to_string(), "Terraform".to_string()),
                (NAME_LABEL.to_string(), name.to_string()),
                (STATE_LABEL.to_string(), state.to_string()),
            ]
            .into()
        };
        assert_eq!(foreign_owner(Some(&labels("a-b", "c")), &key), None);
        // tfstate-c-a-b is also the Secret of Terraform "b" with workspace "c-a".
        assert_eq!(foreign_owner(Some(&labels("b", "c-a")), &key).as_deref(), Some("Terraform b (state c-a)"));
        assert_eq!(foreign_owner(None, &key), None, "a Secret written by tofu-controller carries none of our labels");
        assert_eq!(foreign_owner(Some(&BTreeMap::new()), &key), None);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("Terraform"), "Terraform");
        let long = label_value(&"n".repeat(100));
        assert!(long.len() <= 63 && long.ends_with(&short_hash(&"n".repeat(100))), "{long}");
        assert!(label_value("-ws/1-").starts_with("ws-1-"));
    }

    #[test]
    fn state_survives_gzip() {
        let state = br#"{"version":4,"serial":1}"#;
        let packed = gzip(state).unwrap();
        assert_eq!(&packed[..2], &[0x1f, 0x8b]);
        assert_eq!(gunzip(&packed).unwrap(), state);
        assert!(gunzip(b"not gzip").is_err());
    }

    #[test]
    fn an_expired_lease_is_seen_as_expired_and_keeps_its_lock_info() {
        let info = LockInfo { id: "id-1".into(), who: "runner".into(), created: "then".into(), ..Default::default() };
        let mut lease = Lease {
            metadata: ObjectMeta {
                annotations: Some([(LOCK_INFO_ANNOTATION.to_string(), serde_json::to_string(&info).unwrap())].into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("id-1".into()),
                lease_duration_seconds: Some(10),
                renew_time: Some(MicroTime(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(11))),
                ..Default::default()
            }),
        };
        let h = held(&lease).unwrap();
        assert!(h.expired);
        assert_eq!((h.info.who.as_str(), h.resource_version.as_deref()), ("runner", Some("7")));
        assert!(h.info.expires.is_some());
        lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(jiff::Timestamp::now()));
        assert!(!held(&lease).unwrap().expired);
        lease.spec.as_mut().unwrap().holder_identity = None;
        assert!(held(&lease).is_none(), "a Lease without a holder locks nothing");
    }
}
