//! Resolves a Terraform's variables (spec `vars` plus `varsFrom` Secrets and ConfigMaps) and
//! digests every input, so a changed input supersedes the pending plan and an unchanged one
//! keeps it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};

use super::{outputs, template};
use crate::api::{Artifact, FileLocation, Terraform, VariableSource};
use crate::backend::{S3Connection, S3Credentials, S3Location};
use crate::dispatch::{BackendSpec, RunVariable};
use crate::store::{ObjectStore, StoreError};
use driftless_core::contract::{FileLocation as ContractLocation, RunFile, TerraformOptions};

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

/// Variables in tofu-controller's precedence: `values` (its templates rendered over
/// `readInputsFromSecrets`), then `vars`, then the `varsFrom` entries in order, each
/// winning over what came before.
pub async fn resolve_variables<S: ObjectStore>(store: &S, object: &Terraform) -> Result<Vec<RunVariable>, InputError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: BTreeMap<String, RunVariable> = BTreeMap::new();
    if let Some(values) = &object.spec.values {
        let (value, sensitive) = render_values(store, object, namespace, values).await?;
        vars.insert("values".into(), RunVariable { name: "values".into(), value, sensitive });
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
    Ok(vars.into_values().collect())
}

/// `spec.values` with its `${{ .<as>.<key> }}` references replaced from the Secrets of
/// `readInputsFromSecrets`, and whether a Secret's value went into it.
async fn render_values<S: ObjectStore>(
    store: &S,
    object: &Terraform,
    namespace: &str,
    values: &serde_json::Value,
) -> Result<(serde_json::Value, bool), InputError> {
    let templated = serde_json::to_string(values).is_ok_and(|t| template::has_actions(&t, template::VALUES));
    if !templated {
        return Ok((values.clone(), false));
    }
    let mut inputs = serde_json::Map::new();
    for (index, r) in object.spec.read_inputs_from_secrets.iter().enumerate() {
        let field = format!("spec.readInputsFromSecrets[{index}]");
        let secret = store.get::<Secret>(namespace, &r.name).await?.ok_or_else(|| InputError::MissingAt {
            field: field.clone(),
            what: format!(
                "Secret {namespace}/{} not found; if another Terraform writes it (writeOutputsToSecret), add that Terraform to spec.dependsOn",
                r.name
            ),
        })?;
        let data = secret_inputs(&secret).map_err(|key| InputError::NotTextAt {
            field: field.clone(),
            kind: "Secret".into(),
            name: r.name.clone(),
            key,
        })?;
        inputs.insert(r.alias.clone(), data);
    }
    let rendered = template::render_json(values, template::VALUES, &serde_json::Value::Object(inputs))
        .map_err(|e| InputError::MissingAt { field: "spec.values".into(), what: e.to_string() })?;
    Ok((rendered, !object.spec.read_inputs_from_secrets.is_empty()))
}

