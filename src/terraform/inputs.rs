//! Resolves a Terraform's variables (spec `vars` plus `varsFrom` Secrets and ConfigMaps) and
//! digests every input, so a changed input supersedes the pending plan and an unchanged one
//! keeps it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};

use crate::api::{Artifact, Terraform, VariableSource};
use crate::backend::{S3Connection, S3Credentials, S3Location};
use crate::dispatch::{BackendSpec, RunVariable};
use crate::store::{ObjectStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("spec.varsFrom[{index}]: {kind} {namespace}/{name} not found; create it or mark the reference optional")]
    MissingVarsSource { index: usize, kind: String, namespace: String, name: String },
    #[error("spec.varsFrom[{index}]: key {key:?} not found in {kind} {name}")]
    MissingKey { index: usize, kind: String, name: String, key: String },
    #[error("spec.varsFrom[{index}]: {kind} {name} key {key:?} is not UTF-8 text")]
    NotText { index: usize, kind: String, name: String, key: String },
    #[error("{field}: {what}")]
    MissingAt { field: String, what: String },
    #[error("{field}: {kind} {name} key {key:?} is not UTF-8 text")]
    NotTextAt { field: String, kind: String, name: String, key: String },
    #[error("spec.backendConfig.s3.secretRef: {0}")]
    BackendSecret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Variables in precedence order: varsFrom entries in order, then spec.vars (as in
/// tofu-controller, inline vars win).
pub async fn resolve_variables<S: ObjectStore>(store: &S, object: &Terraform) -> Result<Vec<RunVariable>, InputError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: BTreeMap<String, RunVariable> = BTreeMap::new();
    for (index, r) in object.spec.vars_from.iter().enumerate() {
        let (data, sensitive): (BTreeMap<String, String>, bool) = match r.kind.as_str() {
            "Secret" => match store.get::<Secret>(namespace, &r.name).await? {
                Some(secret) => (
                    secret_strings(&secret).map_err(|key| InputError::NotText {
                        index,
                        kind: r.kind.clone(),
                        name: r.name.clone(),
                        key,
                    })?,
                    true,
                ),
                None if r.optional => continue,
                None => return Err(missing(index, r, namespace)),
            },
            _ => match store.get::<ConfigMap>(namespace, &r.name).await? {
                Some(cm) => (cm.data.unwrap_or_default(), false),
                None if r.optional => continue,
                None => return Err(missing(index, r, namespace)),
            },
        };
        let selected: Vec<(String, String)> = if r.vars_keys.is_empty() {
            data.keys().map(|k| (k.clone(), k.clone())).collect()
        } else {
            r.vars_keys
                .iter()
                .map(|k| match k.split_once(':') {
                    Some((key, var)) => (key.to_string(), var.to_string()),
                    None => (k.clone(), k.clone()),
                })
                .collect()
        };
        for (key, var) in selected {
            let value = data.get(&key).ok_or_else(|| InputError::MissingKey {
                index,
                kind: r.kind.clone(),
                name: r.name.clone(),
                key: key.clone(),
            })?;
            vars.insert(var.clone(), RunVariable { name: var, value: serde_json::Value::String(value.clone()), sensitive });
        }
    }
    for (index, v) in object.spec.vars.iter().enumerate() {
        let (value, sensitive) = match (&v.value, &v.value_from) {
            (Some(value), _) => (value.clone(), false),
            (None, Some(from)) => match value_from(store, namespace, index, from).await? {
                Some(found) => found,
                None => continue,
            },
            (None, None) => continue,
        };
        vars.insert(v.name.clone(), RunVariable { name: v.name.clone(), value, sensitive });
    }
    if let Some(values) = &object.spec.values {
        vars.insert("values".into(), RunVariable { name: "values".into(), value: values.clone(), sensitive: false });
    }
    Ok(vars.into_values().collect())
}

