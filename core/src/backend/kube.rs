//! State, locks and saved plans as Kubernetes objects in one namespace (the Terraform
//! object's own), through the runner's own Kubernetes credentials: no bucket, no second
//! system to run, and `kubectl` shows everything.
//!
//! Layout (names are DNS-1123 subdomains; an input that is too long or not valid as a name
//! is cleaned, truncated and suffixed with a short hash of itself, so names never collide):
//! - `Secret tfstate-<workspace>-<object>` (with tofu-controller's secretSuffix
//!   `tfstate-<workspace>-<suffix>`): the state, gzip-compressed, in key `tfstate` (the
//!   name and the encoding of tofu-controller and of terraform's own `kubernetes` backend,
//!   so their Secrets are read as they are), whenever the gzip is at most 768 KiB;
//! - a bigger state (a Secret holds at most 1 MiB): `Secret
//!   tfstate-<state>-<object>-<tag>-<n>`, its gzip in chunks of at most 512 KiB under key
//!   `chunk`, where `<tag>` is the first 12 hex digits of the gzip's sha256 (one generation of
//!   chunks per content); the main Secret then has no key `tfstate` but a manifest instead:
//!   `digest` (the gzip's sha256) and `chunks` (the count). Only states that need it take
//!   this layout, which other tools cannot read;
//! - `Lease tflock-<state>-<object>` (`coordination.k8s.io/v1`): the lock. `holderIdentity`
//!   is terraform's lock id, the annotation `driftless.dev/lock-info` holds the whole
//!   [`LockInfo`], `renewTime + leaseDurationSeconds` is when it stops counting;
//! - `Secret tfplan-<object>-<plan id>-<n>`: the plan file in chunks of at most 512 KiB (a
//!   Secret holds at most 1 MiB, and plans can be bigger), and `Secret
//!   tfplan-<object>-<plan id>`: the [`PlanMeta`] JSON, the digest and the chunk count.
//!
//! Every object carries `app.kubernetes.io/managed-by: driftless`, `driftless.dev/kind` and
//! `driftless.dev/name` (plans also `driftless.dev/plan` and `driftless.dev/plan-part`; state
//! chunks `driftless.dev/state`, `driftless.dev/state-part: chunk` and
//! `driftless.dev/state-digest: <tag>`), so superseded plans and state chunks are found by
//! label, and a chunk labelled as another object's is neither read nor overwritten.
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
//! - A chunked state is committed by that same single write of the main Secret: its chunks
//!   are written first under names no committed manifest uses (another content, another
//!   tag), so a failed or interrupted write leaves the previous state whole and readable.
//!   The chunks of the generation the commit replaced are deleted only after it succeeded
//!   (found by label, only those of the Secret version it replaced, so a racing writer's new
//!   chunks are never taken). A chunked state is returned only when its chunks hash to the
//!   manifest's digest: anything else is [`BackendError::StateDigestMismatch`], a missing
//!   or foreign chunk [`BackendError::Corrupt`]. Deleting a state deletes all its chunks,
//!   after the main Secret. Chunks of a write that failed before its commit are left until
//!   the state is deleted (a retry of the same content reuses them: same names).
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
    PLAN_PART as PART_LABEL, STATE as STATE_LABEL, STATE_DIGEST as STATE_DIGEST_LABEL, STATE_PART as STATE_PART_LABEL,
};

/// The state's key in its Secret, as terraform's `kubernetes` backend names it.
const STATE_DATA: &str = "tfstate";
const CHUNK_DATA: &str = "tfplan";
/// A state chunk's key: not `tfstate`, so no tool takes a chunk for a whole state.
const STATE_CHUNK_DATA: &str = "chunk";
const META_DATA: &str = "meta.json";
/// The digest and chunk count of a chunked plan (its meta Secret) or state (its main Secret).
const DIGEST_DATA: &str = "digest";
const CHUNKS_DATA: &str = "chunks";

/// A chunk's size (plans and states): half of what a Secret may hold, leaving room for the rest.
const CHUNK_SIZE: usize = 512 * 1024;
/// What the apiserver accepts in one Secret's data.
const SECRET_DATA_LIMIT: usize = 1024 * 1024;
/// The largest compressed state kept whole in key `tfstate` (the layout other tools read);
/// a bigger one is chunked. The margin leaves room for keys others added to the Secret.
const STATE_INLINE_LIMIT: usize = 768 * 1024;
const _: () = assert!(STATE_INLINE_LIMIT + 128 * 1024 <= SECRET_DATA_LIMIT && CHUNK_SIZE <= STATE_INLINE_LIMIT);
/// Hex digits of a chunked state's digest in its chunks' names and labels.
const STATE_TAG_LEN: usize = 12;
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
    /// Labels the user asked the state Secret to carry (`backendConfig.labels`).
    state_labels: BTreeMap<String, String>,
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

