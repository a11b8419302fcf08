//! tofu-controller's `storeReadablePlan`: each plan also stored where tofu-controller's
//! users read it, so their scripts keep working. `json`: a Secret
//! `tfplan-<workspace>-<name>.json` whose key `tfplan` holds the gzipped `show -json`
//! (annotation `encoding: gzip`); `human`: a ConfigMap `tfplan-<workspace>-<name>` whose key
//! `tfplan` holds `show -no-color`. Both carry tofu-controller's labels and annotations
//! (`infra.contrib.fluxcd.io/plan-name`, `-plan-workspace`, `-plan-full-name`,
//! `-plan-full-workspace`, `-plan-hash`, `savedPlan`), are split into `-0`, `-1`, ... chunks
//! past 1 MiB as tofu-controller does, replace the previous plan's, and go with the object.
//!
//! Unlike tofu-controller, which stores terraform's raw `show -json` (sensitive values in
//! plain text), the JSON has every sensitive value masked (the runner does it).

use std::collections::BTreeMap;
use std::io::Write as _;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::api::{Kind, StoreReadablePlan, Terraform, annotation, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::Run;
use crate::store::{ObjectStore, Severity};

pub const NAME_LABEL: &str = "infra.contrib.fluxcd.io/plan-name";
pub const WORKSPACE_LABEL: &str = "infra.contrib.fluxcd.io/plan-workspace";
const FULL_NAME: &str = "infra.contrib.fluxcd.io/plan-full-name";
const FULL_WORKSPACE: &str = "infra.contrib.fluxcd.io/plan-full-workspace";
const CHUNK: &str = "infra.contrib.fluxcd.io/plan-chunk";
const HASH: &str = "infra.contrib.fluxcd.io/plan-hash";
const SAVED: &str = "savedPlan";
/// The data key, tofu-controller's.
pub const KEY: &str = "tfplan";
/// The most one object holds before the plan is split, tofu-controller's.
const CHUNK_BYTES: usize = 1024 * 1024;

/// The readable plan's objects: Secrets for `json`, ConfigMaps for `human`.
#[derive(Debug, PartialEq)]
pub enum Objects {
    Secrets(Vec<Secret>),
    ConfigMaps(Vec<ConfigMap>),
}

/// A label value as tofu-controller makes one: at most 63 characters, a longer one cut and
/// ended with a digest of the whole.
pub fn safe_label_value(value: &str) -> String {
    if value.len() <= 63 {
        return value.to_string();
    }
    let suffix = format!("-{}", hex::encode(&Sha256::digest(value.as_bytes())[..8]));
    let mut cut = 63 - suffix.len();
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &value[..cut])
}

fn owner_annotation(object: &Terraform) -> String {
    format!("{}/{}", Kind::Terraform, object.metadata.name.as_deref().unwrap_or_default())
}

