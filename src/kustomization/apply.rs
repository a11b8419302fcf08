//! Server-side apply of built manifests, in stages, and pruning of what left the source.
//!
//! # Guarantees
//! - Field manager `driftless`, conflicts forced (the source is the truth, as in Flux).
//! - CustomResourceDefinitions and Namespaces are applied first and waited for
//!   (Established), so custom resources of a new CRD in the same source apply in one pass.
//! - Every applied object carries the owner labels; prune deletes only objects that carry
//!   them for this Kustomization, and never one annotated `driftless.dev/prune: disabled`.
//! - With `force` (or Flux's `kustomize.toolkit.fluxcd.io/force: enabled` on the object), an
//!   object the API refuses to update (an immutable field) is deleted and created again.
//! - Flux's per-object marks are honoured with Flux's meaning ([`super::policy`]): an object
//!   marked `reconcile: disabled` or `ssa: Ignore` is left alone, one marked `ssa:
//!   IfNotPresent` is only created; a skipped object is still in the result (and so in the
//!   inventory, which keeps it from being pruned while it is in the source).
//! - As Flux's default `ssa: Override`, what kubectl set on an object is taken over before it
//!   is applied, so the apply removes what kubectl added; `ssa: Merge` leaves it to kubectl.
//! - An object Flux applied is taken over in place (same uid): after the first apply, the
//!   managedFields entries of Flux's kustomize-controller are dropped, so driftless is the
//!   only manager of what the source sets and a field later removed from the source goes
//!   away, instead of staying owned by a controller that no longer runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::Value;

use super::inventory::{ObjectId, may_prune, stage_of_kind};
use super::managers::{LAST_APPLIED, adopted_managed_fields, overridden_managed_fields};
use super::policy::{Policy, Skip, policy};
use crate::api::ResourceRef;
use crate::store::kube::{FIELD_MANAGER, describe};

use driftless_core::names::label::{KUSTOMIZATION_NAME as OWNER_NAME_LABEL, KUSTOMIZATION_NAMESPACE as OWNER_NAMESPACE_LABEL};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{object}: no such kind on the cluster ({detail}); is its CRD installed or in the source?")]
    UnknownKind { object: String, detail: String },
    #[error("{object}: {detail}")]
    Refused { object: String, detail: String },
    /// The identity this Kustomization applies with may not do this (a 403).
    #[error(
        "{object}: {detail}; this Kustomization applies as {identity}, which may not do that: give spec.serviceAccountName a ServiceAccount with the rights its manifests need"
    )]
    Forbidden { object: String, detail: String, identity: String },
    #[error("CustomResourceDefinition {name} was not established within {seconds}s")]
    CrdNotEstablished { name: String, seconds: u64 },
    /// A manifest without its identity; only the fields it has are named, never its body
    /// (a Secret's substituted values would leak into status and alerts).
    #[error("a manifest without {0}: every object needs apiVersion, kind and metadata.name")]
    Incomplete(String),
}

/// What applying one object did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub id: ObjectId,
    pub version: String,
    pub action: Action,
    /// The object as the server returned it (the dry-run result when dry; the live object,
    /// or the source's when there is none, when skipped).
    pub result: Value,
    /// The live object before, if any.
    pub live: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    /// A dry run's answer for an object that applying would delete and create again (an
    /// immutable field changed, and it is forced).
    Recreated,
    /// Left alone, as its marks ask.
    Skipped(Skip),
}

/// What deleting the objects of the prune set did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The inventory entries deleted.
    pub deleted: Vec<ResourceRef>,
    /// Those kept, with the reason (`Kind ns/name (why)`).
    pub kept: Vec<String>,
}

/// Whether the API refused a change of an immutable field (what `force` recreates for).
fn immutable(s: &kube::core::Status) -> bool {
    s.code == 422 && s.message.contains("immutable")
}

