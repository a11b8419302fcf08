//! `replacements`: copy one field of one object into fields of other objects, as kustomize
//! v5 does (the last transformer of a kustomization, so it sees names with their prefixes
//! and suffixes, but not the hash of generated names, which comes at the end of the build).
//!
//! A source selects exactly one object by kind, name and namespace (whole values, not
//! patterns) under any id the object has had, and reads a field of it ([`fieldpath::lookup`]).
//! Each target takes the objects its `select` takes and no `reject` takes, and writes every
//! field its `fieldPaths` lead to ([`fieldpath::visit`]). A scalar target keeps its type
//! (the string `"3"` into `replicas: 1` gives `replicas: 3`), a created field takes the
//! value's own reading, and a map or list target is replaced whole, all as in kustomize.

use std::path::Path;

use serde_json::Value;

use super::BuildError;
use super::fieldpath::{self, Create};
use super::kustomization::{FieldOptions, Replacement, ReplacementEntry, ReplacementSource, ReplacementTarget, Selector};
use super::loader::Dir;
use super::resource::{Gvk, ResId, Resource};
use super::selector::Target;
use super::yaml::{self, plain_scalar, value_text};

/// The field a source reads and a target writes when the replacement names none.
const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// The replacements of a kustomization, those in `path` files read and parsed.
///
/// # Errors
/// An entry has both `path` and an inline replacement, or the file cannot be read, is not
/// a replacement or a list of them, or has a field kustomize does not know.
pub(crate) fn load(entries: &[ReplacementEntry], dir: &Dir, file: &Path) -> Result<Vec<Replacement>, BuildError> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let err = |message: String| BuildError::field(file, "replacements", format!("replacements[{i}]: {message}"));
        if entry.path.is_empty() {
            out.push(Replacement { source: entry.source.clone(), targets: entry.targets.clone() });
            continue;
        }
        if entry.source.is_some() || entry.targets.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(err("an entry takes `path` or an inline replacement (`source`, `targets`), not both".into()));
        }
        let shown = dir.show(&entry.path);
        let text = dir.read_text(&entry.path).map_err(err)?;
        let parsed = match yaml::parse_one(&text, &shown)? {
            list @ Value::Array(_) => serde_json::from_value::<Vec<Replacement>>(list),
            map @ Value::Object(_) => serde_json::from_value::<Replacement>(map).map(|r| vec![r]),
            _ => return Err(BuildError::file(&shown, "a replacements file holds one replacement (a map) or a list of them")),
        };
        out.extend(parsed.map_err(|e| BuildError::file(&shown, format!("not a replacement: {e}")))?);
    }
    Ok(out)
}

/// Applies the replacements in order, each one seeing what the ones before it wrote.
///
/// # Errors
/// A source selects no object or more than one, its field is missing or empty, a target
/// field is missing (and `options.create` is not set), a value cannot take a field's type,
/// or an option does not fit the field; the message says which replacement and target.
pub(crate) fn apply(resources: &mut [Resource], replacements: &[Replacement]) -> Result<(), String> {
    for (i, r) in replacements.iter().enumerate() {
        let (Some(source), Some(targets)) = (&r.source, &r.targets) else {
            return Err(format!("replacements[{i}]: a replacement needs a `source` and `targets`"));
        };
        let value = source_value(resources, source).map_err(|e| format!("replacements[{i}].source: {e}"))?;
        for (j, target) in targets.iter().enumerate() {
            write_target(resources, target, &value).map_err(|e| format!("replacements[{i}].targets[{j}]: {e}"))?;
        }
    }
    Ok(())
}

/// A selector's kind, name and namespace as an id (kustomize's `ResId`).
fn id_of(group: &str, version: &str, kind: &str, name: &str, namespace: &str) -> ResId {
    ResId {
        gvk: Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() },
        name: name.to_string(),
        namespace: namespace.to_string(),
    }
}

fn selector_id(s: &Selector) -> ResId {
    id_of(&s.group, &s.version, &s.kind, &s.name, &s.namespace)
}

fn is_empty_id(id: &ResId) -> bool {
    id.gvk == Gvk::default() && id.name.is_empty() && id.namespace.is_empty()
}

/// `id` is taken by `selector`: every part the selector sets is equal (kustomize's
/// `IsSelectedBy`; namespaces compared as kustomize does, `default` for none).
fn selected_by(id: &ResId, selector: &ResId) -> bool {
    (selector.name.is_empty() || selector.name == id.name)
        && (selector.namespace.is_empty() || selector.same_namespace(id))
        && id.gvk.is_selected_by(&selector.gvk.group, &selector.gvk.version, &selector.gvk.kind)
}

