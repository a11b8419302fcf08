//! The last run's log of a Terraform (`driftless logs terraform NAME`): what terraform
//! printed, scrubbed by the runner, kept in the Secret `<name>-runner-log` (key `log`) and
//! replaced by every run. A Secret, not a ConfigMap: a log may carry a value no rule knew
//! to be secret. It goes with the Terraform (its ownerReference; on a local store, the
//! finalizer).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::outputs::{owned_by, owner_of, owner_references};
use crate::api::{Terraform, annotation};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::Run;
use crate::store::{ObjectStore, StoreError};

/// The key of the log in its Secret.
pub const KEY: &str = "log";

/// The Secret keeping the last run's log of `terraform`.
pub fn secret_name(terraform: &str) -> String {
    format!("{terraform}-runner-log")
}

/// Keeps `log` as the last run's; a failure is only logged (the run's outcome is in status).
pub async fn write<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>, log: &str) {
    let name = secret_name(&run.name);
    match run.ctx.store.get::<Secret>(&run.namespace, &name).await {
        Ok(Some(existing)) if !owned_by(&existing, &run.object) => {
            tracing::warn!(secret = %name, "not writing the run's log over a Secret this Terraform did not write");
            return;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(secret = %name, "cannot read the run log's Secret: {e}");
            return;
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(run.namespace.clone()),
            annotations: Some(BTreeMap::from([(annotation::OWNER.to_string(), owner_of(&run.object))])),
            owner_references: owner_references(&run.object),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(KEY.to_string(), ByteString(log.as_bytes().to_vec()))])),
        ..Default::default()
    };
    if let Err(e) = run.ctx.store.apply(&secret).await {
        tracing::warn!(secret = %name, "cannot keep the run's log: {e}");
    }
}

/// The last run's log of `object`, if it ran since logs were kept.
pub async fn read<S: ObjectStore>(store: &S, object: &Terraform) -> Result<Option<String>, StoreError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let name = secret_name(object.metadata.name.as_deref().unwrap_or_default());
    let Some(secret) = store.get::<Secret>(namespace, &name).await? else { return Ok(None) };
    if !owned_by(&secret, object) {
        return Ok(None);
    }
    Ok(secret.data.and_then(|d| d.get(KEY).map(|b| String::from_utf8_lossy(&b.0).into_owned())))
}

/// The log goes with its Terraform.
pub async fn remove<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>) -> Result<(), StoreError> {
    let name = secret_name(&run.name);
    if let Some(existing) = run.ctx.store.get::<Secret>(&run.namespace, &name).await?
        && owned_by(&existing, &run.object)
    {
        run.ctx.store.delete::<Secret>(&run.namespace, &name).await?;
    }
    Ok(())
}