/// `text` split into pieces of at most `max` bytes, each whole UTF-8.
fn chunks(text: &[u8], max: usize, whole_chars: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        if whole_chars {
            while cut > 0 && (rest[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// The objects holding `text` (the runner's readable plan, in `format`) of plan `plan_id`.
pub fn objects(object: &Terraform, format: StoreReadablePlan, plan_id: &str, text: &str) -> std::io::Result<Objects> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let workspace = object.spec.workspace.clone();
    let suffix = if format == StoreReadablePlan::Json { ".json" } else { "" };
    let full_name = format!("{name}{suffix}");
    let base = format!("tfplan-{workspace}-{full_name}");
    let payload = match format {
        StoreReadablePlan::Json => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(text.as_bytes())?;
            gz.finish()?
        }
        _ => text.as_bytes().to_vec(),
    };
    let pieces = chunks(&payload, CHUNK_BYTES, format == StoreReadablePlan::Human);
    let chunked = pieces.len() > 1;
    let meta = |i: usize, piece: &[u8]| {
        let mut annotations: BTreeMap<String, String> = [
            (FULL_NAME.to_string(), full_name.clone()),
            (FULL_WORKSPACE.to_string(), workspace.clone()),
            (SAVED.to_string(), plan_id.to_string()),
            // Of the whole plan when it is one object, of the piece when chunked (as tofu-controller).
            (HASH.to_string(), hex::encode(Sha256::digest(if chunked { piece } else { text.as_bytes() }))),
            (annotation::OWNER.to_string(), owner_annotation(object)),
        ]
        .into();
        if format == StoreReadablePlan::Json {
            annotations.insert("encoding".into(), "gzip".into());
        }
        if chunked {
            annotations.insert(CHUNK.into(), i.to_string());
        }
        ObjectMeta {
            name: Some(if chunked { format!("{base}-{i}") } else { base.clone() }),
            namespace: object.metadata.namespace.clone(),
            labels: Some(
                [(NAME_LABEL.to_string(), safe_label_value(&full_name)), (WORKSPACE_LABEL.to_string(), safe_label_value(&workspace))]
                    .into(),
            ),
            annotations: Some(annotations),
            owner_references: object.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                    kind: Kind::Terraform.as_str().into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    };
    Ok(match format {
        StoreReadablePlan::Json => Objects::Secrets(
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| Secret {
                    metadata: meta(i, piece),
                    type_: Some("Opaque".into()),
                    data: Some([(KEY.to_string(), ByteString(piece.to_vec()))].into()),
                    ..Default::default()
                })
                .collect(),
        ),
        _ => Objects::ConfigMaps(
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| ConfigMap {
                    metadata: meta(i, piece),
                    data: Some([(KEY.to_string(), String::from_utf8_lossy(piece).into_owned())].into()),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

/// Whether `meta` is one of this Terraform's readable plan objects of `full_name`: its
/// labels, and written by it (driftless's owner annotation or an ownerReference to it).
fn is_ours(meta: &ObjectMeta, object: &Terraform, full_name: &str) -> bool {
    let labels = meta.labels.clone().unwrap_or_default();
    let workspace = safe_label_value(&object.spec.workspace);
    if labels.get(NAME_LABEL) != Some(&safe_label_value(full_name)) || labels.get(WORKSPACE_LABEL) != Some(&workspace) {
        return false;
    }
    let annotated = meta.annotations.as_ref().and_then(|a| a.get(annotation::OWNER)) == Some(&owner_annotation(object));
    let referenced = object
        .metadata
        .uid
        .as_ref()
        .is_some_and(|uid| meta.owner_references.iter().flatten().any(|r| r.kind == Kind::Terraform.as_str() && r.uid == *uid));
    annotated || referenced
}

/// Replaces the stored readable plan with `text` of plan `plan_id`; a failure is an event,
/// never the run's (the plan itself is stored and shown as usual).
pub async fn write<S: ObjectStore, D: RunnerDispatch>(run: &mut Run<'_, Terraform, S, D>, plan_id: &str, text: &str) {
    let format = run.object.spec.store_readable_plan.unwrap_or_default();
    if format == StoreReadablePlan::None {
        return;
    }
    let stored = async {
        let objects = objects(&run.object, format, plan_id, text).map_err(|e| e.to_string())?;
        remove(run, format).await?;
        match objects {
            Objects::Secrets(all) => {
                for o in &all {
                    run.ctx.store.apply(o).await.map_err(|e| e.to_string())?;
                }
            }
            Objects::ConfigMaps(all) => {
                for o in &all {
                    run.ctx.store.apply(o).await.map_err(|e| e.to_string())?;
                }
            }
        }
        Ok::<(), String>(())
    };
    if let Err(e) = stored.await {
        let message = format!("cannot store the readable plan (spec.storeReadablePlan): {e}");
        tracing::warn!("{message}");
        run.event(reason::RECONCILIATION_FAILED, Severity::Error, message, Some(plan_id.to_string()), None);
    }
}

/// Deletes this Terraform's stored readable plan of `format` (every chunk).
pub async fn remove<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Terraform, S, D>, format: StoreReadablePlan) -> Result<(), String> {
    let name = run.object.metadata.name.clone().unwrap_or_default();
    let store = &run.ctx.store;
    match format {
        StoreReadablePlan::Json => {
            let full_name = format!("{name}.json");
            for s in store.list_in::<Secret>(&run.namespace).await.map_err(|e| e.to_string())? {
                if is_ours(&s.metadata, &run.object, &full_name) {
                    store
                        .delete::<Secret>(&run.namespace, s.metadata.name.as_deref().unwrap_or_default())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        StoreReadablePlan::Human => {
            for c in store.list_in::<ConfigMap>(&run.namespace).await.map_err(|e| e.to_string())? {
                if is_ours(&c.metadata, &run.object, &name) {
                    store
                        .delete::<ConfigMap>(&run.namespace, c.metadata.name.as_deref().unwrap_or_default())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        StoreReadablePlan::None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn terraform() -> Terraform {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "team", "uid": "u-1" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1h" }
        }))
        .expect("terraform")
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut out).expect("gzip");
        out
    }

    #[test]
    fn json_is_one_gzipped_secret_named_and_labelled_as_tofu_controller_does() {
        let Objects::Secrets(secrets) = objects(&terraform(), StoreReadablePlan::Json, "plan-1", "{\"a\":1}").expect("objects") else {
            panic!("Secrets")
        };
        assert_eq!(secrets.len(), 1);
        let s = &secrets[0];
        assert_eq!(s.metadata.name.as_deref(), Some("tfplan-default-app.json"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(NAME_LABEL).map(String::as_str), Some("app.json"));
        assert_eq!(labels.get(WORKSPACE_LABEL).map(String::as_str), Some("default"));
        let annotations = s.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("encoding").map(String::as_str), Some("gzip"));
        assert_eq!(annotations.get(SAVED).map(String::as_str), Some("plan-1"));
        assert_eq!(annotations.get(HASH), Some(&hex::encode(Sha256::digest(b"{\"a\":1}"))));
        let data = s.data.clone().unwrap_or_default();
        assert_eq!(gunzip(&data[KEY].0), "{\"a\":1}");
        assert!(is_ours(&s.metadata, &terraform(), "app.json"));
        assert!(!is_ours(&s.metadata, &terraform(), "app"), "the human form's name is another object");
    }

    #[test]
    fn human_is_a_configmap_chunked_past_a_mebibyte_on_whole_characters() {
        let text = "é".repeat(CHUNK_BYTES); // two bytes each: two MiB
        let Objects::ConfigMaps(maps) = objects(&terraform(), StoreReadablePlan::Human, "plan-1", &text).expect("objects") else {
            panic!("ConfigMaps")
        };
        let names: Vec<&str> = maps.iter().filter_map(|m| m.metadata.name.as_deref()).collect();
        assert_eq!(names, ["tfplan-default-app-0", "tfplan-default-app-1"]);
        let joined: String = maps.iter().map(|m| m.data.clone().unwrap_or_default()[KEY].clone()).collect();
        assert_eq!(joined, text, "the pieces join to the plan");
        assert_eq!(maps[1].metadata.annotations.clone().unwrap_or_default().get(CHUNK).map(String::as_str), Some("1"));
        assert!(!maps[0].metadata.annotations.clone().unwrap_or_default().contains_key("encoding"));
    }

    #[test]
    fn long_label_values_are_cut_with_a_digest_as_tofu_controller_does() {
        assert_eq!(safe_label_value("app.json"), "app.json");
        let long = "a".repeat(80);
        let safe = safe_label_value(&long);
        assert_eq!(safe.len(), 63);
        assert!(safe.starts_with(&"a".repeat(46)) && safe.as_bytes()[46] == b'-', "{safe}");
    }
}
