//! Strategic merge, as kustomize (kyaml) does it.
//!
//! Maps merge key by key and `null` deletes a key. Lists are replaced, except the lists the
//! Kubernetes API marks for merging (containers by `name`, env by `name`, ports by
//! `containerPort` and `protocol`, volume mounts by `mountPath`, ...): their elements are
//! matched by those keys and merged, elements from the patch first, then the rest of the
//! target's. `$patch: delete` removes a map or list element, `$patch: replace` replaces a
//! map, and a list element `{$patch: replace}` / `{$patch: delete}` replaces or removes the
//! whole list. Kinds the Kubernetes API does not define (custom resources) have no merge
//! lists at all, which is JSON merge patch semantics plus the `$patch` directives.
//!
//! Why our own: no crate implements strategic merge; kustomize's quirks (patch elements
//! first, multi-key lists moved to the end) are kept so the output matches `kubectl
//! kustomize` object for object (see tests/kustomize_build.rs).

use serde_json::{Map, Value};

use super::resource::Gvk;

/// A place in an object's schema: what its fields are and which of its lists merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// No schema: maps merge, lists are replaced.
    None,
    /// A built-in kind with nothing special besides its metadata.
    Known,
    Pod,
    PodTemplate,
    Workload,
    CronJob,
    Service,
    ServiceAccount,
    Webhooks,
    ObjectMeta,
    PodTemplateSpec,
    WorkloadSpec,
    CronJobSpec,
    JobTemplateSpec,
    ServiceSpec,
    PodSpec,
    Container,
}

/// What a field holds: a value of some type, or a list merged by these keys (no keys: a
/// list of scalars merged as a set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Value(Ty),
    MergeList(&'static [&'static str], Ty),
}

/// API groups of the built-in kinds kustomize has a schema for.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "node.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "extensions",
];

impl Ty {
    pub fn root(gvk: &Gvk) -> Ty {
        if !BUILTIN_GROUPS.contains(&gvk.group.as_str()) {
            return Ty::None;
        }
        match gvk.kind.as_str() {
            "Pod" => Ty::Pod,
            "PodTemplate" => Ty::PodTemplate,
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ReplicationController" | "Job" => Ty::Workload,
            "CronJob" => Ty::CronJob,
            "Service" => Ty::Service,
            "ServiceAccount" => Ty::ServiceAccount,
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => Ty::Webhooks,
            _ => Ty::Known,
        }
    }