fn check_options(options: Option<&FieldOptions>) -> Result<(), String> {
    match options {
        Some(o) if !o.encoding.is_empty() => {
            Err(format!("options.encoding {:?} is not implemented (kustomize ignores it); remove it", o.encoding))
        }
        _ => Ok(()),
    }
}

fn describe_source(s: &ReplacementSource) -> String {
    let parts: Vec<String> =
        [("group", &s.group), ("version", &s.version), ("kind", &s.kind), ("name", &s.name), ("namespace", &s.namespace)]
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
    if parts.is_empty() { "an empty selector".to_string() } else { parts.join(", ") }
}

/// The value a source reads, refined by its `delimiter` and `index`.
fn source_value(resources: &[Resource], source: &ReplacementSource) -> Result<Value, String> {
    check_options(source.options.as_ref())?;
    let selector = id_of(&source.group, &source.version, &source.kind, &source.name, &source.namespace);
    let matches: Vec<&Resource> = resources.iter().filter(|r| r.all_ids().any(|id| selected_by(&id, &selector))).collect();
    let object = match matches.as_slice() {
        [one] => *one,
        [] => return Err(format!("nothing selected by {}", describe_source(source))),
        many => {
            let ids: Vec<String> = many.iter().map(|r| r.cur_id().describe()).collect();
            return Err(format!(
                "{} selects {} objects ({}); a source must select one: add its kind, name or namespace",
                describe_source(source),
                many.len(),
                ids.join(", ")
            ));
        }
    };
    let path = if source.field_path.is_empty() { DEFAULT_FIELD_PATH } else { &source.field_path };
    let id = object.cur_id().describe();
    let found = fieldpath::lookup(&object.object, &fieldpath::split(path)).map_err(|e| format!("fieldPath {path:?} in {id}: {e}"))?;
    let value = match found {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(v) => Some(v.clone()),
    };
    let Some(value) = value else {
        return Err(format!("fieldPath {path:?} is missing or empty in {id}"));
    };
    match source.options.as_ref().filter(|o| !o.delimiter.is_empty()) {
        None => Ok(value),
        Some(o) => {
            if value.is_object() || value.is_array() {
                return Err(format!("options.delimiter: fieldPath {path:?} of {id} is not a scalar"));
            }
            let text = value_text(&value);
            let pieces: Vec<&str> = text.split(o.delimiter.as_str()).collect();
            let piece = usize::try_from(o.index)
                .ok()
                .and_then(|i| pieces.get(i))
                .ok_or_else(|| format!("options.index {} is out of bounds for {text:?} split on {:?}", o.index, o.delimiter))?;
            // The part keeps the source's type, as kustomize keeps the node's tag.
            Ok(if value.is_string() { Value::String(piece.to_string()) } else { plain_scalar(piece) })
        }
    }
}

/// The label and annotation part of a selector, when it has one.
fn label_filter(s: &Selector) -> Result<Option<Target>, String> {
    if s.label_selector.is_empty() && s.annotation_selector.is_empty() {
        return Ok(None);
    }
    let only =
        Selector { label_selector: s.label_selector.clone(), annotation_selector: s.annotation_selector.clone(), ..Default::default() };
    Target::new(&only).map(Some)
}

fn write_target(resources: &mut [Resource], target: &ReplacementTarget, value: &Value) -> Result<(), String> {
    let Some(select) = &target.select else {
        return Err("a target needs `select` (the objects to write to)".into());
    };
    check_options(target.options.as_ref())?;
    let select_id = selector_id(select);
    let select_labels = label_filter(select)?;
    let mut reject_labels = Vec::new();
    for reject in &target.reject {
        reject_labels.extend(label_filter(reject)?);
    }
    let reject_ids: Vec<ResId> = target.reject.iter().map(selector_id).filter(|id| !is_empty_id(id)).collect();
    let default_paths = [DEFAULT_FIELD_PATH.to_string()];
    let paths: &[String] = match &target.field_paths {
        Some(p) if !p.is_empty() => p,
        _ => &default_paths,
    };
    for r in resources.iter_mut() {
        // kustomize rejects on labels or on ids, each on its own.
        if select_labels.as_ref().is_some_and(|t| !t.selects(r)) || reject_labels.iter().any(|t| t.selects(r)) {
            continue;
        }
        let ids: Vec<ResId> = r.all_ids().collect();
        if ids.iter().any(|id| reject_ids.iter().any(|reject| selected_by(id, reject))) {
            continue;
        }
        if !ids.iter().any(|id| selected_by(id, &select_id)) {
            continue;
        }
        for path in paths {
            write_field(r, path, value, target.options.as_ref())?;
        }
    }
    Ok(())
}

