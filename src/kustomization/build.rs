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
    let dir = match tempfile::Builder::new().prefix("driftless-build-").tempdir() {
        Ok(d) => d,
        Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("cannot create a build directory: {e}")))),
    };
    if let Err(e) = artifacts.unpack(&artifact.path, &artifact.digest, dir.path()) {
        return Ok(Err((reason::ARTIFACT_FAILED, format!("source artifact {}: {e}", artifact.path))));
    }
    build_tree(store, object, dir.path()).await
}

/// Builds `spec.path` of the tree at `root` (an unpacked artifact, or a directory of the
/// user's for `driftless diff`) with the spec's overlay, decryption and substitutions.
pub async fn build_tree<S: ObjectStore>(
    store: &S,
    object: &Kustomization,
    root: &Path,
) -> Result<Result<Built, (&'static str, String)>, ReconcileError> {
    let (vars, mut secrets) = match variables(store, object).await? {
        Ok(v) => v,
        Err(m) => return Ok(Err((reason::VARIABLES_NOT_FOUND, m))),
    };
    let decryptor = match super::decrypt::keys(store, object).await? {
        Ok(keys) => super::decrypt::Decryptor::new(keys, super::decrypt::KeySource::Spec),
        Err(m) => return Ok(Err((reason::DECRYPTION_FAILED, m))),
    };
    let spec = object.spec.clone();
    let root = root.to_path_buf();
    let filter: std::sync::Arc<dyn crate::kustomize::ReadFilter> = decryptor.clone();
    let joined = tokio::task::spawn_blocking(move || build_with_overlay(&root, &spec, Some(filter))).await;
    secrets.extend(decryptor.plaintexts());
    let objects = match joined {
        Ok(Ok(o)) => o,
        Ok(Err(m)) => {
            // A file that did not decrypt is named by the decryptor's own message (what the
            // file needs); any other message is scrubbed of what was decrypted before it.
            return Ok(Err(match decryptor.failure() {
                Some(f) => (reason::DECRYPTION_FAILED, format!("decryption failed: {f}")),
                None => (reason::BUILD_FAILED, driftless_core::scrub::Scrubber::new(&secrets).scrub(&m)),
            }));
        }
        Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("build worker failed: {e}")))),
    };
    let substitutes = crate::api::PostBuild::substitutes(object.spec.post_build.as_ref(), vars.len());
    let substituted = if substitutes { crate::kustomize::substitute(objects, &vars) } else { Ok(objects) };
    let objects = match substituted {
        Ok(o) => o,
        Err(e) => {
            let message = driftless_core::scrub::Scrubber::new(&secrets).scrub(&format!("postBuild: {e}"));
            return Ok(Err((reason::BUILD_FAILED, message)));
        }
    };
    secrets.extend(secret_values(&objects));
    Ok(Ok(Built { objects, secrets }))
}

/// `spec.components` as Flux's kustomize-controller takes them: local paths relative to
/// the path's directory `dir`; with `spec.ignoreMissingComponents`, one that does not exist
/// is left out, and without it the build names it (kustomize's own error says less).
fn components(dir: &Path, spec: &crate::api::KustomizationSpec) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, c) in spec.components.iter().enumerate() {
        let remote = ["git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/", "file://"]
            .iter()
            .any(|p| c.len() > p.len() && c.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)));
        if remote || Path::new(c).is_absolute() {
            return Err(format!("spec.components[{i}] {c:?} must be a local path relative to spec.path"));
        }
        if !dir.join(c).exists() {
            if spec.ignore_missing_components {
                continue;
            }
            return Err(format!(
                "spec.components[{i}] {c:?}: no such directory relative to spec.path; add it to the source, or set spec.ignoreMissingComponents to leave out missing components"
            ));
        }
        out.push(c.clone());
    }
    Ok(out)
}