    fn field(self, name: &str) -> Field {
        use Field::{MergeList, Value as V};
        match (self, name) {
            (Ty::None, _) => V(Ty::None),
            (
                Ty::Known
                | Ty::Pod
                | Ty::PodTemplate
                | Ty::Workload
                | Ty::CronJob
                | Ty::Service
                | Ty::ServiceAccount
                | Ty::Webhooks
                | Ty::PodTemplateSpec
                | Ty::JobTemplateSpec,
                "metadata",
            ) => V(Ty::ObjectMeta),
            (Ty::Pod | Ty::PodTemplateSpec, "spec") => V(Ty::PodSpec),
            (Ty::PodTemplate | Ty::WorkloadSpec, "template") => V(Ty::PodTemplateSpec),
            (Ty::Workload | Ty::JobTemplateSpec, "spec") => V(Ty::WorkloadSpec),
            (Ty::CronJob, "spec") => V(Ty::CronJobSpec),
            (Ty::CronJobSpec, "jobTemplate") => V(Ty::JobTemplateSpec),
            (Ty::Service, "spec") => V(Ty::ServiceSpec),
            (Ty::ServiceSpec, "ports") => MergeList(&["port", "protocol"], Ty::None),
            (Ty::ServiceAccount, "secrets") => MergeList(&["name"], Ty::None),
            (Ty::Webhooks, "webhooks") => MergeList(&["name"], Ty::None),
            (Ty::ObjectMeta, "finalizers") => MergeList(&[], Ty::None),
            (Ty::ObjectMeta, "ownerReferences") => MergeList(&["uid"], Ty::None),
            (Ty::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => MergeList(&["name"], Ty::Container),
            (Ty::PodSpec, "volumes" | "imagePullSecrets") => MergeList(&["name"], Ty::None),
            (Ty::PodSpec, "hostAliases") => MergeList(&["ip"], Ty::None),
            (Ty::PodSpec, "topologySpreadConstraints") => MergeList(&["topologyKey", "whenUnsatisfiable"], Ty::None),
            (Ty::Container, "env") => MergeList(&["name"], Ty::None),
            (Ty::Container, "ports") => MergeList(&["containerPort", "protocol"], Ty::None),
            (Ty::Container, "volumeMounts") => MergeList(&["mountPath"], Ty::None),
            (Ty::Container, "volumeDevices") => MergeList(&["devicePath"], Ty::None),
            _ => V(Ty::None),
        }
    }
}

/// Merges `patch` into `target` (an object of kind `gvk`). `None`: the patch deleted it.
///
/// # Errors
/// The patch and the target disagree on the shape of a field (a map against a list), or a
/// `$patch` directive is unknown; the message names the field.
pub(crate) fn merge_object(target: &Value, patch: &Value, gvk: &Gvk) -> Result<Option<Value>, String> {
    merge(Some(target), patch, Field::Value(Ty::root(gvk)), "")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

/// The `$patch` of a map, and the map without it.
fn map_directive(patch: &Map<String, Value>, path: &str) -> Result<(Directive, Map<String, Value>), String> {
    let mut rest = patch.clone();
    let directive = match rest.remove("$patch") {
        None => Directive::Merge,
        Some(Value::String(s)) if s == "merge" => Directive::Merge,
        Some(Value::String(s)) if s == "replace" => Directive::Replace,
        Some(Value::String(s)) if s == "delete" => Directive::Delete,
        Some(other) => return Err(format!("{}: unknown patch strategy {other}", show(path))),
    };
    Ok((directive, rest))
}

/// The list-wide `$patch` (an element that is only `{$patch: ...}`), and the list without it.
fn list_directive(patch: &[Value], path: &str) -> Result<(Directive, Vec<Value>), String> {
    let position = patch.iter().position(|e| e.as_object().is_some_and(|m| m.len() == 1 && m.contains_key("$patch")));
    let Some(i) = position else { return Ok((Directive::Merge, patch.to_vec())) };
    let (directive, _) = map_directive(patch[i].as_object().map_or(&Map::new(), |m| m), path)?;
    let mut rest = patch.to_vec();
    rest.remove(i);
    Ok((directive, rest))
}

fn show(path: &str) -> &str {
    if path.is_empty() { "the object" } else { path }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "a map",
        Value::Array(_) => "a list",
        Value::Null => "null",
        _ => "a scalar",
    }
}

fn merge(dest: Option<&Value>, patch: &Value, field: Field, path: &str) -> Result<Option<Value>, String> {
    let dest = dest.filter(|d| !d.is_null());
    // The shape comes from the target when it has the field, else from the patch.
    let shape = dest.unwrap_or(patch);
    match shape {
        Value::Object(_) | Value::Null => {
            let ty = match field {
                Field::Value(ty) | Field::MergeList(_, ty) => ty,
            };
            merge_map(dest, patch, ty, path)
        }
        Value::Array(_) => merge_list(dest, patch, field, path),
        _ => Ok(if patch.is_null() { None } else { Some(patch.clone()) }),
    }
}

fn merge_map(dest: Option<&Value>, patch: &Value, ty: Ty, path: &str) -> Result<Option<Value>, String> {
    if patch.is_null() {
        return Ok(None);
    }
    let Some(patch_map) = patch.as_object() else {
        return Err(format!("{}: cannot merge {} into a map", show(path), kind_name(patch)));
    };
    let (directive, patch_map) = map_directive(patch_map, path)?;
    let base = match (dest, directive) {
        (_, Directive::Delete) => return Ok(None),
        // New or replaced: the patch itself, cleaned of directives and nulls by merging it
        // into itself (kyaml walks it against itself).
        (None, _) | (Some(_), Directive::Replace) => Value::Object(patch_map.clone()),
        (Some(d), Directive::Merge) => d.clone(),
    };
    let Value::Object(mut out) = base else {
        return Err(format!("{}: cannot merge a map into {}", show(path), kind_name(&base)));
    };
    let mut keys: Vec<&String> = patch_map.keys().collect();
    keys.sort();
    for key in keys {
        let child = &patch_map[key];
        let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match merge(out.get(key), child, ty.field(key), &child_path)? {
            Some(v) => {
                out.insert(key.clone(), v);
            }
            None => {
                out.remove(key);
            }
        }
    }
    Ok(Some(Value::Object(out)))
}

fn merge_list(dest: Option<&Value>, patch: &Value, field: Field, path: &str) -> Result<Option<Value>, String> {
    if patch.is_null() {
        return Ok(None);
    }
    let Some(patch_items) = patch.as_array() else {
        return Err(format!("{}: cannot merge {} into a list", show(path), kind_name(patch)));
    };
    let Field::MergeList(keys, elem_ty) = field else {
        // Not a merge list: the patch replaces it.
        return Ok(Some(patch.clone()));
    };
    let Some(dest_items) = dest.and_then(Value::as_array) else {
        // A new list: the patch, its elements merged into themselves.
        return merge_elements(patch_items, patch_items, keys, elem_ty, path);
    };
    let (directive, patch_items) = list_directive(patch_items, path)?;
    match directive {
        Directive::Delete => Ok(None),
        Directive::Replace => merge_elements(&patch_items, &patch_items, keys, elem_ty, path),
        Directive::Merge => merge_elements(dest_items, &patch_items, keys, elem_ty, path),
    }
}

/// The text kyaml compares merge keys by.
fn key_text(element: &Value, key: &str) -> String {
    match element.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

/// An element has every `keys[i]` whose value is non-empty, with that value; an empty value
/// asks only that the field exists.
fn matches(element: &Value, keys: &[&str], values: &[String]) -> bool {
    element.is_object()
        && keys.iter().zip(values).all(|(k, v)| match element.get(*k) {
            None => false,
            Some(_) if v.is_empty() => true,
            Some(_) => key_text(element, k) == *v,
        })
}

/// Lookup used to find an element of one source: only the keys this tuple has values for.
fn lookup_keys<'a>(keys: &[&'a str], values: &[String]) -> (Vec<&'a str>, Vec<String>) {
    let pairs: Vec<(&str, String)> = keys.iter().zip(values).filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.clone())).collect();
    if pairs.is_empty() {
        return (keys.to_vec(), values.to_vec());
    }
    pairs.into_iter().unzip()
}

