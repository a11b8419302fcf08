//! What migrating one document means, decided on its parsed value: which apiVersion it gets,
//! which fields a peer's own API upgrade renamed or retired, and what driftless cannot carry.
//!
//! The rule: migrate does what Flux's and tofu-controller's own upgrades to their newest API
//! versions do (driftless follows those), plus the apiVersion; every field driftless's schema
//! still lacks after that is reported by [`unknown_fields`](crate::api::unknown_fields), the
//! check `driftless apply` makes, and left in place for a person to decide.
//!
//! The result is the migrated value plus the [`Edit`]s that produce it, so the text of the
//! file can replay them line by line (see `edit.rs`) instead of being written anew.

use serde_json::{Map, Value};

use crate::api::{FieldError, Kind, annotation};

/// One step of a path into a document: a mapping key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

fn key(name: &str) -> Step {
    Step::Key(name.to_string())
}

/// One change to a document, in terms its text can replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The string `from` at `path` becomes `to` (an apiVersion).
    Set { path: Vec<Step>, from: String, to: String },
    /// The mapping entry at `path` goes, with its value.
    Remove { path: Vec<Step> },
    /// A Kustomization's `spec.patchesStrategicMerge` and `spec.patchesJson6902` become
    /// entries of `spec.patches`: the strategic merge patches first, then the `patches` it had,
    /// then the JSON 6902 patches, the order kustomize applied the three fields in.
    FoldPatches,
}

/// What migrating one document does and leaves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// `Kind/namespace/name`, as `driftless apply` names objects.
    pub object: String,
    /// The document after the migration (the input itself when nothing changes).
    pub value: Value,
    /// What changes, in the order the text replays it; empty: the document stays as it is.
    pub edits: Vec<Edit>,
    /// Each change, for people (`spec.patchesStrategicMerge -> spec.patches`).
    pub changes: Vec<String>,
    /// What could not be carried over: fields driftless's schema lacks, Flux annotations it
    /// does not honour, an apiVersion migrate does not know.
    pub refused: Vec<FieldError>,
    /// What a person should know, though it carried over (a kind left to Flux).
    pub notes: Vec<String>,
}

/// The apiVersion every migrated object gets.
pub fn ours() -> String {
    format!("{}/{}", crate::api::GROUP, crate::api::VERSION)
}

/// The peer API group of each kind and the versions migrate reads (newest first). A match,
/// not a table, so a new kind cannot be added without deciding its peer.
fn peer(kind: Kind) -> (&'static str, &'static [&'static str]) {
    match kind {
        Kind::GitRepository | Kind::Bucket => ("source.toolkit.fluxcd.io", &["v1", "v1beta2", "v1beta1"]),
        // OCIRepository came with v1beta2.
        Kind::OciRepository => ("source.toolkit.fluxcd.io", &["v1", "v1beta2"]),
        Kind::HelmRepository | Kind::HelmChart => ("source.toolkit.fluxcd.io", &["v1", "v1beta2", "v1beta1"]),
        Kind::Kustomization => ("kustomize.toolkit.fluxcd.io", &["v1", "v1beta2", "v1beta1"]),
        Kind::Provider | Kind::Alert | Kind::Receiver => ("notification.toolkit.fluxcd.io", &["v1", "v1beta3", "v1beta2", "v1beta1"]),
        Kind::Terraform => ("infra.contrib.fluxcd.io", &["v1alpha2", "v1alpha1"]),
    }
}

/// Whether `api_version` is a peer's version of `kind` that migrate knows.
fn is_peer_version(kind: Kind, api_version: &str) -> bool {
    let (group, versions) = peer(kind);
    api_version.split_once('/').is_some_and(|(g, v)| g == group && versions.contains(&v))
}

/// Fields of `spec` a peer's newer version removed or stopped reading, with why dropping them
/// changes nothing; a unit test keeps this to fields driftless's schema lacks.
const RETIRED: &[(Kind, &str, &str)] = &[
    (Kind::Kustomization, "validation", "removed in kustomize.toolkit.fluxcd.io/v1, not read since v1beta2 (server-side apply validates)"),
    (
        Kind::GitRepository,
        "gitImplementation",
        "removed in source.toolkit.fluxcd.io/v1, not read since go-git became the only implementation",
    ),
    (Kind::GitRepository, "accessFrom", "removed in source.toolkit.fluxcd.io/v1, never implemented"),
    (Kind::Bucket, "accessFrom", "removed in source.toolkit.fluxcd.io/v1, never implemented"),
    (Kind::Provider, "interval", "not read since notification.toolkit.fluxcd.io/v1beta3"),
];

/// Where a kind's spec refers to other objects by apiVersion and kind (`[]`: each element of
/// a list). A reference to a kind driftless has, at a peer's apiVersion, follows the object
/// it names to `driftless.dev/v1alpha1`: the repository is migrated as a whole.
fn references(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Terraform => &["sourceRef"],
        Kind::Kustomization => &["sourceRef", "healthChecks[]"],
        Kind::Alert => &["eventSources[]"],
        Kind::Receiver => &["resources[]"],
        Kind::HelmChart => &["sourceRef"],
        Kind::GitRepository | Kind::Bucket | Kind::OciRepository | Kind::HelmRepository | Kind::Provider => &[],
    }
}