/// Writes `value` into every field `path` leads to in one object.
fn write_field(r: &mut Resource, path: &str, value: &Value, options: Option<&FieldOptions>) -> Result<(), String> {
    let id = r.cur_id().describe();
    let create = options.filter(|o| o.create).map(|_| Create::like(value));
    let what = if create.is_some() { "find or create" } else { "find" };
    let n = fieldpath::visit(&mut r.object, &fieldpath::split(path), create, &mut |field, created| set(field, created, value, options))
        .map_err(|e| format!("unable to {what} field {path:?} in {id}: {e}"))?;
    if n == 0 {
        let hint = if create.is_some() { "" } else { "; set options.create: true to create it" };
        return Err(format!("unable to {what} field {path:?} in {id}{hint}"));
    }
    Ok(())
}

/// Sets one target field, as kustomize's `setFieldValue`.
fn set(field: &mut Value, created: bool, value: &Value, options: Option<&FieldOptions>) -> Result<(), String> {
    let mut value = value.clone();
    if let Some(o) = options.filter(|o| !o.delimiter.is_empty()) {
        if field.is_object() || field.is_array() {
            return Err("options.delimiter can only be used on a scalar field".into());
        }
        let current = value_text(field);
        let mut parts: Vec<&str> = current.split(o.delimiter.as_str()).collect();
        let new = value_text(&value);
        match usize::try_from(o.index) {
            Err(_) => parts.insert(0, &new),
            Ok(i) if i >= parts.len() => parts.push(&new),
            Ok(i) => parts[i] = &new,
        }
        value = Value::String(parts.join(&o.delimiter));
    }
    if created || !(field.is_object() || field.is_array()) {
        // A scalar keeps its type and takes only the value's text; a created one reads it.
        let text = value_text(&value);
        *field = typed(field, created, &text)?;
    } else {
        *field = value;
    }
    Ok(())
}