fn exact_match(element: &Value, keys: &[&str], values: &[String]) -> bool {
    element.is_object() && keys.iter().zip(values).all(|(k, v)| element.get(*k).is_some_and(|_| key_text(element, k) == *v))
}

/// Two key tuples are one element when they share a value and differ only where one is
/// empty (a port without a protocol is the port with one).
fn unify(a: &[String], b: &[String]) -> Option<Vec<String>> {
    let mut common = false;
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            out.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else {
            out.push(if x.is_empty() { y.clone() } else { x.clone() });
        }
    }
    common.then_some(out)
}

fn merge_elements(dest: &[Value], patch: &[Value], keys: &[&str], elem_ty: Ty, path: &str) -> Result<Option<Value>, String> {
    if keys.is_empty() {
        // A set of scalars: the patch's values first, then the target's others.
        let mut out: Vec<Value> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for v in patch.iter().chain(dest) {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !seen.contains(&text) {
                seen.push(text);
                out.push(v.clone());
            }
        }
        return Ok(Some(Value::Array(out)));
    }

    // Every distinct key tuple, the patch's first.
    let mut tuples: Vec<Vec<String>> = Vec::new();
    for element in patch.iter().chain(dest) {
        let t: Vec<String> = keys.iter().map(|k| key_text(element, k)).collect();
        // An element without any merge key cannot be matched; it is kept as it is below.
        if t.iter().all(String::is_empty) {
            continue;
        }
        if !tuples.contains(&t) {
            tuples.push(t);
        }
    }
    if keys.len() > 1 {
        for i in 0..tuples.len() {
            for j in 0..tuples.len() {
                if let Some(u) = unify(&tuples[i], &tuples[j]) {
                    tuples[i] = u.clone();
                    tuples[j] = u;
                }
            }
        }
    }
    // Keys that have a value somewhere; the others are left out of matching.
    let used: Vec<bool> = (0..keys.len()).map(|i| tuples.iter().any(|t| !t[i].is_empty())).collect();
    let (valid_keys, valid_index): (Vec<&str>, Vec<usize>) = if used.iter().any(|u| *u) {
        keys.iter().enumerate().filter(|(i, _)| used[*i]).map(|(i, k)| (*k, i)).unzip()
    } else {
        (keys.to_vec(), (0..keys.len()).collect())
    };

    let mut merged_dest: Vec<Option<Value>> = dest.iter().cloned().map(Some).collect();
    let mut added: Vec<Value> = Vec::new();
    for tuple in &tuples {
        let values: Vec<String> = valid_index.iter().map(|i| tuple[*i].clone()).collect();
        let (look_keys, look_values) = lookup_keys(keys, tuple);
        let dest_index = merged_dest.iter().position(|e| e.as_ref().is_some_and(|e| exact_match(e, &look_keys, &look_values)));
        let patch_elem = patch.iter().find(|e| exact_match(e, &look_keys, &look_values));
        let element_path = format!("{path}[{}]", look_values.join(","));
        let dest_elem = dest_index.and_then(|i| merged_dest[i].clone());
        let val = match (&dest_elem, patch_elem) {
            (Some(d), Some(p)) => merge(Some(d), p, Field::Value(elem_ty), &element_path)?,
            (Some(d), None) => Some(d.clone()),
            (None, Some(p)) => merge(Some(p), p, Field::Value(elem_ty), &element_path)?,
            (None, None) => None,
        };
        let val = val.filter(|v| !v.as_object().is_some_and(Map::is_empty));
        let Some(mut val) = val else {
            for e in merged_dest.iter_mut() {
                if e.as_ref().is_some_and(|e| matches(e, &valid_keys, &values)) {
                    *e = None;
                }
            }
            continue;
        };
        if let Some(map) = val.as_object_mut() {
            for (k, v) in valid_keys.iter().zip(&values) {
                if !map.contains_key(*k) && !v.is_empty() {
                    let value = v.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(v.clone()));
                    map.insert((*k).to_string(), value);
                }
            }
        }
        // kyaml merges a target element in place, except when the patch element replaces
        // it: then the final pass below puts the untouched target element back.
        let replaces = patch_elem.and_then(|p| p.get("$patch")).and_then(Value::as_str) == Some("replace");
        if let Some(i) = dest_index
            && !replaces
        {
            merged_dest[i] = Some(val.clone());
        }
        set_element(&mut added, val, &valid_keys, &values);
    }
    // The target's elements take their places again: in place for one key, at the end for
    // several (kyaml removes and re-appends them).
    for element in merged_dest.into_iter().flatten() {
        let present: Vec<(&str, String)> =
            valid_keys.iter().filter(|k| element.get(**k).is_some()).map(|k| (*k, key_text(&element, k))).collect();
        let (pk, pv): (Vec<&str>, Vec<String>) = present.into_iter().unzip();
        if pk.is_empty() {
            added.push(element);
        } else if valid_keys.len() > 1 {
            added.retain(|e| !matches(e, &pk, &pv));
            added.push(element);
        } else {
            set_element(&mut added, element, &pk, &pv);
        }
    }
    Ok(Some(Value::Array(added)))
}

