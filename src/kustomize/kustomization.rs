//! The kustomization.yaml file (a `Kustomization`, or a `Component` that a kustomization
//! lists under `components`): the fields driftless builds, and a clear error for every
//! other field, so nothing a user wrote is silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{BuildError, yaml};

/// The file names kustomize recognises, in its order.
pub(crate) const FILE_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields driftless builds (deprecated spellings included: kustomize still honours them).
pub(crate) const SUPPORTED: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "imageTags",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "sortOptions",
    "components",
    "replacements",
];

/// kustomization.yaml fields driftless refuses, with a pointer to the conformance table.
pub(crate) const UNSUPPORTED: &[&str] = &[
    "crds",
    "configurations",
    "vars",
    "helmCharts",
    "helmGlobals",
    "helmChartInflationGenerator",
    "generators",
    "transformers",
    "validators",
    "openapi",
    "buildMetadata",
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Kustomization {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub bases: Vec<String>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name_prefix: String,
    #[serde(default)]
    pub name_suffix: String,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub patches: Vec<Patch>,
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    #[serde(default)]
    pub patches_json6902: Vec<Patch>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub image_tags: Vec<Image>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    #[serde(default)]
    pub config_map_generator: Vec<GeneratorArgs>,
    #[serde(default)]
    pub secret_generator: Vec<GeneratorArgs>,
    #[serde(default)]
    pub generator_options: Option<GeneratorOptions>,
    #[serde(default)]
    pub sort_options: Option<SortOptions>,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub replacements: Vec<ReplacementEntry>,
}

/// The kinds of kustomization file, with the apiVersion each must have.
pub(crate) const KUSTOMIZATION: (&str, &str) = ("Kustomization", "kustomize.config.k8s.io/v1beta1");
pub(crate) const COMPONENT: (&str, &str) = ("Component", "kustomize.config.k8s.io/v1alpha1");

impl Kustomization {
    /// A `kind: Component`: applied to the objects of the kustomization that lists it, not
    /// built on its own as a resource.
    pub fn is_component(&self) -> bool {
        self.kind == COMPONENT.0
    }
}

/// One `replacements` entry: a replacement written inline, or `path` to a file holding
/// one replacement or a list of them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplacementEntry {
    #[serde(default)]
    pub path: String,
    pub source: Option<ReplacementSource>,
    /// `None` when the field is missing (an error), `Some(empty)` when it is `[]`.
    pub targets: Option<Vec<ReplacementTarget>>,
}

/// One replacement (inline, or read from a `path` file).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Replacement {
    pub source: Option<ReplacementSource>,
    pub targets: Option<Vec<ReplacementTarget>>,
}

/// Where a replacement's value comes from: the one object these fields select (each
/// compared whole, not as a pattern), and the field of it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplacementSource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    /// Defaults to `metadata.name`, as in kustomize.
    #[serde(default)]
    pub field_path: String,
    pub options: Option<FieldOptions>,
}

/// Where a replacement's value goes: the objects `select` takes and no `reject` entry takes,
/// and their `fieldPaths`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplacementTarget {
    pub select: Option<Selector>,
    #[serde(default)]
    pub reject: Vec<Selector>,
    /// Defaults to `[metadata.name]`, as in kustomize.
    #[serde(default)]
    pub field_paths: Option<Vec<String>>,
    pub options: Option<FieldOptions>,
}

/// How a replacement reads its source field or writes a target field.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FieldOptions {
    /// Split the field's value on this string and use (or set) one part of it.
    #[serde(default)]
    pub delimiter: String,
    /// The part: in a source, it must exist; in a target, below 0 prepends and past the
    /// end appends.
    #[serde(default)]
    pub index: i64,
    /// kustomize accepts it but implements no encoding; refused here rather than ignored.
    #[serde(default)]
    pub encoding: String,
    /// Create a missing target field instead of failing.
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Label {
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    #[serde(default)]
    pub include_selectors: bool,
    #[serde(default)]
    pub include_templates: bool,
    #[serde(default)]
    pub fields: Vec<CustomFieldSpec>,
}

/// A field spec written in a kustomization (`labels[].fields`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CustomFieldSpec {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Patch {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub patch: String,
    pub target: Option<Selector>,
    #[serde(default)]
    pub options: BTreeMap<String, bool>,
}

