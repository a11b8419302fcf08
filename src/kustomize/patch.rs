//! The patch fields: `patches` (strategic merge or JSON 6902, with an optional target),
//! and the older `patchesStrategicMerge` and `patchesJson6902`.
//!
//! A strategic merge patch without a target applies to the one object with its kind, name
//! and namespace (under any name the object has had); with a target, to every selected
//! object. A JSON 6902 patch (a list of operations, in YAML or JSON) always needs a target;
//! the operations are applied by the `json-patch` crate.

use std::path::Path;

use serde_json::Value;

use super::kustomization::{Patch, Selector};
use super::loader::Dir;
use super::resource::{ResId, Resource};
use super::selector::Target;
use super::{BuildError, smp, yaml};

/// A parsed patch.
enum Parsed {
    Strategic(Vec<Value>),
    Json6902(json_patch::Patch),
}

/// Applies one `patches` (or `patchesJson6902`) entry of the kustomization `file`.
///
/// # Errors
/// The patch cannot be read or parsed, its target selects nothing it can apply to, or an
/// operation fails; the message names the field and the patch.
pub(crate) fn apply_entry(resources: &mut Vec<Resource>, entry: &Patch, field: &str, dir: &Dir, file: &Path) -> Result<(), BuildError> {
    let err = |message: String| BuildError::field(file, field, message);
    let (text, source) = match (entry.patch.trim(), entry.path.as_str()) {
        ("", "") => return Err(err("an entry needs `patch` or `path`".into())),
        (p, "") => (p.to_string(), dir.show("kustomization.yaml")),
        ("", path) => (dir.read_text(path).map_err(&err)?, dir.show(path)),
        _ => return Err(err("an entry takes `patch` or `path`, not both".into())),
    };
    let parsed = parse(&text, &source)?;
    let describe = || if entry.path.is_empty() { "inline patch".to_string() } else { format!("patch {}", entry.path) };
    let allow_name = entry.options.get("allowNameChange").copied().unwrap_or(false);
    let allow_kind = entry.options.get("allowKindChange").copied().unwrap_or(false);
    match (parsed, &entry.target) {
        (Parsed::Json6902(_), None) => Err(err(format!("{}: a JSON 6902 patch needs a `target`", describe()))),
        (Parsed::Json6902(ops), Some(selector)) => {
            let target = compile(selector).map_err(&err)?;
            for r in resources.iter_mut().filter(|r| target.selects(r)) {
                r.store_previous_id();
                let id = r.cur_id().describe();
                json_patch::patch(&mut r.object, &ops).map_err(|e| err(format!("{} on {id}: {e}", describe())))?;
            }
            Ok(())
        }
        (Parsed::Strategic(patches), Some(selector)) => {
            if patches.len() != 1 {
                return Err(err(format!("{}: a patch with a `target` must be one document", describe())));
            }
            let target = compile(selector).map_err(&err)?;
            for r in resources.iter_mut().filter(|r| target.selects(r)) {
                let mut patch = patches[0].clone();
                patch["apiVersion"] = r.object.get("apiVersion").cloned().unwrap_or(Value::Null);
                apply_strategic(r, &patch, allow_name, allow_kind).map_err(|e| err(format!("{}: {e}", describe())))?;
            }
            resources.retain(|r| !r.is_empty());
            Ok(())
        }
        (Parsed::Strategic(patches), None) => {
            for patch in &patches {
                apply_by_id(resources, patch, allow_name, allow_kind).map_err(|e| err(format!("{}: {e}", describe())))?;
            }
            Ok(())
        }
    }
}

/// Applies one `patchesStrategicMerge` entry: inline YAML, or a file.
///
/// # Errors
/// As [`apply_entry`].
pub(crate) fn apply_strategic_merge_entry(resources: &mut Vec<Resource>, entry: &str, dir: &Dir, file: &Path) -> Result<(), BuildError> {
    let field = "patchesStrategicMerge";
    let err = |message: String| BuildError::field(file, field, message);
    // kustomize reads an entry as patch content first, then as a file path.
    let inline = entry.contains('\n') || entry.trim_start().starts_with('{');
    let (text, source) =
        if inline { (entry.to_string(), dir.show("kustomization.yaml")) } else { (dir.read_text(entry).map_err(&err)?, dir.show(entry)) };
    let Parsed::Strategic(patches) = parse(&text, &source)? else {
        return Err(err(format!("{entry}: a JSON 6902 patch belongs in `patches` with a target")));
    };
    for patch in &patches {
        apply_by_id(resources, patch, false, false).map_err(|e| err(format!("{entry}: {e}")))?;
    }
    Ok(())
}

fn compile(selector: &Selector) -> Result<Target, String> {
    Target::new(selector).map_err(|e| format!("target: {e}"))
}

fn parse(text: &str, source: &Path) -> Result<Parsed, BuildError> {
    let docs = yaml::parse_documents(text, source)?;
    if let Some(Value::Array(_)) = docs.first() {
        if docs.len() != 1 {
            return Err(BuildError::file(source, "a JSON 6902 patch must be one list of operations"));
        }
        let ops: json_patch::Patch =
            serde_json::from_value(docs[0].clone()).map_err(|e| BuildError::file(source, format!("not a JSON 6902 patch: {e}")))?;
        return Ok(Parsed::Json6902(ops));
    }
    if docs.is_empty() {
        return Err(BuildError::file(source, "the patch is empty"));
    }
    for doc in &docs {
        let id = ResId::of(doc);
        if !doc.is_object() || id.gvk.kind.is_empty() || id.name.is_empty() {
            return Err(BuildError::file(source, "a strategic merge patch needs `kind` and `metadata.name` (with a `target`, any name)"));
        }
    }
    Ok(Parsed::Strategic(docs))
}

/// The patch applies to the one object that has (or had) its kind, name and namespace.
fn apply_by_id(resources: &mut Vec<Resource>, patch: &Value, allow_name: bool, allow_kind: bool) -> Result<(), String> {
    let id = ResId::of(patch);
    let matching: Vec<usize> = resources.iter().enumerate().filter(|(_, r)| r.all_ids().any(|i| i.equals(&id))).map(|(i, _)| i).collect();
    let index = match matching.as_slice() {
        [i] => *i,
        [] => return Err(format!("no object matches the patch for {} (check its apiVersion, kind, name and namespace)", id.describe())),
        _ => return Err(format!("{} objects match the patch for {}; add a namespace to the patch", matching.len(), id.describe())),
    };
    apply_strategic(&mut resources[index], patch, allow_name, allow_kind)?;
    resources.retain(|r| !r.is_empty());
    Ok(())
}

/// Strategic merge of `patch` into one object, keeping its kind, name and namespace unless
/// the patch entry allows changing them.
fn apply_strategic(r: &mut Resource, patch: &Value, allow_name: bool, allow_kind: bool) -> Result<(), String> {
    let (name, namespace, kind) = (r.name().to_string(), r.namespace().to_string(), r.kind().to_string());
    if allow_name || allow_kind {
        r.store_previous_id();
    }
    match smp::merge_object(&r.object, patch, &r.gvk())? {
        None => r.object = Value::Object(serde_json::Map::new()),
        Some(merged) => {
            r.object = merged;
            if r.is_empty() {
                return Ok(());
            }
            if !allow_kind {
                r.object["kind"] = Value::String(kind);
            }
            if !allow_name {
                r.set_name(&name);
            }
            r.set_namespace(&namespace);
        }
    }
    Ok(())
}