/// Which identifying fields a manifest lacks.
fn missing_identity(object: &Value) -> String {
    let mut missing = Vec::new();
    for (pointer, field) in [("/apiVersion", "apiVersion"), ("/kind", "kind"), ("/metadata/name", "metadata.name")] {
        if object.pointer(pointer).and_then(Value::as_str).is_none_or(str::is_empty) {
            missing.push(field);
        }
    }
    missing.join(", ")
}

/// The objects of a Kustomization (`namespace/name`) on one cluster.
pub struct Applier {
    client: kube::Client,
    identity: String,
    owner: (String, String),
    resources: Mutex<HashMap<GroupVersionKind, (ApiResource, Scope)>>,
}

impl Applier {
    /// Applies with `client`, whose identity is `identity` (for messages: `ServiceAccount
    /// team/deployer`, or the controller's own).
    pub fn new(client: kube::Client, identity: String, owner_namespace: &str, owner_name: &str) -> Self {
        Self { client, identity, owner: (owner_namespace.to_string(), owner_name.to_string()), resources: Mutex::default() }
    }

    /// The error of a refused request; a 403 says whose rights fell short.
    fn refused(&self, object: String, e: &kube::Error) -> ApplyError {
        match e {
            kube::Error::Api(s) if s.code == 403 => ApplyError::Forbidden { object, detail: describe(e), identity: self.identity.clone() },
            _ => ApplyError::Refused { object, detail: describe(e) },
        }
    }

    async fn api(&self, id: &ObjectId, version: &str) -> Result<Api<DynamicObject>, ApplyError> {
        let gvk = GroupVersionKind::gvk(&id.group, version, &id.kind);
        let cached = self.resources.lock().unwrap_or_else(|e| e.into_inner()).get(&gvk).cloned();
        let (resource, scope) = match cached {
            Some(found) => found,
            None => {
                let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(|e| ApplyError::UnknownKind { object: id.display(), detail: describe(&e) })?;
                self.resources.lock().unwrap_or_else(|e| e.into_inner()).insert(gvk, (resource.clone(), caps.scope.clone()));
                (resource, caps.scope)
            }
        };
        Ok(match scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), &id.namespace, &resource),
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// Adds the owner labels that make an object prunable by this Kustomization only.
    pub fn label(&self, object: &mut Value) {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta.entry("labels").or_insert_with(|| Value::Object(Default::default()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(OWNER_NAME_LABEL.into(), Value::String(self.owner.1.clone()));
                labels.insert(OWNER_NAMESPACE_LABEL.into(), Value::String(self.owner.0.clone()));
            }
        }
    }