/// Replaces every element matching `keys`/`values` with `element`, or appends it.
fn set_element(list: &mut Vec<Value>, element: Value, keys: &[&str], values: &[String]) {
    let mut found = false;
    for e in list.iter_mut() {
        if matches(e, keys, values) {
            *e = element.clone();
            found = true;
        }
    }
    if !found {
        list.push(element);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Gvk {
        Gvk::from_api_version("apps/v1", "Deployment")
    }

    #[test]
    fn containers_merge_by_name_with_patch_elements_first() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "b:2"},
            {"name": "a", "env": [{"name": "Y", "value": "22"}, {"name": "W", "value": "0"}]}
        ]}}}});
        let out = merge_object(&target, &patch, &deployment()).unwrap().unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "b", "image": "b:2"},
                {"name": "a", "image": "a:1", "env": [{"name": "Y", "value": "22"}, {"name": "W", "value": "0"}, {"name": "X", "value": "1"}]}
            ])
        );
    }

    #[test]
    fn ports_with_two_keys_move_target_elements_to_the_end() {
        let target = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81}
        ]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "name": "http"}, {"containerPort": 82}
        ]}]}}}});
        let out = merge_object(&target, &patch, &deployment()).unwrap().unwrap();
        // What kubectl kustomize v5.5 prints for the same input.
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 82}, {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81}])
        );
    }

    #[test]
    fn directives_delete_and_replace() {
        let target = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "nodeSelector": {"a": "1", "b": "2"}
        }}}});
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "$patch": "delete"}],
            "volumes": [{"$patch": "replace"}, {"name": "w", "emptyDir": {}}],
            "nodeSelector": {"$patch": "replace", "c": "3"}
        }}}});
        let out = merge_object(&target, &patch, &deployment()).unwrap().unwrap();
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"], json!([{"name": "b"}]));
        assert_eq!(spec["volumes"], json!([{"name": "w", "emptyDir": {}}]));
        assert_eq!(spec["nodeSelector"], json!({"c": "3"}));
        assert_eq!(merge_object(&target, &json!({"$patch": "delete"}), &deployment()).unwrap(), None);
    }

    #[test]
    fn custom_resources_get_merge_patch_semantics() {
        let target = json!({"spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "m": {"x": 1, "y": 2}}});
        let patch = json!({"spec": {"items": [{"name": "b", "v": 3}], "m": {"y": null, "z": 3}}});
        let out = merge_object(&target, &patch, &Gvk::from_api_version("example.com/v1", "Thing")).unwrap().unwrap();
        assert_eq!(out, json!({"spec": {"items": [{"name": "b", "v": 3}], "m": {"x": 1, "z": 3}}}));
    }

    #[test]
    fn shape_mismatch_names_the_field() {
        let err = merge_object(&json!({"spec": {"a": {"b": 1}}}), &json!({"spec": {"a": [1]}}), &deployment()).unwrap_err();
        assert!(err.contains("spec.a"), "{err}");
    }
}
