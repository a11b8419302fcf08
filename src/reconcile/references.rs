//! What an object reads before its own work: the artifact of its source and the readiness
//! of its dependencies. One answer for every kind that refers and every kind referred to.

use kube::Resource as _;

use crate::api::{
    Artifact, Conditions, CrossNamespaceSourceReference, DependencyReference, Kind, Reconciled, StatusModel, condition_type as ct,
};
use crate::store::ObjectStore;

use super::ReconcileError;

/// The artifact of the source `reference` names (in `namespace` unless it names its own),
/// or why there is none; `allowed` are the source kinds the referring kind reads. A source
/// that fails now still serves the artifact it has; a Ready source without an artifact of
/// its own (an OCI HelmRepository) gives `None`.
pub async fn source_artifact<S: ObjectStore>(
    store: &S,
    reference: &CrossNamespaceSourceReference,
    namespace: &str,
    allowed: &[Kind],
    artifact_exists: impl Fn(&Artifact) -> bool,
) -> Result<Result<Option<Artifact>, String>, ReconcileError> {
    let namespace = reference.namespace.as_deref().unwrap_or(namespace);
    let (kind, name) = (reference.kind.as_str(), reference.name.as_str());
    let Some(source) = Kind::from_api(kind).filter(|k| allowed.contains(k)) else {
        return Ok(Err(format!("{kind} is not a source kind; use {}", Kind::list(allowed))));
    };
    let found = crate::with_reconciled_kind!(source, K => store.get::<K>(namespace, name).await?.map(|o| {
        let status = o.status().cloned().unwrap_or_default();
        let why = status.condition(ct::READY).map(|c| c.message.clone()).unwrap_or_else(|| "not fetched yet".into());
        (status.artifact().cloned(), status.is_true(ct::READY), why)
    }), _ => None);
    let Some((artifact, ready, why)) = found else {
        return Ok(Err(format!("{kind} {namespace}/{name} not found; create it or fix spec.sourceRef")));
    };
    match artifact {
        Some(a) if ready || artifact_exists(&a) => Ok(Ok(Some(a))),
        // A source Ready without an artifact of its own (an OCI HelmRepository).
        None if ready => Ok(Ok(None)),
        _ => Ok(Err(format!("{kind} {namespace}/{name} has no artifact: {why}"))),
    }
}

/// Why the first of `dependencies` is not Ready at its current generation, or `None` when
/// all are: the one dependency rule of every kind (any kind may depend on any reconciled
/// kind). An entry without a kind is of `default_kind`, the depending object's.
pub async fn unready_dependency<S: ObjectStore>(
    store: &S,
    namespace: &str,
    dependencies: &[DependencyReference],
    default_kind: Kind,
) -> Result<Option<String>, ReconcileError> {
    for d in dependencies {
        let namespace = d.namespace.as_deref().unwrap_or(namespace);
        let named = d.kind.as_deref().unwrap_or(default_kind.as_str());
        let Some(kind) = Kind::from_api(named).filter(|k| k.is_reconciled()) else {
            return Ok(Some(format!("dependency {named} {namespace}/{}: {named} is not a kind driftless reconciles", d.name)));
        };
        let found = crate::with_reconciled_kind!(kind, K => store.get::<K>(namespace, &d.name).await?.map(|o| {
            let generation = o.meta().generation;
            let status = o.status().cloned().unwrap_or_default();
            let ready = status.observed_generation() == generation && status.is_true(ct::READY);
            let why = status.condition(ct::READY).map(|c| c.message.clone()).unwrap_or_else(|| "not reconciled yet".into());
            (ready, why)
        }), _ => None);
        match found {
            None => return Ok(Some(format!("dependency {kind} {namespace}/{} not found", d.name))),
            Some((false, why)) => return Ok(Some(format!("dependency {kind} {namespace}/{} is not ready: {why}", d.name))),
            Some((true, _)) => {}
        }
    }
    Ok(None)
}
