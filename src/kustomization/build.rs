//! What a Kustomization applies: its source's manifests at `spec.path`, built with
//! [`crate::kustomize`], the spec's own kustomize fields as an overlay, and postBuild
//! substitution with the variables its ConfigMaps and Secrets hold.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;

use crate::api::{Artifact, Kustomization, reason};
use crate::reconcile::ReconcileError;
use crate::source::ArtifactStore;
use crate::store::ObjectStore;

/// The variables of `postBuild`: ConfigMaps and Secrets in order, then the spec's own; and
/// the values that came from Secrets, which no message may show.
pub async fn variables<S: ObjectStore>(
    store: &S,
    object: &Kustomization,
) -> Result<Result<(BTreeMap<String, String>, Vec<String>), String>, ReconcileError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars = BTreeMap::new();
    let mut secret_values = Vec::new();
    let Some(post) = &object.spec.post_build else { return Ok(Ok((vars, secret_values))) };
    for (i, r) in post.substitute_from.iter().enumerate() {
        let data = if r.kind == "Secret" {
            store.get::<Secret>(namespace, &r.name).await?.map(|s| {
                driftless_core::secret::secret_strings(&s)
                    .map_err(|k| format!("spec.postBuild.substituteFrom[{i}]: Secret {} key {k:?} is not text", r.name))
            })
        } else {
            store.get::<ConfigMap>(namespace, &r.name).await?.map(|c| Ok(c.data.unwrap_or_default()))
        };
        match data {
            Some(Ok(d)) => {
                if r.kind == "Secret" {
                    secret_values.extend(d.values().cloned());
                }
                vars.extend(d);
            }
            Some(Err(m)) => return Ok(Err(m)),
            None if r.optional => {}
            None => {
                return Ok(Err(format!(
                    "spec.postBuild.substituteFrom[{i}]: {} {namespace}/{} not found; create it or mark it optional",
                    r.kind, r.name
                )));
            }
        }
    }
    vars.extend(post.substitute.clone());
    Ok(Ok((vars, secret_values)))
}

/// What a build makes: the objects, and every secret value in them or behind them (the
/// Secret-sourced variables, the values of the Secrets it applies), which errors, status and
/// alerts must never show.
pub struct Built {
    pub objects: Vec<Value>,
    pub secrets: Vec<String>,
}

/// The values of the Secrets among `objects` (`data` decoded, and `stringData`).
fn secret_values(objects: &[Value]) -> Vec<String> {
    use base64::Engine;
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| o["kind"] == "Secret" && o["apiVersion"] == "v1") {
        for v in o["data"].as_object().into_iter().flat_map(|m| m.values()).filter_map(Value::as_str) {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v) {
                out.push(String::from_utf8_lossy(&bytes).to_string());
            }
        }
        out.extend(o["stringData"].as_object().into_iter().flat_map(|m| m.values()).filter_map(Value::as_str).map(str::to_string));
    }
    out
}

/// Unpacks the artifact and builds it, with the spec's overlay and substitutions; `Err` is
/// the condition reason and message of the failure.
pub async fn build<S: ObjectStore>(
    store: &S,
    artifacts: &ArtifactStore,
    object: &Kustomization,
    artifact: &Artifact,
) -> Result<Result<Built, (&'static str, String)>, ReconcileError> {
    let (vars, mut secrets) = match variables(store, object).await? {
        Ok(v) => v,
        Err(m) => return Ok(Err((reason::VARIABLES_NOT_FOUND, m))),
    };
    let dir = match tempfile::Builder::new().prefix("driftless-build-").tempdir() {
        Ok(d) => d,
        Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("cannot create a build directory: {e}")))),
    };
    if let Err(e) = artifacts.unpack(&artifact.path, &artifact.digest, dir.path()) {
        return Ok(Err((reason::ARTIFACT_FAILED, format!("source artifact {}: {e}", artifact.path))));
    }
    let spec = object.spec.clone();
    let root = dir.path().to_path_buf();
    let joined = tokio::task::spawn_blocking(move || build_with_overlay(&root, &spec)).await;
    let objects = match joined {
        Ok(Ok(o)) => o,
        Ok(Err(m)) => return Ok(Err((reason::BUILD_FAILED, m))),
        Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("build worker failed: {e}")))),
    };
    let objects = match crate::kustomize::substitute(objects, &vars) {
        Ok(o) => o,
        Err(e) => {
            let message = driftless_core::scrub::Scrubber::new(&secrets).scrub(&format!("postBuild: {e}"));
            return Ok(Err((reason::BUILD_FAILED, message)));
        }
    };
    secrets.extend(secret_values(&objects));
    Ok(Ok(Built { objects, secrets }))
}

/// Builds `spec.path` inside the unpacked artifact at `root`, then applies the spec's own
/// kustomize fields (targetNamespace, namePrefix/Suffix, patches, images, commonMetadata)
/// as an overlay built by the same builder, as Flux does with a generated kustomization.
fn build_with_overlay(root: &Path, spec: &crate::api::KustomizationSpec) -> Result<Vec<Value>, String> {
    let path = spec.path.as_deref().unwrap_or("./").trim_start_matches("./");
    let dir = if path.is_empty() { root.to_path_buf() } else { root.join(path) };
    if !dir.is_dir() {
        return Err(format!("spec.path {:?} is not a directory in the source artifact", spec.path.as_deref().unwrap_or("./")));
    }
    let objects = crate::kustomize::build_in(root, &dir).map_err(|e| e.to_string())?;
    let mut overlay = serde_json::Map::new();
    if let Some(ns) = &spec.target_namespace {
        overlay.insert("namespace".into(), Value::String(ns.clone()));
    }
    if let Some(p) = &spec.name_prefix {
        overlay.insert("namePrefix".into(), Value::String(p.clone()));
    }
    if let Some(s) = &spec.name_suffix {
        overlay.insert("nameSuffix".into(), Value::String(s.clone()));
    }
    if !spec.patches.is_empty() {
        overlay.insert("patches".into(), serde_json::to_value(&spec.patches).unwrap_or_default());
    }
    if !spec.images.is_empty() {
        overlay.insert("images".into(), serde_json::to_value(&spec.images).unwrap_or_default());
    }
    if let Some(m) = &spec.common_metadata {
        if !m.labels.is_empty() {
            overlay.insert("labels".into(), serde_json::json!([{ "pairs": m.labels, "includeSelectors": false }]));
        }
        if !m.annotations.is_empty() {
            overlay.insert("commonAnnotations".into(), serde_json::to_value(&m.annotations).unwrap_or_default());
        }
    }
    if overlay.is_empty() {
        return Ok(objects);
    }
    let overlay_dir = root.join(".driftless-overlay");
    std::fs::create_dir_all(&overlay_dir).map_err(|e| format!("cannot write the overlay: {e}"))?;
    std::fs::write(overlay_dir.join("resources.yaml"), crate::kustomize::to_yaml_stream(&objects))
        .map_err(|e| format!("cannot write the overlay: {e}"))?;
    overlay.insert("resources".into(), serde_json::json!(["resources.yaml"]));
    let text = serde_yaml::to_string(&Value::Object(overlay)).map_err(|e| format!("cannot write the overlay: {e}"))?;
    std::fs::write(overlay_dir.join("kustomization.yaml"), text).map_err(|e| format!("cannot write the overlay: {e}"))?;
    crate::kustomize::build_in(root, &overlay_dir).map_err(|e| format!("spec overlay (targetNamespace, namePrefix, patches, images): {e}"))
}