/// Which objects a patch applies to. Strings are regular expressions matching whole values;
/// the selectors use Kubernetes label selector syntax.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Selector {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub label_selector: String,
    #[serde(default)]
    pub annotation_selector: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Image {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub new_name: String,
    #[serde(default)]
    pub new_tag: String,
    #[serde(default)]
    pub tag_suffix: String,
    #[serde(default)]
    pub digest: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replica {
    pub name: String,
    pub count: i64,
}

/// A configMapGenerator or secretGenerator entry (`type` only for secrets).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GeneratorArgs {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub behavior: String,
    #[serde(default)]
    pub literals: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub options: Option<GeneratorOptions>,
    #[serde(default, rename = "type")]
    pub type_: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GeneratorOptions {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    #[serde(default)]
    pub immutable: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SortOptions {
    #[serde(default)]
    pub order: String,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LegacySortOptions {
    #[serde(default)]
    pub order_first: Vec<String>,
    #[serde(default)]
    pub order_last: Vec<String>,
}

/// The kustomization file in `dir`, if there is one.
///
/// # Errors
/// More than one recognised file name is present.
pub(crate) fn find(dir: &Path) -> Result<Option<PathBuf>, BuildError> {
    let found: Vec<PathBuf> = FILE_NAMES.iter().map(|n| dir.join(n)).filter(|p| p.is_file()).collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        _ => Err(BuildError::file(dir, format!("found more than one kustomization file ({}); keep one", FILE_NAMES.join(", ")))),
    }
}

/// Reads and checks a kustomization file.
///
/// # Errors
/// The file cannot be read or parsed, holds a field driftless does not build or that
/// kustomize does not know, or a field has the wrong shape.
pub(crate) fn load(file: &Path) -> Result<Kustomization, BuildError> {
    let text = std::fs::read_to_string(file).map_err(BuildError::io(file))?;
    let value = yaml::parse_one(&text, file)?;
    let map = match value {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        _ => return Err(BuildError::file(file, "a kustomization must be a map of fields")),
    };
    for key in map.keys() {
        if UNSUPPORTED.contains(&key.as_str()) {
            return Err(BuildError::UnsupportedField { file: file.to_path_buf(), field: key.clone() });
        }
        if !SUPPORTED.contains(&key.as_str()) {
            return Err(BuildError::UnknownField { file: file.to_path_buf(), field: key.clone() });
        }
    }
    for (key, value) in &map {
        // Each field on its own, so an error names the field.
        let mut one = serde_json::Map::new();
        one.insert(key.clone(), value.clone());
        serde_json::from_value::<Kustomization>(Value::Object(one)).map_err(|e| BuildError::field(file, key, e.to_string()))?;
    }
    let mut k: Kustomization = serde_json::from_value(Value::Object(map)).map_err(|e| BuildError::file(file, e.to_string()))?;
    if k.kind.is_empty() {
        k.kind = KUSTOMIZATION.0.to_string();
    }
    let Some((kind, api_version)) = [KUSTOMIZATION, COMPONENT].into_iter().find(|(kind, _)| *kind == k.kind) else {
        return Err(BuildError::field(file, "kind", format!("{:?}: it must be {} or {}", k.kind, KUSTOMIZATION.0, COMPONENT.0)));
    };
    if !k.api_version.is_empty() && k.api_version != api_version {
        return Err(BuildError::field(file, "apiVersion", format!("{:?}: a {kind} must have apiVersion {api_version}", k.api_version)));
    }
    // Deprecated spellings, folded in as kustomize does.
    let bases = std::mem::take(&mut k.bases);
    k.resources.extend(bases);
    let tags = std::mem::take(&mut k.image_tags);
    k.images.extend(tags);
    for g in k.config_map_generator.iter_mut().chain(k.secret_generator.iter_mut()) {
        if !g.env.is_empty() {
            let env = std::mem::take(&mut g.env);
            g.envs.push(env);
        }
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kustomization.yaml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    #[test]
    fn unsupported_fields_are_named() {
        let (_d, file) = write("resources: [a.yaml]\nhelmCharts:\n- name: x\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(err.ends_with("kustomization.yaml: field \"helmCharts\" is not supported by driftless; see docs/KUSTOMIZE.md"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let (_d, file) = write("resource: [a.yaml]\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field \"resource\""), "{err}");
    }

    #[test]
    fn a_misshapen_field_is_named() {
        let (_d, file) = write("images:\n- name: x\n  newTagg: y\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("field \"images\"") && err.contains("newTagg"), "{err}");
    }

    #[test]
    fn a_component_needs_its_own_api_version() {
        let (_d, file) = write("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [../other]\n");
        let k = load(&file).unwrap();
        assert!(k.is_component());
        assert_eq!(k.components, ["../other"]);
        let (_d, file) = write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Component\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(
            err.contains("field \"apiVersion\"") && err.contains("a Component must have apiVersion kustomize.config.k8s.io/v1alpha1"),
            "{err}"
        );
        let (_d, file) = write("apiVersion: kustomize.config.k8s.io/v1alpha1\nresources: []\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("a Kustomization must have apiVersion kustomize.config.k8s.io/v1beta1"), "{err}");
        let (_d, file) = write("kind: Overlay\n");
        assert!(load(&file).unwrap_err().to_string().contains("it must be Kustomization or Component"));
    }

    #[test]
    fn replacements_read_inline_and_by_path_and_refuse_unknown_fields() {
        let (_d, file) = write(
            "replacements:\n- path: r.yaml\n- source: {kind: ConfigMap, fieldPath: data.a, options: {delimiter: '-', index: 1}}\n  targets:\n  - select: {kind: Deployment}\n    reject: [{name: x}]\n    fieldPaths: [spec.replicas]\n    options: {create: true}\n",
        );
        let k = load(&file).unwrap();
        assert_eq!(k.replacements.len(), 2);
        assert_eq!(k.replacements[0].path, "r.yaml");
        let targets = k.replacements[1].targets.as_ref().unwrap();
        assert_eq!(targets[0].reject[0].name, "x");
        assert!(targets[0].options.as_ref().unwrap().create);
        let (_d, file) = write("replacements:\n- source: {kind: ConfigMap, fieldpath: data.a}\n  targets: []\n");
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("field \"replacements\"") && err.contains("fieldpath"), "{err}");
    }

    #[test]
    fn deprecated_spellings_fold_into_the_new_ones() {
        let (_d, file) = write("bases: [../base]\nresources: [a.yaml]\nimageTags: [{name: x, newTag: y}]\n");
        let k = load(&file).unwrap();
        assert_eq!(k.resources, ["a.yaml", "../base"]);
        assert_eq!(k.images.len(), 1);
    }
}