/// Flux's annotations driftless honours as Flux does: kept as they are.
const HONOURED_ANNOTATIONS: &[&str] = &[
    annotation::FLUX_PRUNE,
    annotation::FLUX_SSA,
    annotation::FLUX_FORCE,
    annotation::FLUX_RECONCILE,
    annotation::FLUX_RECONCILE_REQUESTED_AT,
    crate::kustomize::DISABLE_KEY,
];

/// Migrates one parsed document. Documents that are not objects of a driftless kind are left
/// as they are; their Flux annotations are still checked, since driftless applies them.
pub fn convert(doc: &Value) -> Outcome {
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind_name = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let mut out = Outcome { object: object_name(doc, kind_name), value: doc.clone(), ..Outcome::default() };
    let Some(kind) = Kind::from_api(kind_name) else {
        if api_version.split_once('/').is_some_and(|(g, _)| g.ends_with(".fluxcd.io")) {
            out.notes.push(format!("left as it is: driftless has no {kind_name} ({api_version})"));
        }
        out.refused = annotations(doc, false);
        return out;
    };
    let ours = ours();
    if api_version == ours {
        // Already driftless's (a second run, or moved by hand): only the fields still to do.
    } else if is_peer_version(kind, api_version) {
        out.value["apiVersion"] = Value::String(ours.clone());
        out.edits.push(Edit::Set { path: vec![key("apiVersion")], from: api_version.to_string(), to: ours.clone() });
        out.changes.push(format!("apiVersion {api_version} -> {ours}"));
    } else {
        if api_version.starts_with(peer(kind).0) || api_version.contains(".fluxcd.io/") {
            out.refused.push(FieldError {
                field: "apiVersion".into(),
                reason: format!("{api_version} is a version migrate does not know; it reads {}", known_versions(kind)),
            });
        }
        out.refused.extend(annotations(doc, false));
        return out;
    }
    retire(kind, &mut out);
    if kind == Kind::Kustomization {
        fold_patches(&mut out);
    }
    follow_references(kind, &mut out);
    out.refused = crate::api::unknown_fields(kind.as_str(), &out.value);
    out.refused.extend(annotations(doc, true));
    out
}

/// `Kind/namespace/name`, as `driftless apply` names an object in its messages.
fn object_name(doc: &Value, kind: &str) -> String {
    let meta = |k: &str| doc.pointer(&format!("/metadata/{k}")).and_then(Value::as_str);
    let kind = if kind.is_empty() { "<no kind>" } else { kind };
    format!("{kind}/{}/{}", meta("namespace").unwrap_or("default"), meta("name").unwrap_or("<unnamed>"))
}

