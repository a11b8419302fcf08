//! The field transformers of a kustomization: namespace, name prefix and suffix, labels,
//! annotations, replicas and images, each writing where kustomize writes (see
//! [`super::fieldspec`]).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::fieldspec::{self, Create, FieldSpec};
use super::resource::{Gvk, Resource};

/// Sets the namespace of every namespaced object (and the name of `v1` Namespace objects,
/// and the namespace of RoleBinding subjects named `default`, as kustomize does).
///
/// # Errors
/// Two objects end up with the same id.
pub(crate) fn namespace(resources: &mut [Resource], ns: &str) -> Result<(), String> {
    let specs = fieldspec::namespace_fields();
    for r in resources.iter_mut() {
        if r.is_empty() {
            continue;
        }
        r.store_previous_id();
        let gvk = r.gvk();
        if !gvk.is_cluster_scoped() {
            r.set_namespace(ns);
        }
        if gvk.kind == "Namespace" && r.object.get("apiVersion").and_then(Value::as_str) == Some("v1") {
            r.set_name(ns);
        }
        if matches!(gvk.kind.as_str(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(subjects) = r.object.get_mut("subjects").and_then(Value::as_array_mut)
        {
            for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
                if s.get("name").and_then(Value::as_str) == Some("default") {
                    s.insert("namespace".into(), Value::String(ns.to_string()));
                }
            }
        }
        for spec in &specs {
            spec.apply(&mut r.object, Some(Create::Scalar), &mut |v| {
                *v = Value::String(ns.to_string());
                Ok(())
            })?;
        }
    }
    check_unique(resources)
}

/// Two objects with one id cannot both be applied.
pub(crate) fn check_unique(resources: &[Resource]) -> Result<(), String> {
    for (i, a) in resources.iter().enumerate() {
        let id = a.cur_id();
        if resources[i + 1..].iter().any(|b| b.cur_id().equals(&id)) {
            return Err(format!("two objects are now {}; give them different names or namespaces", id.describe()));
        }
    }
    Ok(())
}

/// Kinds whose names a prefix or suffix never touches.
fn keeps_name(gvk: &Gvk) -> bool {
    gvk.kind == "CustomResourceDefinition" || gvk.kind == "Namespace" || (gvk.group == "apiregistration.k8s.io" && gvk.kind == "APIService")
}

/// Adds a name prefix or suffix to every object but CRDs, APIServices and Namespaces.
pub(crate) fn prefix_suffix(resources: &mut [Resource], prefix: &str, suffix: &str) {
    for r in resources.iter_mut() {
        if keeps_name(&r.org_id().gvk) {
            continue;
        }
        if !prefix.is_empty() {
            r.prefixes.push(prefix.to_string());
            r.store_previous_id();
            let name = format!("{prefix}{}", r.name());
            r.set_name(&name);
        }
        if !suffix.is_empty() {
            r.suffixes.push(suffix.to_string());
            r.store_previous_id();
            let name = format!("{}{suffix}", r.name());
            r.set_name(&name);
        }
    }
}

/// Writes `pairs` into the map each spec leads to (creating it where the spec says so).
///
/// # Errors
/// A spec runs into a field of the wrong shape.
pub(crate) fn string_map(resources: &mut [Resource], pairs: &BTreeMap<String, String>, specs: &[FieldSpec]) -> Result<(), String> {
    if pairs.is_empty() {
        return Ok(());
    }
    for r in resources.iter_mut() {
        let id = r.cur_id().describe();
        for spec in specs {
            spec.apply(&mut r.object, Some(Create::Map), &mut |v| {
                if v.is_null() {
                    *v = Value::Object(Map::new());
                }
                let Some(map) = v.as_object_mut() else {
                    return Err("expected a map".to_string());
                };
                for (k, val) in pairs {
                    map.insert(k.clone(), Value::String(val.clone()));
                }
                Ok(())
            })
            .map_err(|e| format!("{id}: {e}"))?;
        }
    }
    Ok(())
}

/// Sets the replica count of the workloads called `name` (under any name they had).
///
/// # Errors
/// No workload has that name.
pub(crate) fn replicas(resources: &mut [Resource], name: &str, count: i64) -> Result<(), String> {
    let mut found = false;
    for spec in fieldspec::replicas() {
        for r in resources.iter_mut() {
            if !r.all_ids().any(|id| id.name == name && id.gvk.is_selected_by(&spec.group, &spec.version, &spec.kind)) {
                continue;
            }
            found = true;
            spec.apply(&mut r.object, Some(Create::Scalar), &mut |v| {
                *v = Value::from(count);
                Ok(())
            })?;
        }
    }
    if found { Ok(()) } else { Err(format!("no Deployment, ReplicationController, ReplicaSet or StatefulSet is named {name:?}")) }
}

/// One `images` entry.
pub(crate) struct ImageRule {
    pattern: Regex,
    new_name: String,
    new_tag: String,
    tag_suffix: String,
    digest: String,
}

impl ImageRule {
    /// # Errors
    /// The name is not a usable pattern.
    pub fn new(name: &str, new_name: &str, new_tag: &str, tag_suffix: &str, digest: &str) -> Result<ImageRule, String> {
        // kustomize matches the name as a regular expression, followed by a tag or digest.
        let pattern = Regex::new(&format!("^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$"))
            .map_err(|e| format!("image name {name:?} is not usable: {e}"))?;
        Ok(ImageRule { pattern, new_name: new_name.into(), new_tag: new_tag.into(), tag_suffix: tag_suffix.into(), digest: digest.into() })
    }

    fn rewrite(&self, image: &str) -> Option<String> {
        if !self.pattern.is_match(image) {
            return None;
        }
        let (mut name, mut tag, mut digest) = split_image(image);
        if !self.new_name.is_empty() {
            name = self.new_name.clone();
        }
        if !self.new_tag.is_empty() && !self.digest.is_empty() {
            tag = self.new_tag.clone();
            digest = self.digest.clone();
        } else if !self.new_tag.is_empty() {
            tag = self.new_tag.clone();
            digest.clear();
        } else if !self.digest.is_empty() {
            tag.clear();
            digest = self.digest.clone();
        } else if !self.tag_suffix.is_empty() {
            tag.push_str(&self.tag_suffix);
            digest.clear();
        }
        let mut out = name;
        if !tag.is_empty() {
            out.push(':');
            out.push_str(&tag);
        }
        if !digest.is_empty() {
            out.push('@');
            out.push_str(&digest);
        }
        Some(out)
    }
}

/// `registry:5000/app:tag@digest` as (`registry:5000/app`, `tag`, `digest`).
fn split_image(image: &str) -> (String, String, String) {
    // A registry port is not a tag: look for ':' after the first '/'.
    let start = image.find('/').filter(|i| *i > 0).unwrap_or(0);
    let search = &image[start..];
    let at = search.find('@').map(|i| i + start);
    let colon = search.find(':').map(|i| i + start);
    match (colon, at) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (c, Some(a)) if c.is_none_or(|c| a < c) => (image[..a].to_string(), String::new(), image[a + 1..].to_string()),
        (Some(c), Some(a)) => (image[..c].to_string(), image[c + 1..a].to_string(), image[a + 1..].to_string()),
        (Some(c), None) => (image[..c].to_string(), image[c + 1..].to_string(), String::new()),
        (None, Some(_)) => (image.to_string(), String::new(), String::new()),
    }
}