/// What a chunked state's main Secret records in place of key `tfstate`: the sha256 digest
/// of the whole compressed state and how many chunk Secrets hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    digest: String,
    chunks: usize,
}

impl Manifest {
    fn of(compressed: &[u8]) -> Self {
        Self { digest: sha256_digest(compressed), chunks: compressed.len().div_ceil(CHUNK_SIZE) }
    }

    /// The short digest naming this generation's chunks, so a new generation never
    /// overwrites the chunks the committed main Secret still names.
    fn tag(&self) -> String {
        label_value(&self.digest.trim_start_matches("sha256:").chars().take(STATE_TAG_LEN).collect::<String>())
    }
}

/// Where a state Secret says its compressed state is.
#[derive(Debug, PartialEq, Eq)]
enum Recorded<'a> {
    /// Whole, in key `tfstate`.
    Inline(&'a [u8]),
    /// In the chunk Secrets the manifest names.
    Chunked(Manifest),
}

/// How a compressed state is to be stored: `None` whole in key `tfstate` (the layout
/// tofu-controller and terraform read), or in chunks under this manifest.
fn layout(compressed: &[u8]) -> Option<Manifest> {
    (compressed.len() > STATE_INLINE_LIMIT).then(|| Manifest::of(compressed))
}

/// What a state Secret's data records. Key `tfstate` wins: it is what other tools read
/// and write, and a Secret written by one of them after us has only that key current.
fn recorded(data: &BTreeMap<String, ByteString>) -> std::result::Result<Recorded<'_>, String> {
    if let Some(state) = data.get(STATE_DATA) {
        return Ok(Recorded::Inline(&state.0));
    }
    let (Some(digest), Some(chunks)) = (data.get(DIGEST_DATA), data.get(CHUNKS_DATA)) else {
        return Err(format!("it has no key {STATE_DATA} and no chunk manifest"));
    };
    let digest = std::str::from_utf8(&digest.0).map_err(|_| format!("key {DIGEST_DATA} is not text"))?.trim().to_string();
    let chunks = std::str::from_utf8(&chunks.0)
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("key {CHUNKS_DATA} is not a number"))?;
    Ok(Recorded::Chunked(Manifest { digest, chunks }))
}

/// Sets a state Secret's data to `compressed` whole, or to `manifest` naming its chunks,
/// dropping what the other layout left. Keys others added stay.
fn record(data: &mut BTreeMap<String, ByteString>, compressed: &[u8], manifest: Option<&Manifest>) {
    match manifest {
        None => {
            data.remove(DIGEST_DATA);
            data.remove(CHUNKS_DATA);
            data.insert(STATE_DATA.into(), ByteString(compressed.to_vec()));
        }
        Some(m) => {
            data.remove(STATE_DATA);
            data.insert(DIGEST_DATA.into(), ByteString(m.digest.clone().into_bytes()));
            data.insert(CHUNKS_DATA.into(), ByteString(m.chunks.to_string().into_bytes()));
        }
    }
}

/// A replace of an existing Secret by upsert is always fine (plans: a Secret of that name
/// is an earlier version of the same plan).
fn any_secret(_: &Secret) -> Result<()> {
    Ok(())
}

impl SecretBackend {
    /// A backend on `client`, keeping everything in `namespace`; locks it takes expire after
    /// `lock_ttl`.
    pub fn new(client: Client, namespace: impl Into<String>, lock_ttl: Duration) -> Self {
        Self { client, namespace: namespace.into(), lock_ttl, endpoint: "the Kubernetes API".into(), state_labels: BTreeMap::new() }
    }

    /// The same backend, labelling state Secrets with `labels` too. driftless's own labels
    /// win over a user's of the same key: they say whose state a Secret is.
    pub fn with_state_labels(self, labels: BTreeMap<String, String>) -> Self {
        Self { state_labels: labels, ..self }
    }