fn known_versions(kind: Kind) -> String {
    let (group, versions) = peer(kind);
    versions.iter().map(|v| format!("{group}/{v}")).collect::<Vec<_>>().join(", ")
}

fn spec_mut(value: &mut Value) -> Option<&mut Map<String, Value>> {
    value.get_mut("spec").and_then(Value::as_object_mut)
}

/// Drops the fields the peer itself retired.
fn retire(kind: Kind, out: &mut Outcome) {
    for (_, field, why) in RETIRED.iter().filter(|(k, _, _)| *k == kind) {
        if spec_mut(&mut out.value).and_then(|spec| spec.remove(*field)).is_some() {
            out.edits.push(Edit::Remove { path: vec![key("spec"), key(field)] });
            out.changes.push(format!("spec.{field} removed ({why})"));
        }
    }
}

/// `patchesStrategicMerge` and `patchesJson6902` (Flux v1beta1/v1beta2) as `patches`
/// entries, which is what Flux's v1 asks for: a strategic merge patch becomes a `patch`
/// without a target (kustomize finds its object by kind and name), a JSON 6902 patch keeps
/// its target and its operations become the `patch` text. Left alone (and so reported by
/// the schema check) when the fields do not have the shape Flux gave them.
fn fold_patches(out: &mut Outcome) {
    let Some(spec) = out.value.get("spec").and_then(Value::as_object) else { return };
    let list = |name: &str| match spec.get(name) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => None,
    };
    let (Some(strategic), Some(json6902), Some(existing)) = (list("patchesStrategicMerge"), list("patchesJson6902"), list("patches"))
    else {
        return;
    };
    if !spec.contains_key("patchesStrategicMerge") && !spec.contains_key("patchesJson6902") {
        return;
    }
    let mut patches = Vec::new();
    for item in &strategic {
        let Some(text) = yaml_text(item) else { return };
        patches.push(serde_json::json!({ "patch": text }));
    }
    patches.extend(existing);
    for item in &json6902 {
        let Some(fields) = item.as_object() else { return };
        let (Some(ops @ Value::Array(_)), true) = (fields.get("patch"), fields.keys().all(|k| k == "patch" || k == "target")) else {
            return;
        };
        let Some(text) = yaml_text(ops) else { return };
        let mut entry = Map::new();
        entry.insert("patch".into(), Value::String(text));
        if let Some(target) = fields.get("target") {
            entry.insert("target".into(), target.clone());
        }
        patches.push(Value::Object(entry));
    }
    let present = |name: &str| spec.contains_key(name);
    let changes: Vec<String> = [("patchesStrategicMerge", strategic.len()), ("patchesJson6902", json6902.len())]
        .into_iter()
        .filter(|(name, _)| present(name))
        .map(|(name, n)| if n > 0 { format!("spec.{name} -> spec.patches ({n})") } else { format!("spec.{name} (empty) removed") })
        .collect();
    let Some(spec) = spec_mut(&mut out.value) else { return };
    spec.remove("patchesStrategicMerge");
    spec.remove("patchesJson6902");
    if !patches.is_empty() || spec.contains_key("patches") {
        spec.insert("patches".into(), Value::Array(patches));
    }
    out.edits.push(Edit::FoldPatches);
    out.changes.extend(changes);
}

/// A patch as the YAML text `patches[].patch` holds.
fn yaml_text(value: &Value) -> Option<String> {
    serde_yaml::to_string(value).ok()
}