/// Rewrites container images: first in every `containers` / `initContainers` list anywhere in
/// an object, then in the pod spec paths, as kustomize does (so a `tagSuffix` is added twice
/// to a Deployment's containers, exactly as `kubectl kustomize` does). CRDs are left alone.
///
/// # Errors
/// An image field is not a string.
pub(crate) fn images(resources: &mut [Resource], rule: &ImageRule) -> Result<(), String> {
    let specs = fieldspec::images();
    for r in resources.iter_mut() {
        if r.kind() == "CustomResourceDefinition" {
            continue;
        }
        rewrite_containers_anywhere(&mut r.object, rule);
        for spec in &specs {
            spec.apply(&mut r.object, None, &mut |v| match v {
                Value::String(s) => {
                    if let Some(new) = rule.rewrite(s) {
                        *s = new;
                    }
                    Ok(())
                }
                _ => Err("an image must be a string".into()),
            })?;
        }
    }
    Ok(())
}

fn rewrite_containers_anywhere(node: &mut Value, rule: &ImageRule) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                rewrite_containers_anywhere(value, rule);
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(items) = value
                {
                    for item in items {
                        if let Some(Value::String(image)) = item.get_mut("image")
                            && let Some(new) = rule.rewrite(image)
                        {
                            *image = new;
                        }
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_containers_anywhere(i, rule)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_around_registry_ports() {
        assert_eq!(split_image("reg:5000/app:1.0"), ("reg:5000/app".into(), "1.0".into(), String::new()));
        assert_eq!(split_image("app@sha256:abc"), ("app".into(), String::new(), "sha256:abc".into()));
        assert_eq!(split_image("app:1@sha256:abc"), ("app".into(), "1".into(), "sha256:abc".into()));
        assert_eq!(split_image("nginx"), ("nginx".into(), String::new(), String::new()));
    }

    #[test]
    fn image_rules_replace_name_tag_and_digest() {
        let rule = ImageRule::new("nginx", "mirror/nginx", "1.27", "", "").unwrap();
        assert_eq!(rule.rewrite("nginx:1.0").as_deref(), Some("mirror/nginx:1.27"));
        assert_eq!(rule.rewrite("nginx-other:1.0"), None);
        let digest = ImageRule::new("nginx", "", "", "", "sha256:0123").unwrap();
        assert_eq!(digest.rewrite("nginx:1.0").as_deref(), Some("nginx@sha256:0123"));
    }
}