/// `text` as a value of the type `field` has (kustomize keeps the YAML tag of a scalar).
fn typed(field: &Value, created: bool, text: &str) -> Result<Value, String> {
    let read = plain_scalar(text);
    let ok = match field {
        _ if created => return Ok(read),
        Value::String(_) => return Ok(Value::String(text.to_string())),
        Value::Number(_) => read.is_number(),
        Value::Bool(_) => read.is_boolean(),
        Value::Null => read.is_null(),
        Value::Object(_) | Value::Array(_) => true,
    };
    if ok {
        Ok(read)
    } else {
        let kind = match field {
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        Err(format!("the field is {kind} and {text:?} is not (kustomize keeps a field's type)"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use serde_json::json;

    fn resources(objects: &[Value]) -> Vec<Resource> {
        objects.iter().map(|o| Resource::new(o.clone(), PathBuf::from("test.yaml"))).collect()
    }

    fn replacements(yaml_text: &str) -> Vec<Replacement> {
        let value: Value = serde_yaml::from_str(yaml_text).unwrap();
        serde_json::from_value(value).unwrap()
    }

    fn config_map() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"replicas": "3", "image": "nginx:1.27", "host": "db.example.com"}})
    }

    fn deployment(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"tier": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "HOST", "value": "old"}]}]}}}})
    }

    #[test]
    fn a_value_keeps_the_target_type_and_created_fields_read_it() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        let r = replacements(
            "- source: {kind: ConfigMap, name: cfg, fieldPath: data.replicas}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [spec.replicas, metadata.annotations.replicas, metadata.labels.tier]\n    options: {create: true}\n",
        );
        apply(&mut rs, &r).unwrap();
        let d = &rs[1].object;
        assert_eq!(d["spec"]["replicas"], json!(3), "a number stays a number");
        assert_eq!(d["metadata"]["labels"]["tier"], json!("3"), "a string stays a string");
        assert_eq!(d["metadata"]["annotations"]["replicas"], json!(3), "created: read as YAML reads it");
    }

    #[test]
    fn select_reject_and_list_selectors_choose_the_targets() {
        let mut other = deployment("batch");
        other["metadata"]["labels"]["tier"] = json!("batch");
        let mut rs = resources(&[config_map(), deployment("web"), other, deployment("skip")]);
        let r = replacements(
            "- source: {kind: ConfigMap, fieldPath: data.host}\n  targets:\n  - select: {kind: Deployment, labelSelector: tier=web}\n    reject: [{name: skip}]\n    fieldPaths: ['spec.template.spec.containers.[name=app].env.[name=HOST].value']\n",
        );
        apply(&mut rs, &r).unwrap();
        let host = |i: usize| rs[i].object["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"].clone();
        assert_eq!(host(1), json!("db.example.com"));
        assert_eq!(host(2), json!("old"), "labelSelector leaves it out");
        assert_eq!(host(3), json!("old"), "rejected by name");
    }

    #[test]
    fn delimiters_pick_a_part_of_the_source_and_replace_a_part_of_the_target() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        let r = replacements(
            "- source: {kind: ConfigMap, fieldPath: data.image, options: {delimiter: ':', index: 1}}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: ['spec.template.spec.containers.0.image']\n    options: {delimiter: ':', index: 1}\n  - select: {kind: Deployment}\n    fieldPaths: [metadata.name]\n    options: {delimiter: '-', index: -1}\n",
        );
        apply(&mut rs, &r).unwrap();
        assert_eq!(rs[1].object["spec"]["template"]["spec"]["containers"][0]["image"], json!("x:1.27"), "past the end appends");
        assert_eq!(rs[1].object["metadata"]["name"], json!("1.27-web"), "below 0 prepends");
    }

    #[test]
    fn a_map_source_replaces_a_target_whole() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        let r = replacements(
            "- source: {kind: Deployment, fieldPath: metadata.labels}\n  targets:\n  - select: {kind: ConfigMap}\n    fieldPaths: [metadata.labels]\n    options: {create: true}\n",
        );
        apply(&mut rs, &r).unwrap();
        assert_eq!(rs[0].object["metadata"]["labels"], json!({"tier": "web"}));
    }

    #[test]
    fn sources_must_select_exactly_one_object_with_the_field() {
        let mut rs = resources(&[config_map(), deployment("a"), deployment("b")]);
        let target = "  targets:\n  - select: {kind: ConfigMap}\n";
        let err = apply(&mut rs, &replacements(&format!("- source: {{kind: Secret}}\n{target}"))).unwrap_err();
        assert!(err.contains("replacements[0].source: nothing selected by kind Secret"), "{err}");
        let err = apply(&mut rs, &replacements(&format!("- source: {{kind: Deployment}}\n{target}"))).unwrap_err();
        assert!(err.contains("selects 2 objects (Deployment/a, Deployment/b)"), "{err}");
        let err = apply(&mut rs, &replacements(&format!("- source: {{kind: ConfigMap, fieldPath: data.nope}}\n{target}"))).unwrap_err();
        assert!(err.contains("\"data.nope\" is missing or empty in ConfigMap/cfg"), "{err}");
        let err = apply(&mut rs, &replacements("- source: {kind: ConfigMap}\n")).unwrap_err();
        assert!(err.contains("needs a `source` and `targets`"), "{err}");
    }

    #[test]
    fn a_missing_target_field_is_an_error_unless_created() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        let err = apply(
            &mut rs,
            &replacements(
                "- source: {kind: ConfigMap}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [spec.strategy.type]\n",
            ),
        )
        .unwrap_err();
        assert!(err.contains("replacements[0].targets[0]: unable to find field \"spec.strategy.type\" in Deployment/web"), "{err}");
        assert!(err.contains("options.create"), "{err}");
    }

    #[test]
    fn a_value_that_cannot_take_the_field_type_is_an_error() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        let err = apply(
            &mut rs,
            &replacements("- source: {kind: ConfigMap, fieldPath: data.host}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [spec.replicas]\n"),
        )
        .unwrap_err();
        assert!(err.contains("the field is a number and \"db.example.com\" is not"), "{err}");
    }

    #[test]
    fn sources_and_targets_match_earlier_names() {
        let mut rs = resources(&[config_map(), deployment("web")]);
        rs[0].store_previous_id();
        rs[0].set_name("prefix-cfg");
        let r = replacements(
            "- source: {kind: ConfigMap, name: cfg}\n  targets:\n  - select: {kind: Deployment}\n    fieldPaths: [metadata.annotations.config]\n    options: {create: true}\n",
        );
        apply(&mut rs, &r).unwrap();
        assert_eq!(rs[1].object["metadata"]["annotations"]["config"], json!("prefix-cfg"));
    }
}