/// References to a driftless kind at a peer's apiVersion follow it to driftless's.
fn follow_references(kind: Kind, out: &mut Outcome) {
    let ours = ours();
    for location in references(kind) {
        let (field, list) = location.strip_suffix("[]").map_or((*location, false), |f| (f, true));
        let Some(node) = out.value.get("spec").and_then(|s| s.get(field)) else { continue };
        let targets: Vec<(Vec<Step>, &Value)> = match (node, list) {
            (Value::Array(items), true) => {
                items.iter().enumerate().map(|(i, item)| (vec![key("spec"), key(field), Step::Index(i)], item)).collect()
            }
            (Value::Object(_), false) => vec![(vec![key("spec"), key(field)], node)],
            _ => continue,
        };
        let mut sets = Vec::new();
        for (path, reference) in targets {
            let api_version = reference.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            let referred = reference.get("kind").and_then(Value::as_str).and_then(Kind::from_api);
            if let Some(referred) = referred
                && is_peer_version(referred, api_version)
            {
                let mut path = path;
                path.push(key("apiVersion"));
                sets.push((path, api_version.to_string()));
            }
        }
        for (path, from) in sets {
            let pointer: String = path
                .iter()
                .map(|s| match s {
                    Step::Key(k) => format!("/{k}"),
                    Step::Index(i) => format!("/{i}"),
                })
                .collect();
            if let Some(slot) = out.value.pointer_mut(&pointer) {
                *slot = Value::String(ours.clone());
            }
            out.changes.push(format!("{} {from} -> {ours}", shown_path(&path)));
            out.edits.push(Edit::Set { path, from, to: ours.clone() });
        }
    }
}

