//! `spec.writeOutputsToSecret`: which outputs go under which keys (pure), and the one write.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{ConditionStatus, Kind, Terraform, WriteOutputsToSecret, annotation, condition_type as ct, reason};
use crate::dispatch::{Output, RunnerDispatch};
use crate::reconcile::Run;
use crate::store::ObjectStore;

/// The suffix of the key that records the type of the value of the key it extends
/// (`ports__type`), tofu-controller's convention.
pub const TYPE_SUFFIX: &str = "__type";

/// terraform's type of a JSON value when terraform did not say (older versions' streams):
/// what `output -json` would call it.
fn type_of(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    match value {
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("dynamic"),
        Value::Array(items) => json!(["tuple", items.iter().map(type_of).collect::<Vec<_>>()]),
        Value::Object(fields) => {
            json!(["object", fields.iter().map(|(k, v)| (k.clone(), type_of(v))).collect::<serde_json::Map<_, _>>()])
        }
    }
}

/// The Secret's data for `target`: every output (or the ones it names, `name` or
/// `name:key`) as text, and the names it asks for that the module does not have.
pub fn select(target: &WriteOutputsToSecret, outputs: &[Output]) -> (BTreeMap<String, ByteString>, Vec<String>) {
    let wanted = keys(target, outputs.iter().map(|o| o.name.as_str()));
    let mut data = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, key) in wanted {
        match outputs.iter().find(|o| o.name == name) {
            Some(o) => {
                let text = match &o.value {
                    serde_json::Value::String(s) => s.clone(),
                    other => {
                        // Its type beside it, as tofu-controller writes it, so a reader
                        // (readInputsFromSecrets, here or in tofu-controller) gets the value
                        // back as a list or a number, not as text.
                        let value_type = o.value_type.clone().unwrap_or_else(|| type_of(other));
                        data.insert(format!("{key}{TYPE_SUFFIX}"), ByteString(value_type.to_string().into_bytes()));
                        other.to_string()
                    }
                };
                data.insert(key, ByteString(text.into_bytes()));
            }
            None => missing.push(name),
        }
    }
    (data, missing)
}

/// The outputs `target` asks for, each with the Secret key it goes under: every one of
/// `names` under its own name when the target lists none, else the ones it lists (`name` or
/// `name:key`).
pub fn keys<'a>(target: &WriteOutputsToSecret, names: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    if target.outputs.is_empty() {
        return names.map(|n| (n.to_string(), n.to_string())).collect();
    }
    target
        .outputs
        .iter()
        .map(|o| match o.split_once(':') {
            Some((name, key)) => (name.to_string(), key.to_string()),
            None => (o.clone(), o.clone()),
        })
        .collect()
}

/// The ownerReference of what a Terraform writes (collected with it on a cluster).
pub fn owner_references(object: &Terraform) -> Option<Vec<OwnerReference>> {
    object.metadata.uid.clone().map(|uid| {
        vec![OwnerReference {
            api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
            kind: Kind::Terraform.as_str().into(),
            name: object.metadata.name.clone().unwrap_or_default(),
            uid,
            ..Default::default()
        }]
    })
}

/// The owner annotation of the Secrets a Terraform writes.
pub fn owner_of(object: &Terraform) -> String {
    format!("{}/{}", Kind::Terraform, object.metadata.name.as_deref().unwrap_or_default())
}

/// Whether `secret` is this Terraform's outputs Secret: it carries its owner annotation or
/// an ownerReference to it. Any other Secret of that name is not ours to write or delete
/// (it may be another Terraform's state, or a user's).
pub fn owned_by(secret: &Secret, object: &Terraform) -> bool {
    let annotated = secret.metadata.annotations.as_ref().and_then(|a| a.get(annotation::OWNER)).is_some_and(|o| *o == owner_of(object));
    let referenced =
        object.metadata.uid.as_ref().is_some_and(|uid| {
            secret.metadata.owner_references.iter().flatten().any(|r| r.kind == Kind::Terraform.as_str() && r.uid == *uid)
        });
    annotated || referenced
}

