//! A state an apply could not save (`RunResult.unsavedState`): terraform changed resources,
//! the backend refused the state and the runner could not save it either, so the run's
//! result is the only record of what exists. The controller keeps it in a Secret of the
//! Terraform's namespace as soon as it hears of it, then has a save-state run (the runner
//! has the backend's rights) put it in the backend; until that worked, the Terraform runs
//! nothing else, because a plan against the old state would make everything again.
//!
//! A module with a backend of its own (`customConfiguration`, `backendConfig.disable`) is
//! not driftless's to write: its Secret stays for a person to push the state there.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{Kind, Terraform, annotation};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::Run;
use crate::store::{ObjectStore, StoreError};
use driftless_core::contract::UnsavedState;

/// The Secret key of the state.
pub const STATE_KEY: &str = "tfstate";
/// The Secret key of the lock terraform held on the state, when it held one.
pub const LOCK_KEY: &str = "lock";

/// The Secret that keeps the unsaved state of `terraform`.
pub fn secret_name(terraform: &str) -> String {
    format!("{terraform}-unsaved-tfstate")
}

/// The Secret keeping `state` for `object`. No ownerReference: deleting the Terraform must
/// not collect the only record of what its last apply made.
pub fn secret(object: &Terraform, namespace: &str, state: &UnsavedState) -> Secret {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut data = BTreeMap::from([(STATE_KEY.to_string(), ByteString(state.state.clone().into_bytes()))]);
    if let Some(lock) = &state.lock {
        data.insert(LOCK_KEY.to_string(), ByteString(lock.clone().into_bytes()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&name)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (driftless_core::names::label::MANAGED_BY.to_string(), driftless_core::names::label::MANAGED_BY_VALUE.to_string()),
                (driftless_core::names::label::KIND.to_string(), Kind::Terraform.as_str().to_string()),
                (driftless_core::names::label::NAME.to_string(), name.clone()),
            ])),
            annotations: Some(BTreeMap::from([(annotation::OWNER.to_string(), format!("{}/{name}", Kind::Terraform))])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The state a Secret keeps, if it is one of these Secrets of `object`.
pub fn read(secret: &Secret, object: &Terraform) -> Option<UnsavedState> {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let owner = secret.metadata.annotations.as_ref().and_then(|a| a.get(annotation::OWNER));
    if owner.map(String::as_str) != Some(format!("{}/{name}", Kind::Terraform).as_str()) {
        return None;
    }
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    Some(UnsavedState { state: text(STATE_KEY)?, lock: text(LOCK_KEY) })
}

/// The state kept for the object of `run`, if any.
pub async fn pending<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>) -> Result<Option<UnsavedState>, StoreError> {
    let found = run.ctx.store.get::<Secret>(&run.namespace, &secret_name(&run.name)).await?;
    Ok(found.and_then(|s| read(&s, &run.object)))
}

/// Keeps `state` in the Secret.
pub async fn keep<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>, state: &UnsavedState) -> Result<(), StoreError> {
    run.ctx.store.apply(&secret(&run.object, &run.namespace, state)).await.map(|_| ())
}

/// The Secret goes: the backend holds the state now.
pub async fn forget<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>) -> Result<(), StoreError> {
    run.ctx.store.delete::<Secret>(&run.namespace, &secret_name(&run.name)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terraform(name: &str) -> Terraform {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": name, "namespace": "team" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1h" }
        }))
        .expect("terraform")
    }

    #[test]
    fn a_kept_state_reads_back_with_its_lock_and_only_for_its_own_terraform() {
        let state = UnsavedState { state: r#"{"serial":3}"#.into(), lock: Some("tf-lock".into()) };
        let kept = secret(&terraform("app"), "team", &state);
        assert_eq!(kept.metadata.name.as_deref(), Some("app-unsaved-tfstate"));
        assert!(kept.metadata.owner_references.is_none(), "deleting the Terraform must not collect it");
        assert_eq!(read(&kept, &terraform("app")), Some(state.clone()));
        assert_eq!(read(&kept, &terraform("other")), None, "another Terraform's");
        let without_lock = UnsavedState { lock: None, ..state };
        assert_eq!(read(&secret(&terraform("app"), "team", &without_lock), &terraform("app")), Some(without_lock));
        let mut foreign = kept;
        foreign.metadata.annotations = None;
        assert_eq!(read(&foreign, &terraform("app")), None, "a Secret of that name that driftless did not write");
    }
}