/// A Secret's keys as template inputs, as tofu-controller reads an outputs Secret: a key
/// with a `<key>__type` companion holds JSON of that type, any other is text. `Err` is a
/// key that is neither.
fn secret_inputs(secret: &Secret) -> Result<serde_json::Value, String> {
    let data = secret.data.clone().unwrap_or_default();
    let mut out = serde_json::Map::new();
    for (key, value) in &data {
        if key.ends_with(outputs::TYPE_SUFFIX) {
            continue;
        }
        let typed = data.contains_key(&format!("{key}{}", outputs::TYPE_SUFFIX));
        let parsed = if typed {
            serde_json::from_slice(&value.0).map_err(|_| key.clone())?
        } else {
            serde_json::Value::String(String::from_utf8(value.0.clone()).map_err(|_| key.clone())?)
        };
        out.insert(key.clone(), parsed);
    }
    for (key, value) in secret.string_data.clone().unwrap_or_default() {
        out.insert(key, serde_json::Value::String(value));
    }
    Ok(serde_json::Value::Object(out))
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
            BackendSpec::Kubernetes { .. } => BackendSpec::Kubernetes {
                namespace: namespace.to_string(),
                labels: object.spec.backend_config.as_ref().map(|b| b.labels.clone()).unwrap_or_default(),
            },
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

/// The flags of terraform's commands the object sets (what needs no object read).
pub fn terraform_options(object: &Terraform) -> TerraformOptions {
    TerraformOptions {
        targets: object.spec.targets.clone(),
        parallelism: u32::try_from(object.spec.parallelism).ok().filter(|n| *n > 0),
        upgrade_on_init: object.spec.upgrade_on_init,
        refresh_before_apply: object.spec.refresh_before_apply,
        var_files: object.spec.tf_vars_files.clone(),
        backend_disabled: object.spec.backend_config.as_ref().is_some_and(|b| b.disable),
        force_unlock: object.spec.tfstate.as_ref().map(crate::api::TfStateSpec::policy).unwrap_or_default(),
        readable_plan: object.spec.store_readable_plan.and_then(crate::api::StoreReadablePlan::format),
        ..TerraformOptions::default()
    }
}

/// How terraform runs for `object`: its flags, and the files, CLI configuration and backend
/// settings read from its Secrets and ConfigMaps.
pub async fn resolve_options<S: ObjectStore>(store: &S, object: &Terraform) -> Result<TerraformOptions, InputError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let mut options = terraform_options(object);
    for (index, mapping) in object.spec.file_mappings.iter().enumerate() {
        let field = format!("spec.fileMappings[{index}].secretRef");
        let r = &mapping.secret_ref;
        let secret = store.get::<Secret>(namespace, &r.name).await?.ok_or_else(|| InputError::MissingAt {
            field: field.clone(),
            what: format!("Secret {namespace}/{} not found; create it", r.name),
        })?;
        let content = secret_bytes(&secret, &r.key)
            .ok_or_else(|| InputError::MissingAt { field, what: format!("key {:?} not found in Secret {}; add it", r.key, r.name) })?;
        let location = match mapping.location {
            FileLocation::Home => ContractLocation::Home,
            FileLocation::Workspace => ContractLocation::Workspace,
        };
        options.files.push(RunFile { location, path: mapping.path.clone(), content });
    }
    if let Some(r) = &object.spec.cli_config_secret_ref {
        let field = "spec.cliConfigSecretRef";
        let ns = r.namespace.as_deref().unwrap_or(namespace);
        let secret = store
            .get::<Secret>(ns, &r.name)
            .await?
            .ok_or_else(|| InputError::MissingAt { field: field.into(), what: format!("Secret {ns}/{} not found; create it", r.name) })?;
        let mut keys: Vec<String> = secret.data.iter().flatten().map(|(k, _)| k.clone()).collect();
        keys.extend(secret.string_data.iter().flatten().map(|(k, _)| k.clone()));
        let [key] = keys.as_slice() else {
            return Err(InputError::MissingAt {
                field: field.into(),
                what: format!(
                    "Secret {} must hold exactly one key, the CLI configuration (a name ending in .tfrc); it holds {}",
                    r.name,
                    keys.len()
                ),
            });
        };
        if !key.ends_with(".tfrc") {
            return Err(InputError::MissingAt {
                field: field.into(),
                what: format!("Secret {} key {key:?} must end in .tfrc (it holds terraform's CLI configuration)", r.name),
            });
        }
        let content = secret_bytes(&secret, key).unwrap_or_default();
        options.cli_config = Some(RunFile { location: ContractLocation::Workspace, path: key.clone(), content });
    }
    for (index, r) in object.spec.backend_configs_from.iter().enumerate() {
        let field = format!("spec.backendConfigsFrom[{index}]");
        let (data, sensitive): (BTreeMap<String, String>, bool) = match r.kind.as_str() {
            "Secret" => match store.get::<Secret>(namespace, &r.name).await? {
                Some(secret) => (
                    secret_strings(&secret).map_err(|key| InputError::NotTextAt {
                        field: field.clone(),
                        kind: "Secret".into(),
                        name: r.name.clone(),
                        key,
                    })?,
                    true,
                ),
                None if r.optional => continue,
                None => return Err(missing_object(&field, "Secret", namespace, &r.name)),
            },
            _ => match store.get::<ConfigMap>(namespace, &r.name).await? {
                Some(cm) => (cm.data.unwrap_or_default(), false),
                None if r.optional => continue,
                None => return Err(missing_object(&field, "ConfigMap", namespace, &r.name)),
            },
        };
        let keys: Vec<String> = if r.keys.is_empty() { data.keys().cloned().collect() } else { r.keys.clone() };
        for key in keys {
            let value = data.get(&key).ok_or_else(|| InputError::MissingAt {
                field: field.clone(),
                what: format!("key {key:?} not found in {} {}; add it or leave it out of keys", r.kind, r.name),
            })?;
            options.backend_configs.push(RunVariable { name: key, value: serde_json::Value::String(value.clone()), sensitive });
        }
    }
    Ok(options)
}

fn missing_object(field: &str, kind: &str, namespace: &str, name: &str) -> InputError {
    InputError::MissingAt {
        field: field.to_string(),
        what: format!("{kind} {namespace}/{name} not found; create it or mark the reference optional"),
    }
}

/// The bytes of one key of a Secret (`data`, or `stringData` as a local store may hold it).
fn secret_bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(key)).map(|s| s.clone().into_bytes()))
}

/// Everything a plan depends on besides live infrastructure. Variable values enter only as
/// digests, so this digest may be shown and stored.
pub fn inputs_digest(object: &Terraform, artifact: &Artifact, variables: &[RunVariable], options: &TerraformOptions) -> String {
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
    // What else shapes the plan, each only when set (so the digests of objects without it
    // stay what they were); contents enter as digests only.
    let digest_of = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    if !options.var_files.is_empty() {
        canonical["varFiles"] = serde_json::json!(options.var_files);
    }
    if !options.files.is_empty() {
        let files: Vec<_> =
            options.files.iter().map(|f| serde_json::json!([format!("{:?}", f.location), f.path, digest_of(&f.content)])).collect();
        canonical["files"] = serde_json::json!(files);
    }
    if let Some(config) = &options.cli_config {
        canonical["cliConfig"] = digest_of(&config.content).into();
    }
    if !options.backend_configs.is_empty() {
        let settings: Vec<_> =
            options.backend_configs.iter().map(|c| serde_json::json!([c.name, digest_of(c.value.to_string().as_bytes())])).collect();
        canonical["backendConfigs"] = serde_json::json!(settings);
    }
    if options.backend_disabled {
        canonical["backendDisabled"] = true.into();
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
        let none = TerraformOptions::default();
        let unset = inputs_digest(&object(None), &artifact, &[], &none);
        let tofu = inputs_digest(&object(Some("tofu")), &artifact, &[], &none);
        let terraform = inputs_digest(&object(Some("terraform")), &artifact, &[], &none);
        assert!(unset != tofu && tofu != terraform && unset != terraform);
        // What this object's digest was before `spec.engine` existed: upgrading driftless
        // supersedes no pending plan.
        assert_eq!(unset, "sha256:3eef8bb7feb3c28f086e0b4eeade189e35d10085557687f23a0aee5bf1ad4996");
    }
}