/// Writes the outputs Secret and says how it went in the `OutputsWritten` condition. A
/// Secret of that name that this Terraform did not write is left alone.
pub async fn write<S: ObjectStore, D: RunnerDispatch>(run: &mut Run<'_, Terraform, S, D>, outputs: &[Output]) {
    let Some(target) = run.object.spec.write_outputs_to_secret.clone() else { return };
    match run.ctx.store.get::<Secret>(&run.namespace, &target.name).await {
        Ok(Some(existing)) if !owned_by(&existing, &run.object) => {
            let m = format!(
                "Secret {} exists and was not written by this Terraform; it is left alone: choose another spec.writeOutputsToSecret.name, or delete that Secret if it is yours to replace",
                target.name
            );
            run.set(ct::OUTPUTS_WRITTEN, ConditionStatus::False, reason::OUTPUTS_WRITE_FAILED, &m);
            return;
        }
        Ok(_) => {}
        Err(e) => {
            let m = format!("cannot read Secret {}: {e}", target.name);
            run.set(ct::OUTPUTS_WRITTEN, ConditionStatus::False, reason::OUTPUTS_WRITE_FAILED, &m);
            return;
        }
    }
    let (data, missing) = select(&target, outputs);
    let owner = owner_of(&run.object);
    let owner_references = owner_references(&run.object);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target.name.clone()),
            namespace: Some(run.namespace.clone()),
            labels: Some(target.labels.clone()),
            annotations: Some(target.annotations.clone().into_iter().chain([(annotation::OWNER.to_string(), owner)]).collect()),
            owner_references,
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    match run.ctx.store.apply(&secret).await {
        Ok(_) if missing.is_empty() => {
            run.set(ct::OUTPUTS_WRITTEN, ConditionStatus::True, reason::SUCCEEDED, &format!("outputs written to Secret {}", target.name));
        }
        Ok(_) => {
            let m = format!("outputs {} named in spec.writeOutputsToSecret.outputs do not exist", missing.join(", "));
            run.set(ct::OUTPUTS_WRITTEN, ConditionStatus::False, reason::OUTPUTS_WRITE_FAILED, &m);
        }
        Err(e) => {
            let m = format!("cannot write Secret {}: {e}", target.name);
            run.set(ct::OUTPUTS_WRITTEN, ConditionStatus::False, reason::OUTPUTS_WRITE_FAILED, &m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(name: &str, value: serde_json::Value) -> Output {
        Output { name: name.into(), value, sensitive: false, value_type: None }
    }

    #[test]
    fn only_a_secret_this_terraform_wrote_is_its_own() {
        let tf: Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "team", "uid": "u-1" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1h" }
        }))
        .expect("terraform");
        let with = |annotations: &[(&str, &str)], owner_uid: Option<&str>| Secret {
            metadata: ObjectMeta {
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference { kind: "Terraform".into(), uid: uid.into(), name: "app".into(), ..Default::default() }]
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(owned_by(&with(&[(annotation::OWNER, "Terraform/app")], None), &tf), "written by it (annotation)");
        assert!(owned_by(&with(&[], Some("u-1")), &tf), "owned by it (ownerReference)");
        assert!(!owned_by(&with(&[], None), &tf), "a user's Secret");
        assert!(!owned_by(&with(&[(annotation::OWNER, "Terraform/other")], Some("u-2")), &tf), "another Terraform's");
    }

    #[test]
    fn outputs_are_written_as_text_under_the_keys_asked_for() {
        let outputs = [output("endpoint", serde_json::json!("10.0.0.1")), output("ports", serde_json::json!([80, 443]))];
        let (data, missing) = select(&WriteOutputsToSecret { name: "out".into(), ..Default::default() }, &outputs);
        assert_eq!(data.get("endpoint").map(|b| b.0.as_slice()), Some(&b"10.0.0.1"[..]));
        assert_eq!(data.get("ports").map(|b| b.0.as_slice()), Some(&b"[80,443]"[..]));
        assert_eq!(data.get("ports__type").map(|b| b.0.as_slice()), Some(&br#"["tuple",["number","number"]]"#[..]));
        assert!(!data.contains_key("endpoint__type"), "a string needs no type");
        assert!(missing.is_empty());
        let target =
            WriteOutputsToSecret { name: "out".into(), outputs: vec!["endpoint:host".into(), "nope".into()], ..Default::default() };
        let (data, missing) = select(&target, &outputs);
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["host"]);
        assert_eq!(missing, vec!["nope".to_string()]);
    }
}