    /// The labels of `key`'s state Secret: the user's, then driftless's own over them.
    fn state_secret_labels(&self, key: &StateKey) -> BTreeMap<String, String> {
        let mut labels = self.state_labels.clone();
        labels.extend(self.labels(&key.object, &[(STATE_LABEL, &key.state_name)]));
        labels
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

    /// The state a Secret holds, whole or from the chunks its manifest names.
    async fn state_of(&self, key: &StateKey, secret: &Secret) -> Result<Vec<u8>> {
        let corrupt = |reason: String| BackendError::Corrupt {
            what: format!("state of {key} (Secret {}/{})", self.namespace, state_secret_name(key)),
            reason,
        };
        let empty = BTreeMap::new();
        let compressed = match recorded(secret.data.as_ref().unwrap_or(&empty)).map_err(corrupt)? {
            Recorded::Inline(bytes) => bytes.to_vec(),
            Recorded::Chunked(manifest) => self.read_state_chunks(key, &manifest).await?,
        };
        gunzip(&compressed).map_err(|e| corrupt(format!("the compressed state is not gzip data: {e}")))
    }

    /// Whether the stored state is `state` (a write whose answer was lost may have landed).
    async fn holds(&self, key: &StateKey, state: &[u8]) -> bool {
        match self.read_state_secret(key).await {
            Ok(Some(secret)) => self.state_of(key, &secret).await.is_ok_and(|stored| stored == state),
            _ => false,
        }
    }

    /// Labels of the chunks of `key`'s state, of the generation `tag` when given.
    fn state_chunk_labels(&self, key: &StateKey, tag: Option<&str>) -> BTreeMap<String, String> {
        let part = [(STATE_LABEL, key.state_name.as_str()), (STATE_PART_LABEL, "chunk")];
        let generation = tag.map(|t| (STATE_DIGEST_LABEL, t));
        self.labels(&key.object, &part.into_iter().chain(generation).collect::<Vec<_>>())
    }

    /// Writes a state too big for one Secret as the chunks `manifest` names. A Secret at a
    /// chunk's name labelled as another object's is refused, never overwritten.
    async fn write_state_chunks(&self, key: &StateKey, manifest: &Manifest, compressed: &[u8]) -> Result<()> {
        let tag = manifest.tag();
        let labels = self.state_chunk_labels(key, Some(&tag));
        let ours = |s: &Secret| match foreign_owner(s.metadata.labels.as_ref(), key) {
            None => Ok(()),
            Some(owner) => Err(BackendError::Foreign {
                what: format!("Secret {}/{}", self.namespace, s.metadata.name.as_deref().unwrap_or("?")),
                key: key.to_string(),
                owner,
            }),
        };
        let name = |n| state_chunk_secret_name(key, &tag, n);
        self.write_chunks("write state chunk", compressed, name, &labels, STATE_CHUNK_DATA, ours).await?;
        Ok(())
    }

    /// The compressed state from the chunks `manifest` names, only if it hashes to the
    /// manifest's digest.
    async fn read_state_chunks(&self, key: &StateKey, manifest: &Manifest) -> Result<Vec<u8>> {
        let tag = manifest.tag();
        let corrupt = |reason: String| BackendError::Corrupt { what: format!("state of {key}"), reason };
        let belongs =
            |labels: &BTreeMap<String, String>| labels.get(STATE_DIGEST_LABEL) == Some(&tag) && foreign_owner(Some(labels), key).is_none();
        let name = |n| state_chunk_secret_name(key, &tag, n);
        let bytes = self.read_chunks("read state", manifest.chunks, name, STATE_CHUNK_DATA, "this state", belongs, corrupt).await?;
        let actual = sha256_digest(&bytes);
        if actual != manifest.digest {
            return Err(BackendError::StateDigestMismatch { key: key.to_string(), expected: manifest.digest.clone(), actual });
        }
        Ok(bytes)
    }

    /// Deletes the chunks of `key`'s state: of generation `tag`, or all of them. Found by
    /// label, so only Secrets labelled as this state's are touched.
    async fn delete_state_chunks(&self, key: &StateKey, tag: Option<&str>) -> Result<()> {
        let selector = self.state_chunk_labels(key, tag).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let list = self
            .secrets()
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.error("delete state chunks", "list", SECRETS, &format!("{}-*", state_secret_name(key)), e))?;
        for name in list.items.into_iter().filter_map(|s| s.metadata.name) {
            self.delete_secret("delete state chunk", &name).await?;
        }
        Ok(())
    }