/// Builds `spec.path` inside the unpacked artifact at `root`, with `spec.components` added to
/// its kustomization, then applies the spec's own kustomize fields (targetNamespace,
/// namePrefix/Suffix, patches, images, commonMetadata) as an overlay built by the same
/// builder, as Flux does with a generated kustomization.
fn build_with_overlay(
    root: &Path,
    spec: &crate::api::KustomizationSpec,
    filter: Option<std::sync::Arc<dyn crate::kustomize::ReadFilter>>,
) -> Result<Vec<Value>, String> {
    let path = spec.path.as_deref().unwrap_or("./").trim_start_matches("./");
    let dir = if path.is_empty() { root.to_path_buf() } else { root.join(path) };
    if !dir.is_dir() {
        return Err(format!("spec.path {:?} is not a directory in the source artifact", spec.path.as_deref().unwrap_or("./")));
    }
    let components = components(&dir, spec)?;
    let objects = crate::kustomize::build_filtered(root, &dir, &components, filter).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::*;

    fn spec(path: &str, extra: &str) -> crate::api::KustomizationSpec {
        let yaml = format!("sourceRef: {{kind: GitRepository, name: app}}\npath: {path}\ninterval: 1h\nprune: true\n{extra}");
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    /// An unpacked artifact holding the components fixture of tests/kustomize_build.rs.
    fn artifact() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize/components");
        copy_tree(&fixture, root.path());
        root
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name_start: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name_start)))
            .unwrap_or_else(|| panic!("no {kind} {name_start}* in {objects:#?}"))
    }

    #[test]
    fn spec_components_build_as_if_the_path_kustomization_listed_them() {
        let root = artifact();
        let with_components = spec(
            "./app",
            "components:\n- ../features/debug\n- ../features/not-in-this-revision\nignoreMissingComponents: true\ntargetNamespace: shop-canary\n",
        );
        let ours = build_with_overlay(root.path(), &with_components, None).unwrap();
        // What Flux does: the components appended to the path's kustomization.yaml.
        let flux = artifact();
        let file = flux.path().join("app/kustomization.yaml");
        let text = std::fs::read_to_string(&file).unwrap().replace("- ../features/tls\n", "- ../features/tls\n- ../features/debug\n");
        std::fs::write(&file, text).unwrap();
        let theirs = build_with_overlay(flux.path(), &spec("./app", "targetNamespace: shop-canary\n"), None).unwrap();
        assert_eq!(ours, theirs);
        // The component ran inside the path's kustomization: its generator merged into the
        // kustomization's ConfigMap and the prefix and suffix apply to it; then the spec's
        // targetNamespace.
        let features = find(&ours, "ConfigMap", "prod-features-v2-");
        assert_eq!(features["data"]["debug"], "on");
        assert_eq!(features["metadata"]["namespace"], "shop-canary");
        assert_eq!(find(&ours, "Deployment", "prod-web-v2")["spec"]["replicas"], 2);
    }

    #[test]
    fn a_missing_spec_component_fails_the_build_unless_ignored() {
        let root = artifact();
        let err = build_with_overlay(root.path(), &spec("./app", "components: [../features/debug, ../features/gone]\n"), None).unwrap_err();
        assert!(err.contains("spec.components[1] \"../features/gone\"") && err.contains("ignoreMissingComponents"), "{err}");
        let ignored =
            build_with_overlay(root.path(), &spec("./app", "components: [../features/gone]\nignoreMissingComponents: true\n"), None)
                .unwrap();
        assert_eq!(ignored, build_with_overlay(root.path(), &spec("./app", ""), None).unwrap(), "a missing component is left out");
    }

    #[test]
    fn spec_components_apply_to_a_directory_without_a_kustomization() {
        let root = artifact();
        std::fs::create_dir_all(root.path().join("plain")).unwrap();
        std::fs::write(
            root.path().join("plain/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: features\ndata:\n  enabled: plain\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("features/label")).unwrap();
        std::fs::write(root.path().join("features/label/kustomization.yaml"), "kind: Component\ncommonLabels: {feature: label}\n").unwrap();
        let objects = build_with_overlay(root.path(), &spec("./plain", "components: [../features/label]\n"), None).unwrap();
        assert_eq!(objects.len(), 1, "{objects:#?}");
        assert_eq!(objects[0]["metadata"]["labels"], serde_json::json!({"feature": "label"}));
    }

    #[test]
    fn spec_components_must_be_local_relative_paths() {
        let root = artifact();
        for c in ["https://github.com/example/components//debug", "/etc", "git@github.com:example/c.git"] {
            let err = build_with_overlay(root.path(), &spec("./app", &format!("components: [{c:?}]\n")), None).unwrap_err();
            assert!(err.contains("spec.components[0]") && err.contains("must be a local path relative to spec.path"), "{c}: {err}");
        }
        // Inside the artifact only, as every file of a build.
        let err = build_with_overlay(root.path(), &spec("./app", "components: [../../..]\n"), None).unwrap_err();
        assert!(err.contains("outside the build root"), "{err}");
    }
}