/// The value of `spec.vars[index].valueFrom`, and whether it is sensitive (a Secret's);
/// `None` when an optional object or key is missing (the variable stays unset).
async fn value_from<S: ObjectStore>(
    store: &S,
    namespace: &str,
    index: usize,
    from: &VariableSource,
) -> Result<Option<(serde_json::Value, bool)>, InputError> {
    let field = |which: &str| format!("spec.vars[{index}].valueFrom.{which}");
    let (which, r, data, sensitive) = if let Some(r) = &from.secret_key_ref {
        let data = match store.get::<Secret>(namespace, &r.name).await? {
            Some(secret) => Some(secret_strings(&secret).map_err(|key| InputError::NotTextAt {
                field: field("secretKeyRef"),
                kind: "Secret".into(),
                name: r.name.clone(),
                key,
            })?),
            None => None,
        };
        ("secretKeyRef", r, data, true)
    } else if let Some(r) = &from.config_map_key_ref {
        let data = store.get::<ConfigMap>(namespace, &r.name).await?.map(|cm| cm.data.unwrap_or_default());
        ("configMapKeyRef", r, data, false)
    } else {
        return Ok(None);
    };
    let kind = if sensitive { "Secret" } else { "ConfigMap" };
    let Some(data) = data else {
        if r.optional {
            return Ok(None);
        }
        return Err(InputError::MissingAt {
            field: field(which),
            what: format!("{kind} {namespace}/{} not found; create it or mark the reference optional", r.name),
        });
    };
    match data.get(&r.key) {
        Some(value) => Ok(Some((serde_json::Value::String(value.clone()), sensitive))),
        None if r.optional => Ok(None),
        None => Err(InputError::MissingAt {
            field: field(which),
            what: format!("key {:?} not found in {kind} {}; add it or mark the reference optional", r.key, r.name),
        }),
    }
}

fn missing(index: usize, r: &crate::api::VarsReference, namespace: &str) -> InputError {
    InputError::MissingVarsSource { index, kind: r.kind.clone(), namespace: namespace.to_string(), name: r.name.clone() }
}

use driftless_core::secret::secret_strings;

/// Where an object's state and plans live: `spec.backendConfig.s3` (with the credentials of
/// its Secret resolved here, so the runner needs no access to the object store), else the
/// store's default backend.
pub async fn resolve_backend<S: ObjectStore>(store: &S, object: &Terraform, default: &BackendSpec) -> Result<BackendSpec, InputError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let Some(s3) = object.spec.backend_config.as_ref().and_then(|b| b.s3.as_ref()) else {
        return Ok(match default {
            // Secrets of the object's own namespace: the runner's ServiceAccount there owns them.
            BackendSpec::Kubernetes { .. } => BackendSpec::Kubernetes { namespace: namespace.to_string() },
            other => other.clone(),
        });
    };
    let credentials = match &s3.secret_ref {
        None => None,
        Some(r) => {
            let secret = store
                .get::<Secret>(namespace, &r.name)
                .await?
                .ok_or_else(|| InputError::BackendSecret(format!("Secret {namespace}/{} not found; create it", r.name)))?;
            let data =
                secret_strings(&secret).map_err(|key| InputError::BackendSecret(format!("Secret {} key {key:?} is not text", r.name)))?;
            Some(S3Credentials::from_secret_data(&data).map_err(|e| InputError::BackendSecret(format!("Secret {}: {e}", r.name)))?)
        }
    };
    Ok(BackendSpec::S3(S3Location {
        bucket: s3.bucket.clone(),
        key_prefix: s3.key_prefix.clone().unwrap_or_default(),
        connection: S3Connection {
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            force_path_style: s3.force_path_style,
            credentials,
            anonymous: false,
        },
    }))
}

/// The state's name: workspace plus optional suffix, as tofu-controller names its Secrets.
pub fn state_name(object: &Terraform) -> String {
    match secret_suffix(object) {
        Some(suffix) => format!("{}-{suffix}", object.spec.workspace),
        None => object.spec.workspace.clone(),
    }
}