    /// After a committed write: removes the chunks of the generation it replaced, unless the
    /// new state is that generation. A failure only leaves unused Secrets behind (the state
    /// is written), so it is logged, not returned.
    async fn drop_replaced_chunks(&self, key: &StateKey, replaced: Option<Manifest>, written: Option<&Manifest>) {
        let Some(old) = replaced.map(|m| m.tag()) else { return };
        if written.is_some_and(|m| m.tag() == old) {
            return;
        }
        if let Err(e) = self.delete_state_chunks(key, Some(&old)).await {
            tracing::warn!("state of {key} is written; its earlier chunks {old} were not removed: {e}");
        }
    }

    /// Writes the main state Secret: the commit point of a write, with the resourceVersion it
    /// read and the lock checked before each attempt. Returns the manifest of the Secret it
    /// replaced (the generation of chunks no longer named).
    async fn commit_state(
        &self,
        key: &StateKey,
        state: &[u8],
        compressed: &[u8],
        manifest: Option<&Manifest>,
        lock_id: Option<&str>,
    ) -> Result<Option<Manifest>> {
        let name = state_secret_name(key);
        let api = self.secrets();
        for _ in 0..ATTEMPTS {
            if let Some(id) = lock_id {
                self.check_holder(key, id).await?;
            }
            let current = self.read_state_secret(key).await?;
            let replaced = current.as_ref().and_then(|s| s.data.as_ref()).and_then(|d| match recorded(d) {
                Ok(Recorded::Chunked(m)) => Some(m),
                _ => None,
            });
            let (verb, written) = match current {
                // Only the data and our labels change: labels or annotations others added stay.
                Some(mut secret) => {
                    record(secret.data.get_or_insert_default(), compressed, manifest);
                    secret.metadata.labels.get_or_insert_default().extend(self.state_secret_labels(key));
                    secret.metadata.managed_fields = None;
                    ("update", api.replace(&name, &PostParams::default(), &secret).await)
                }
                None => {
                    let mut data = BTreeMap::new();
                    record(&mut data, compressed, manifest);
                    let secret = Secret {
                        metadata: self.meta(&name, self.state_secret_labels(key)),
                        data: Some(data),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    };
                    ("create", api.create(&PostParams::default(), &secret).await)
                }
            };
            match written {
                Ok(_) => return Ok(replaced),
                // Another write came between our read and ours (or ours landed and its answer
                // was lost, and a retry conflicts with it): read again.
                Err(e) if status(&e) == Some(409) => {
                    if self.holds(key, state).await {
                        return Ok(replaced);
                    }
                    tracing::debug!("state Secret {name} changed while it was written; retrying");
                }
                Err(e) => {
                    let e = self.error("write state", verb, SECRETS, &name, e);
                    if matches!(e, BackendError::Unreachable { .. }) && self.holds(key, state).await {
                        return Ok(replaced);
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

    async fn check_holder(&self, key: &StateKey, id: &str) -> Result<()> {
        match self.read_lock(key).await? {
            Some(held) if held.info.id == id => Ok(()),
            _ => Err(BackendError::LockMismatch { key: key.to_string(), id: id.to_string() }),
        }
    }

    /// Deletes the main state Secret, only at the resourceVersion it was read at.
    async fn delete_state_secret(&self, key: &StateKey) -> Result<()> {
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

    // ---- plans ----

    /// Creates the Secret, or replaces the one of that name if `replaceable` allows it.
    async fn upsert(&self, op: &'static str, secret: Secret, replaceable: impl Fn(&Secret) -> Result<()>) -> Result<()> {
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
            replaceable(&current)?;
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

    /// Writes `bytes` as Secrets of at most [`CHUNK_SIZE`] under `data_key`, chunk `n` named
    /// `name(n)` with its index in [`CHUNK_ANNOTATION`]; returns how many. Callers write these
    /// before the Secret that names them, so nothing names a half-written blob.
    async fn write_chunks(
        &self,
        op: &'static str,
        bytes: &[u8],
        name: impl Fn(usize) -> String,
        labels: &BTreeMap<String, String>,
        data_key: &str,
        replaceable: impl Fn(&Secret) -> Result<()>,
    ) -> Result<usize> {
        let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_SIZE).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let mut metadata = self.meta(&name(n), labels.clone());
            metadata.annotations = Some([(CHUNK_ANNOTATION.to_string(), n.to_string())].into());
            let secret = Secret {
                metadata,
                data: Some([(data_key.to_string(), ByteString(chunk.to_vec()))].into()),
                type_: Some("Opaque".into()),
                ..Default::default()
            };
            self.upsert(op, secret, &replaceable).await?;
        }
        Ok(chunks.len())
    }

    /// The bytes of `count` chunks written by [`Self::write_chunks`], in order. Each must carry
    /// its own index and labels that `belongs` accepts; a missing or foreign chunk is
    /// corrupt data (`corrupt`), never skipped. Callers check the digest of the result.
    #[allow(clippy::too_many_arguments)]
    async fn read_chunks(
        &self,
        op: &'static str,
        count: usize,
        name: impl Fn(usize) -> String,
        data_key: &str,
        whole: &str,
        belongs: impl Fn(&BTreeMap<String, String>) -> bool,
        corrupt: impl Fn(String) -> BackendError,
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(count.min(64) * CHUNK_SIZE);
        for n in 0..count {
            let name = name(n);
            let secret = self.secrets().get_opt(&name).await.map_err(|e| self.error(op, "get", SECRETS, &name, e))?;
            let secret = secret.ok_or_else(|| corrupt(format!("chunk {n} of {count} (Secret {name}) is missing")))?;
            let labels = secret.metadata.labels.unwrap_or_default();
            let index = secret.metadata.annotations.as_ref().and_then(|a| a.get(CHUNK_ANNOTATION));
            if !belongs(&labels) || index != Some(&n.to_string()) {
                return Err(corrupt(format!("Secret {name} is not chunk {n} of {whole}")));
            }
            let chunk =
                secret.data.and_then(|mut d| d.remove(data_key)).ok_or_else(|| corrupt(format!("Secret {name} has no {data_key} data")))?;
            bytes.extend_from_slice(&chunk.0);
        }
        Ok(bytes)
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
            Some(secret) => self.state_of(key, &secret).await.map(Some),
        }
    }

    /// A state whose gzip fits is one Secret as other tools write it. A bigger one goes to
    /// chunk Secrets first; the main Secret, naming them by digest, is written last and is
    /// the commit point; only then are the chunks of the generation it replaced removed.
    async fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> Result<()> {
        let compressed =
            gzip(state).map_err(|e| BackendError::Remote { op: "compress state", key: key.to_string(), detail: e.to_string() })?;
        let manifest = layout(&compressed);
        if let Some(m) = &manifest {
            if let Some(id) = lock_id {
                self.check_holder(key, id).await?;
            }
            self.write_state_chunks(key, m, &compressed).await?;
        }
        let replaced = self.commit_state(key, state, &compressed, manifest.as_ref(), lock_id).await?;
        self.drop_replaced_chunks(key, replaced, manifest.as_ref()).await;
        Ok(())
    }

    /// The main Secret first (with the resourceVersion read, so nothing written in between
    /// is lost), then every chunk of this state, so none is left named by a Secret.
    async fn delete(&self, key: &StateKey) -> Result<()> {
        self.delete_state_secret(key).await?;
        self.delete_state_chunks(key, None).await
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
        let labels = self.labels(object, &[(PLAN_LABEL, id), (PART_LABEL, "chunk")]);
        let name = |n| plan_chunk_secret_name(object, id, n);
        let count = self.write_chunks("store plan", plan, name, &labels, CHUNK_DATA, any_secret).await?;
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| BackendError::Corrupt { what: "plan meta".into(), reason: e.to_string() })?;
        let data = [
            (META_DATA.to_string(), ByteString(json)),
            (DIGEST_DATA.to_string(), ByteString(meta.digest.clone().into_bytes())),
            (CHUNKS_DATA.to_string(), ByteString(count.to_string().into_bytes())),
        ];
        let secret = Secret {
            metadata: self.meta(&plan_meta_secret_name(object, id), self.labels(object, &[(PLAN_LABEL, id), (PART_LABEL, "meta")])),
            data: Some(data.into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        self.upsert("store plan meta", secret, any_secret).await?;
        // Chunks left by an earlier, longer version of the same plan id.
        for (name, _, is_meta, index) in self.plan_secrets(object, Some(id)).await? {
            if !is_meta && index.is_none_or(|n| n >= count) {
                self.delete_secret("delete plan", &name).await?;
            }
        }
        Ok(())
    }

    async fn get_plan(&self, object: &ObjectKey, id: &str) -> Result<(PlanMeta, Vec<u8>)> {
        let not_found = || BackendError::PlanNotFound { object: object.to_string(), id: id.to_string() };
        let (meta, digest, count) = self.read_plan_meta(object, id).await?.ok_or_else(not_found)?;
        let corrupt = |reason: String| BackendError::Corrupt { what: format!("plan {id} of {object}"), reason };
        let belongs = |labels: &BTreeMap<String, String>| labels.get(PLAN_LABEL) == Some(&label_value(id));
        let name = |n| plan_chunk_secret_name(object, id, n);
        let bytes = self.read_chunks("read plan", count, name, CHUNK_DATA, "this plan", belongs, corrupt).await?;
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

/// What follows `tfstate-` in the names of a state's objects: `<workspace>-<suffix>` with a
/// secretSuffix (its state name already), else `<workspace>-<object>`.
fn state_stem(key: &StateKey) -> String {
    match &key.secret_suffix {
        Some(_) => key.state_name.clone(),
        None => format!("{}-{}", key.state_name, key.object.name),
    }
}

/// The Secret holding a state: `tfstate-<workspace>-<object>`, or with a secretSuffix
/// `tfstate-<workspace>-<suffix>`, as tofu-controller names it.
pub fn state_secret_name(key: &StateKey) -> String {
    object_name(&format!("tfstate-{}", state_stem(key)))
}

/// The Secret holding chunk `n` of a state too big for one Secret, of the generation `tag`
/// (the short digest of the compressed state).
pub fn state_chunk_secret_name(key: &StateKey, tag: &str, n: usize) -> String {
    object_name(&format!("tfstate-{}-{tag}-{n}", state_stem(key)))
}

/// The Lease locking a state.
pub fn lock_lease_name(key: &StateKey) -> String {
    object_name(&format!("tflock-{}", state_stem(key)))
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
        StateKey {
            object: ObjectKey { kind: "Terraform".into(), namespace: "ns".into(), name: name.into() },
            state_name: state.into(),
            secret_suffix: None,
        }
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
        let key = StateKey {
            object: ObjectKey { kind: "Terraform".into(), namespace: "ns".into(), name: "a-b".into() },
            state_name: "c".into(),
            secret_suffix: None,
        };
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
    fn a_state_is_chunked_only_when_its_gzip_does_not_fit_with_a_margin() {
        assert_eq!(layout(&vec![0; STATE_INLINE_LIMIT]), None, "fits: one Secret, as other tools write it");
        let big = vec![7; STATE_INLINE_LIMIT + 1];
        let manifest = layout(&big).unwrap();
        assert_eq!(manifest, Manifest { digest: sha256_digest(&big), chunks: 2 });
        assert_eq!(Manifest::of(&vec![1; 3 * CHUNK_SIZE]).chunks, 3);
        assert_eq!(manifest.tag().len(), STATE_TAG_LEN);
        assert!(manifest.digest.trim_start_matches("sha256:").starts_with(&manifest.tag()));
    }

    #[test]
    fn chunk_names_carry_the_generation_and_the_index() {
        let key = key("default", "app");
        assert_eq!(state_chunk_secret_name(&key, "0123456789ab", 2), "tfstate-default-app-0123456789ab-2");
        assert_ne!(state_chunk_secret_name(&key, "0123456789ab", 0), state_chunk_secret_name(&key, "ba9876543210", 0));
    }

    #[test]
    fn a_state_secret_records_one_layout_and_switching_drops_the_other() {
        let manifest = Manifest { digest: "sha256:abc".into(), chunks: 3 };
        let mut data: BTreeMap<String, ByteString> = [("other".to_string(), ByteString(b"kept".to_vec()))].into();
        record(&mut data, b"gz", Some(&manifest));
        assert_eq!(recorded(&data), Ok(Recorded::Chunked(manifest.clone())));
        assert!(!data.contains_key(STATE_DATA));
        record(&mut data, b"gz", None);
        assert_eq!(recorded(&data), Ok(Recorded::Inline(b"gz")));
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["other", STATE_DATA], "the manifest is gone, other keys stay");

        // A tool that wrote `tfstate` over a chunked Secret: its state is the current one.
        record(&mut data, b"gz", Some(&manifest));
        data.insert(STATE_DATA.into(), ByteString(b"theirs".to_vec()));
        assert_eq!(recorded(&data), Ok(Recorded::Inline(b"theirs")));

        assert!(recorded(&BTreeMap::new()).unwrap_err().contains("no key tfstate"));
        let bad: BTreeMap<String, ByteString> =
            [(DIGEST_DATA.to_string(), ByteString(b"sha256:abc".to_vec())), (CHUNKS_DATA.to_string(), ByteString(b"many".to_vec()))].into();
        assert!(recorded(&bad).unwrap_err().contains("not a number"));
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