    /// Applies every object in stages; `dry_run` asks the server what it would do.
    pub async fn apply_all(&self, objects: &[Value], force: bool, dry_run: bool) -> Result<Vec<Applied>, ApplyError> {
        let mut out = Vec::new();
        for stage in [0u8, 1] {
            let batch: Vec<&Value> = objects.iter().filter(|o| stage_of_kind(o["kind"].as_str().unwrap_or_default()) == stage).collect();
            for object in &batch {
                out.push(self.apply_one(object, force, dry_run).await?);
            }
            if stage == 0 && !dry_run {
                for applied in out.iter().filter(|a| a.id.kind == "CustomResourceDefinition") {
                    self.wait_established(&applied.id.name).await?;
                }
                // New kinds may exist now.
                self.resources.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        }
        Ok(out)
    }

    async fn apply_one(&self, object: &Value, force: bool, dry_run: bool) -> Result<Applied, ApplyError> {
        let (id, version) = ObjectId::of(object).ok_or_else(|| ApplyError::Incomplete(missing_identity(object)))?;
        let api = self.api(&id, &version).await?;
        let live = api.get_opt(&id.name).await.map_err(|e| self.refused(id.display(), &e))?;
        let live_value = live.as_ref().map(|l| serde_json::to_value(l).unwrap_or_default());
        let mode = match policy(object, live_value.as_ref(), force) {
            Policy::Apply(mode) => mode,
            Policy::Skip(why) => {
                tracing::info!(object = %id.display(), "left alone: {why}");
                let result = live_value.clone().unwrap_or_else(|| object.clone());
                return Ok(Applied { id, version, action: Action::Skipped(why), result, live: live_value });
            }
        };
        if let Some(live) = live.as_ref().filter(|_| !dry_run && !mode.merge) {
            self.take_over_from_kubectl(&api, &id, live).await?;
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        let result = match api.patch(&id.name, &params, &Patch::Apply(object)).await {
            Ok(r) => r,
            Err(kube::Error::Api(s)) if mode.force && immutable(&s) && dry_run => {
                return Ok(Applied { id, version, action: Action::Recreated, result: object.clone(), live: live_value });
            }
            Err(kube::Error::Api(s)) if mode.force && immutable(&s) => {
                tracing::info!(object = %id.display(), "recreating: an immutable field changed and it is forced");
                api.delete(&id.name, &DeleteParams::foreground()).await.map_err(|e| self.refused(id.display(), &e))?;
                self.wait_gone(&api, &id.name).await;
                api.patch(&id.name, &params, &Patch::Apply(object)).await.map_err(|e| self.refused(id.display(), &e))?
            }
            Err(e) => {
                return Err(match self.refused(id.display(), &e) {
                    ApplyError::Refused { object, mut detail } => {
                        if detail.contains("immutable") {
                            detail.push_str(&format!(
                                "; set spec.force: true, or annotate the object {}: enabled, to recreate it",
                                driftless_core::names::annotation::FLUX_FORCE
                            ));
                        }
                        ApplyError::Refused { object, detail }
                    }
                    other => other,
                });
            }
        };
        let result = match adopted_managed_fields(&result.metadata.managed_fields) {
            Some(kept) if !dry_run => self.take_over(&api, &id, &result, kept).await?,
            _ => result,
        };
        let action = match &live {
            None => Action::Created,
            // A dry run's answer keeps the live resourceVersion whatever it would change:
            // only a real apply says "unchanged" by it.
            Some(l) if !dry_run && l.metadata.resource_version == result.metadata.resource_version => Action::Unchanged,
            Some(l)
                if dry_run
                    && comparable(&serde_json::to_value(l).unwrap_or_default())
                        == comparable(&serde_json::to_value(&result).unwrap_or_default()) =>
            {
                Action::Unchanged
            }
            Some(_) => Action::Configured,
        };
        Ok(Applied { id, version, action, result: serde_json::to_value(result).unwrap_or_default(), live: live_value })
    }

    /// Before an `ssa: Override` apply: kubectl's managedFields entries join driftless's (and
    /// kubectl's client-side apply record goes), so the apply removes what kubectl added.
    /// Guarded by the live resourceVersion; changed in between, the apply goes on and the next
    /// one takes them over.
    async fn take_over_from_kubectl(&self, api: &Api<DynamicObject>, id: &ObjectId, live: &DynamicObject) -> Result<(), ApplyError> {
        let entries = overridden_managed_fields(&live.metadata.managed_fields, FIELD_MANAGER);
        let recorded = live.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LAST_APPLIED));
        if entries.is_none() && !recorded {
            return Ok(());
        }
        let mut ops =
            vec![serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version })];
        if let Some(entries) = entries {
            ops.push(serde_json::json!({ "op": "replace", "path": "/metadata/managedFields", "value": entries }));
        }
        if recorded {
            ops.push(serde_json::json!({ "op": "remove", "path": format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")) }));
        }
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
            .map_err(|e| ApplyError::Refused { object: id.display(), detail: format!("cannot build the managedFields patch: {e}") })?;
        match api.patch(&id.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => {
                tracing::info!(object = %id.display(), "took over the fields kubectl set (ssa: Override)");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => Ok(()),
            Err(e) => Err(self.refused(id.display(), &e)),
        }
    }

    /// Drops the managedFields entries of the managers driftless takes over from, guarded by
    /// the resourceVersion just applied (a concurrent writer's entries are never lost).
    async fn take_over(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        applied: &DynamicObject,
        kept: Vec<ManagedFieldsEntry>,
    ) -> Result<DynamicObject, ApplyError> {
        let patch = serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": applied.metadata.resource_version },
            { "op": "replace", "path": "/metadata/managedFields", "value": kept },
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| ApplyError::Refused { object: id.display(), detail: format!("cannot build the managedFields patch: {e}") })?;
        match api.patch(&id.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(taken) => {
                tracing::info!(object = %id.display(), "took the object over from Flux's kustomize-controller");
                Ok(taken)
            }
            // Changed in between: the next reconcile's apply tries again.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => Ok(applied.clone()),
            Err(e) => Err(self.refused(id.display(), &e)),
        }
    }

    async fn wait_gone(&self, api: &Api<DynamicObject>, name: &str) {
        for _ in 0..120 {
            if matches!(api.get_opt(name).await, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_established(&self, name: &str) -> Result<(), ApplyError> {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let seconds = 60;
        let established = kube::runtime::wait::conditions::is_crd_established();
        match tokio::time::timeout(Duration::from_secs(seconds), kube::runtime::wait::await_condition(api, name, established)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApplyError::CrdNotEstablished { name: name.to_string(), seconds }),
        }
    }

    /// Deletes stale inventory entries that this Kustomization owns; returns what it deleted
    /// and what it kept (with the reason).
    pub async fn prune(&self, stale: &[ResourceRef]) -> Result<Pruned, ApplyError> {
        let (mut deleted, mut kept) = (Vec::new(), Vec::new());
        for entry in stale {
            let Some(id) = ObjectId::parse(entry) else { continue };
            let api = match self.api(&id, &entry.v).await {
                Ok(api) => api,
                // The kind itself is gone (its CRD was pruned): nothing left to delete.
                Err(ApplyError::UnknownKind { .. }) => continue,
                Err(e) => return Err(e),
            };
            let Some(live) = api.get_opt(&id.name).await.map_err(|e| self.refused(id.display(), &e))? else {
                continue;
            };
            let labels = live.metadata.labels.clone().unwrap_or_default();
            if let Err(why) = may_prune(&labels, live.metadata.annotations.as_ref(), (&self.owner.0, &self.owner.1)) {
                kept.push(format!("{} ({why})", id.display()));
                continue;
            }
            match api.delete(&id.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(entry.clone()),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(self.refused(id.display(), &e)),
            }
        }
        Ok(Pruned { deleted, kept })
    }

    /// Those of `entries` whose object still exists (a deleted one may wait for finalizers).
    pub async fn remaining(&self, entries: &[ResourceRef]) -> Result<Vec<String>, ApplyError> {
        let mut left = Vec::new();
        for entry in entries {
            let Some(id) = ObjectId::parse(entry) else { continue };
            match self.live(&id, &entry.v).await {
                Ok(None) | Err(ApplyError::UnknownKind { .. }) => {}
                Ok(Some(_)) => left.push(id.display()),
                Err(e) => return Err(e),
            }
        }
        Ok(left)
    }

    /// The live object of an inventory entry.
    pub async fn live(&self, id: &ObjectId, version: &str) -> Result<Option<Value>, ApplyError> {
        let api = self.api(id, version).await?;
        let live = api.get_opt(&id.name).await.map_err(|e| self.refused(id.display(), &e))?;
        Ok(live.map(|l| serde_json::to_value(l).unwrap_or_default()))
    }
}

/// An object without what the server changes on every write (for comparing a dry run with
/// the live object).
pub fn comparable(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"] {
            meta.remove(key);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}