/// `spec.backendConfig.secretSuffix`, when set: the state Secret is then
/// `tfstate-<workspace>-<suffix>`, the one tofu-controller wrote.
pub fn secret_suffix(object: &Terraform) -> Option<String> {
    object.spec.backend_config.as_ref().and_then(|b| b.secret_suffix.clone()).filter(|s| !s.is_empty())
}

/// The flags of terraform's commands the object sets.
pub fn terraform_options(object: &Terraform) -> driftless_core::contract::TerraformOptions {
    driftless_core::contract::TerraformOptions {
        targets: object.spec.targets.clone(),
        parallelism: u32::try_from(object.spec.parallelism).ok().filter(|n| *n > 0),
        upgrade_on_init: object.spec.upgrade_on_init,
        refresh_before_apply: object.spec.refresh_before_apply,
        force_unlock: object.spec.tfstate.as_ref().map(crate::api::TfStateSpec::policy).unwrap_or_default(),
        readable_plan: object.spec.store_readable_plan.and_then(crate::api::StoreReadablePlan::format),
    }
}

/// Everything a plan depends on besides live infrastructure. Variable values enter only as
/// digests, so this digest may be shown and stored.
pub fn inputs_digest(object: &Terraform, artifact: &Artifact, variables: &[RunVariable]) -> String {
    let vars: Vec<(String, String)> =
        variables.iter().map(|v| (v.name.clone(), hex::encode(Sha256::digest(v.value.to_string().as_bytes())))).collect();
    let mut canonical = serde_json::json!({
        "artifact": artifact.digest,
        "path": object.spec.path,
        "workspace": object.spec.workspace,
        "state": state_name(object),
        "destroy": object.spec.destroy,
        "backend": object.spec.backend_config.as_ref().and_then(|b| b.custom_configuration.clone()),
        // Where the state lives shapes the plan (never the credentials: rotating them keeps
        // the pending plan).
        "s3": object.spec.backend_config.as_ref().and_then(|b| b.s3.as_ref()).map(|s3| {
            serde_json::json!([s3.bucket, s3.key_prefix, s3.endpoint, s3.region])
        }),
        "vars": vars,
    });
    // What terraform is asked to plan: other targets, another plan. Only when set, so the
    // digest of every object without targets stays what it was.
    if !object.spec.targets.is_empty() {
        canonical["targets"] = serde_json::json!(object.spec.targets);
    }
    // A plan is applied by the engine that made it: choosing another one supersedes it.
    // Unset adds nothing, so the plan ids of objects without the field stay as they were.
    if let (Some(engine), Some(fields)) = (object.spec.engine, canonical.as_object_mut()) {
        fields.insert("engine".into(), engine.command().into());
    }
    format!("sha256:{}", hex::encode(Sha256::digest(canonical.to_string().as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(engine: Option<&str>) -> Terraform {
        let mut spec = serde_json::json!({ "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "10m" });
        if let Some(engine) = engine {
            spec["engine"] = engine.into();
        }
        let object =
            serde_json::json!({ "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform", "metadata": { "name": "app" }, "spec": spec });
        serde_json::from_value(object).unwrap()
    }

    #[test]
    fn choosing_an_engine_supersedes_the_plan_and_an_unset_one_keeps_the_old_plan_ids() {
        let artifact = Artifact {
            path: "a".into(),
            url: "file:///a".into(),
            revision: "sha1:1".into(),
            digest: "sha256:00".into(),
            last_update_time: String::new(),
            size: 0,
        };
        let unset = inputs_digest(&object(None), &artifact, &[]);
        let tofu = inputs_digest(&object(Some("tofu")), &artifact, &[]);
        let terraform = inputs_digest(&object(Some("terraform")), &artifact, &[]);
        assert!(unset != tofu && tofu != terraform && unset != terraform);
        // What this object's digest was before `spec.engine` existed: upgrading driftless
        // supersedes no pending plan.
        assert_eq!(unset, "sha256:3eef8bb7feb3c28f086e0b4eeade189e35d10085557687f23a0aee5bf1ad4996");
    }
}