/// `spec.healthChecks[1].apiVersion`.
pub fn shown_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Flux's annotations on an object that driftless does not honour: driftless applies the
/// object as if they were absent, which changes what happens to it (Flux's `ssa:
/// IfNotPresent` never overwrote an object; driftless does). `reconcile.fluxcd.io/*` ones
/// matter on driftless's own kinds only.
fn annotations(doc: &Value, driftless_kind: bool) -> Vec<FieldError> {
    let Some(map) = doc.pointer("/metadata/annotations").and_then(Value::as_object) else { return Vec::new() };
    map.keys()
        .filter(|k| k.starts_with("kustomize.toolkit.fluxcd.io/") || (driftless_kind && k.starts_with("reconcile.fluxcd.io/")))
        .filter(|k| !HONOURED_ANNOTATIONS.contains(&k.as_str()))
        .map(|k| FieldError {
            field: format!("metadata.annotations.{k}"),
            reason: format!(
                "Flux's annotation {k} is not honoured by driftless: the object is applied as if it were absent (driftless honours {})",
                HONOURED_ANNOTATIONS.join(", ")
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn a_flux_git_repository_gets_driftless_api_version_and_nothing_else() {
        let doc = yaml(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: app, namespace: flux-system}\n\
             spec: {url: 'https://example.com/app.git', interval: 1m, ref: {branch: main}}\n",
        );
        let out = convert(&doc);
        assert_eq!(out.object, "GitRepository/flux-system/app");
        assert_eq!(out.value["apiVersion"], "driftless.dev/v1alpha1");
        assert_eq!(out.value["spec"], doc["spec"]);
        assert_eq!(
            out.edits,
            vec![Edit::Set {
                path: vec![key("apiVersion")],
                from: "source.toolkit.fluxcd.io/v1".into(),
                to: "driftless.dev/v1alpha1".into()
            }]
        );
        assert_eq!(out.refused, vec![]);
    }

    #[test]
    fn every_peer_version_of_every_kind_is_migrated() {
        for kind in Kind::ALL {
            let (group, versions) = peer(kind);
            for v in versions {
                let out = convert(&json!({ "apiVersion": format!("{group}/{v}"), "kind": kind.as_str(), "metadata": { "name": "x" } }));
                assert_eq!(out.value["apiVersion"], "driftless.dev/v1alpha1", "{kind} {group}/{v}");
            }
        }
    }

    #[test]
    fn a_kustomize_kustomization_and_other_kinds_are_left_alone() {
        for doc in [
            json!({ "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "patchesStrategicMerge": ["a.yaml"] }),
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" }, "spec": { "replicas": 1 } }),
        ] {
            let out = convert(&doc);
            assert_eq!((out.value, out.edits, out.refused), (doc.clone(), vec![], vec![]));
        }
    }

    #[test]
    fn a_flux_kind_driftless_lacks_is_left_alone_with_a_note() {
        let doc = json!({ "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": { "name": "db" } });
        let out = convert(&doc);
        assert_eq!((out.value.clone(), out.edits.clone()), (doc, vec![]));
        assert!(out.notes[0].contains("driftless has no HelmRelease"), "{:?}", out.notes);
    }

    #[test]
    fn an_unknown_peer_version_changes_nothing_and_is_refused() {
        let doc = json!({ "apiVersion": "source.toolkit.fluxcd.io/v2", "kind": "GitRepository", "metadata": { "name": "a" } });
        let out = convert(&doc);
        assert_eq!((out.value.clone(), out.edits.clone()), (doc, vec![]));
        assert_eq!(out.refused[0].field, "apiVersion");
        assert!(out.refused[0].reason.contains("source.toolkit.fluxcd.io/v1,"), "{}", out.refused[0].reason);
    }

    #[test]
    fn patches_of_flux_v1beta2_fold_into_patches_in_kustomize_order() {
        let doc = yaml(
            r#"
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
kind: Kustomization
metadata: {name: apps}
spec:
  interval: 10m
  prune: true
  sourceRef: {kind: GitRepository, name: app}
  validation: client
  patches:
    - patch: "kept"
  patchesJson6902:
    - target: {kind: Deployment, name: web}
      patch:
        - {op: replace, path: /spec/replicas, value: 3}
  patchesStrategicMerge:
    - apiVersion: apps/v1
      kind: Deployment
      metadata: {name: web}
      spec: {replicas: 2}
"#,
        );
        let out = convert(&doc);
        let spec = &out.value["spec"];
        assert!(spec.get("validation").is_none() && spec.get("patchesStrategicMerge").is_none() && spec.get("patchesJson6902").is_none());
        let patches = spec["patches"].as_array().unwrap();
        assert_eq!(patches.len(), 3);
        let parsed = |i: usize| yaml(patches[i]["patch"].as_str().unwrap());
        assert_eq!(parsed(0), doc["spec"]["patchesStrategicMerge"][0]);
        assert!(patches[0].get("target").is_none());
        assert_eq!(patches[1], json!({ "patch": "kept" }));
        assert_eq!(parsed(2), doc["spec"]["patchesJson6902"][0]["patch"]);
        assert_eq!(patches[2]["target"], json!({ "kind": "Deployment", "name": "web" }));
        assert_eq!(out.refused, vec![], "driftless's schema carries all of it");
        assert_eq!(
            out.edits,
            vec![
                Edit::Set { path: vec![key("apiVersion")], from: "kustomize.toolkit.fluxcd.io/v1beta2".into(), to: ours() },
                Edit::Remove { path: vec![key("spec"), key("validation")] },
                Edit::FoldPatches,
            ]
        );
        assert!(out.changes.iter().any(|c| c == "spec.patchesStrategicMerge -> spec.patches (1)"), "{:?}", out.changes);
    }

    #[test]
    fn patches_of_an_unexpected_shape_are_left_for_the_schema_check_to_report() {
        let doc = json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1beta2", "kind": "Kustomization", "metadata": { "name": "a" },
            "spec": { "interval": "1m", "prune": true, "sourceRef": { "kind": "GitRepository", "name": "a" },
                      "patchesJson6902": [{ "path": "patch.yaml", "target": { "kind": "Deployment" } }] } });
        let out = convert(&doc);
        assert!(!out.edits.contains(&Edit::FoldPatches));
        assert_eq!(out.refused.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), vec!["spec.patchesJson6902"]);
    }

    #[test]
    fn references_to_migrated_kinds_follow_them_and_others_stay() {
        let doc = json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": { "name": "a" },
            "spec": { "interval": "1m", "prune": true,
                      "sourceRef": { "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "name": "a" },
                      "healthChecks": [
                          { "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db" },
                          { "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "name": "infra" } ] } });
        let out = convert(&doc);
        assert_eq!(out.value["spec"]["sourceRef"]["apiVersion"], "driftless.dev/v1alpha1");
        assert_eq!(out.value["spec"]["healthChecks"][0]["apiVersion"], "helm.toolkit.fluxcd.io/v2");
        assert_eq!(out.value["spec"]["healthChecks"][1]["apiVersion"], "driftless.dev/v1alpha1");
        assert!(out.edits.contains(&Edit::Set {
            path: vec![key("spec"), key("healthChecks"), Step::Index(1), key("apiVersion")],
            from: "kustomize.toolkit.fluxcd.io/v1".into(),
            to: ours()
        }));
    }

    #[test]
    fn a_refused_tofu_controller_field_is_reported_with_the_schema_message_and_kept() {
        let doc = json!({ "apiVersion": "infra.contrib.fluxcd.io/v1alpha2", "kind": "Terraform", "metadata": { "name": "net", "namespace": "infra" },
            "spec": { "interval": "1h", "path": "./", "approvePlan": "auto", "sourceRef": { "kind": "GitRepository", "name": "a" },
                      "webhooks": [{ "stage": "post-planning", "url": "https://example.com/hook" }] } });
        let out = convert(&doc);
        assert_eq!(out.value["spec"]["webhooks"], doc["spec"]["webhooks"], "kept for a person to decide");
        assert_eq!(out.refused.len(), 1, "{:?}", out.refused);
        assert_eq!(out.refused[0].field, "spec.webhooks");
        assert!(out.refused[0].reason.contains("Alerts and Providers"), "{}", out.refused[0].reason);
        assert_eq!(out.notes, Vec::<String>::new());
    }

    #[test]
    fn honoured_flux_annotations_stay_and_others_are_refused_on_any_kind() {
        let doc = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s", "annotations": {
            "kustomize.toolkit.fluxcd.io/prune": "disabled", "kustomize.toolkit.fluxcd.io/substitute": "disabled",
            "kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent", "kustomize.toolkit.fluxcd.io/force": "enabled",
            "kustomize.toolkit.fluxcd.io/reconcile": "disabled", "kustomize.toolkit.fluxcd.io/checksum": "abc",
            "reconcile.fluxcd.io/requestedAt": "now" } } });
        let out = convert(&doc);
        assert_eq!(out.value, doc);
        let fields: Vec<&str> = out.refused.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.annotations.kustomize.toolkit.fluxcd.io/checksum"]);
        let ks = json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": { "name": "a", "annotations": {
            "reconcile.fluxcd.io/requestedAt": "now", "reconcile.fluxcd.io/forceAt": "now" } },
            "spec": { "interval": "1m", "prune": true, "sourceRef": { "kind": "GitRepository", "name": "a" } } });
        let out = convert(&ks);
        assert_eq!(out.value["metadata"], ks["metadata"]);
        let fields: Vec<&str> = out.refused.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.annotations.reconcile.fluxcd.io/forceAt"]);
    }

    #[test]
    fn a_driftless_object_is_converted_again_to_nothing() {
        let doc = yaml(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata: {name: a}\n\
             spec: {interval: 1m, prune: true, sourceRef: {kind: GitRepository, name: a}, validation: client,\n\
             patchesStrategicMerge: [{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {a: b}}]}\n",
        );
        let once = convert(&doc);
        let twice = convert(&once.value);
        assert_eq!((twice.value, twice.edits), (once.value, vec![]));
    }

    #[test]
    fn retired_fields_are_truly_unknown_to_the_schema() {
        // A retired field driftless implements since must leave the table: dropping it would lose it.
        for (kind, field, _) in RETIRED {
            let doc = json!({ "apiVersion": ours(), "kind": kind.as_str(), "spec": { *field: "x" } });
            let refused = crate::api::unknown_fields(kind.as_str(), &doc);
            assert!(
                refused.iter().any(|f| f.field == format!("spec.{field}")),
                "{kind} spec.{field} is in the schema: remove it from RETIRED"
            );
        }
    }
}
