//! Name references: when a build renames an object (a prefix, a suffix, a generator's hash),
//! the places that refer to it by name follow, e.g. a Deployment's `envFrom.configMapRef`,
//! `env.valueFrom.secretKeyRef`, `volumes.configMap`, `serviceAccountName`, or a
//! RoleBinding's `roleRef`. Runs once, at the end of a build, as kustomize does.
//!
//! A reference is rewritten when exactly one object of the referred kind once had that
//! name and is visible from the referrer (same namespace, or cluster-scoped); between
//! several, the one that got the same prefixes and suffixes as the referrer wins.

use serde_json::Value;

use super::fieldspec::{self, FieldSpec};
use super::resource::{Gvk, ResId, Resource};

/// Fixes every name reference in `resources`.
///
/// # Errors
/// A reference could mean several different objects.
pub(crate) fn fix(resources: &mut [Resource]) -> Result<(), String> {
    let table = fieldspec::name_references();
    for i in 0..resources.len() {
        let referrer_org = resources[i].org_id();
        let referrer_id = resources[i].cur_id();
        let candidates: Vec<usize> = visible_from(resources, i);
        for target in &table {
            let target_gvk = (target.group, target.version, target.kind);
            for spec in target.referrers.iter().filter(|s| referrer_org.gvk.is_selected_by(&s.group, &s.version, &s.kind)) {
                let mut object = std::mem::take(&mut resources[i].object);
                let result = rewrite(&mut object, spec, target_gvk, resources, (&resources[i], &referrer_id), &candidates);
                resources[i].object = object;
                result?;
            }
        }
    }
    Ok(())
}

/// Objects a referrer may refer to: cluster-scoped ones, those in its namespace, and for a
/// RoleBinding those in its ServiceAccount subjects' namespaces.
fn visible_from(resources: &[Resource], i: usize) -> Vec<usize> {
    let referrer = resources[i].cur_id();
    if referrer.gvk.is_cluster_scoped() {
        return (0..resources.len()).collect();
    }
    let mut subject_namespaces: Vec<String> = Vec::new();
    if referrer.gvk.kind == "RoleBinding"
        && let Some(subjects) = resources[i].object.get("subjects").and_then(Value::as_array)
    {
        for s in subjects {
            if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && let Some(ns) = s.get("namespace").and_then(Value::as_str)
            {
                subject_namespaces.push(ns.to_string());
            }
        }
    }
    (0..resources.len())
        .filter(|j| {
            let id = resources[*j].cur_id();
            id.gvk.is_cluster_scoped()
                || id.same_namespace(&referrer)
                || subject_namespaces.iter().any(|ns| *ns == resources[*j].namespace())
        })
        .collect()
}

/// The referrer, and its id (taken before its object is borrowed out for rewriting).
type Referrer<'a> = (&'a Resource, &'a ResId);

fn rewrite(
    object: &mut Value,
    spec: &FieldSpec,
    target: (&str, &str, &str),
    resources: &[Resource],
    referrer: Referrer<'_>,
    candidates: &[usize],
) -> Result<(), String> {
    let role_ref = role_ref_gvk(object, spec);
    let spec = FieldSpec { group: String::new(), version: String::new(), kind: String::new(), ..spec.clone() };
    spec.apply(object, None, &mut |node| set(node, target, role_ref.as_ref(), referrer, resources, candidates))
}

/// For `roleRef/name`, the kind the roleRef names (a RoleBinding may refer to a Role or a
/// ClusterRole of the same name).
fn role_ref_gvk(object: &Value, spec: &FieldSpec) -> Option<Gvk> {
    if !spec.path.ends_with("roleRef/name") {
        return None;
    }
    let role_ref = object.get("roleRef")?;
    let group = role_ref.get("apiGroup")?.as_str()?;
    let kind = role_ref.get("kind")?.as_str()?;
    Some(Gvk { group: group.to_string(), version: String::new(), kind: kind.to_string() })
}

fn set(
    node: &mut Value,
    target: (&str, &str, &str),
    role_ref: Option<&Gvk>,
    referrer: Referrer<'_>,
    resources: &[Resource],
    candidates: &[usize],
) -> Result<(), String> {
    match node {
        Value::Null => Ok(()),
        Value::String(name) => {
            if let Some(new) = select(name, candidates.to_vec(), target, role_ref, referrer, resources, false)? {
                *name = resources[new].name().to_string();
            }
            Ok(())
        }
        Value::Object(map) => {
            let Some(old) = map.get("name").and_then(Value::as_str).map(str::to_string) else {
                return Err("a name reference here needs a `name` field".into());
            };
            let pool: Vec<usize> = match map.get("namespace").and_then(Value::as_str) {
                None => candidates.to_vec(),
                Some(ns) => {
                    let by_original: Vec<usize> =
                        candidates.iter().copied().filter(|j| resources[*j].org_id().effective_namespace() == ns).collect();
                    if by_original.is_empty() {
                        candidates.iter().copied().filter(|j| resources[*j].cur_id().effective_namespace() == ns).collect()
                    } else {
                        by_original
                    }
                }
            };
            let Some(new) = select(&old, pool, target, role_ref, referrer, resources, true)? else { return Ok(()) };
            let (new_name, new_ns) = (resources[new].name().to_string(), resources[new].namespace().to_string());
            if new_name == old && new_ns.is_empty() {
                return Ok(());
            }
            map.insert("name".into(), Value::String(new_name));
            if !new_ns.is_empty() {
                map.insert("namespace".into(), Value::String(new_ns));
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                if item.is_string() || item.is_object() {
                    set(item, target, role_ref, referrer, resources, candidates)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The one object `old` refers to, if any was renamed from it.
fn select(
    old: &str,
    mut pool: Vec<usize>,
    target: (&str, &str, &str),
    role_ref: Option<&Gvk>,
    (referrer, referrer_id): Referrer<'_>,
    resources: &[Resource],
    with_namespace: bool,
) -> Result<Option<usize>, String> {
    let (group, version, kind) = target;
    pool.retain(|j| {
        let r = &resources[*j];
        r.prev_ids.iter().any(|id| id.name == old)
            && r.prev_ids.iter().any(|id| id.gvk.is_selected_by(group, version, kind))
            && role_ref.is_none_or(|g| r.prev_ids.iter().any(|id| id.gvk.is_selected_by(&g.group, &g.version, &g.kind)))
            && (referrer_id.gvk.is_cluster_scoped() || {
                let cur = r.cur_id();
                cur.gvk.is_cluster_scoped() || cur.gvk.kind == "ServiceAccount" || referrer_id.same_namespace(&cur)
            })
    });
    if pool.len() > 1 {
        pool.retain(|j| resources[*j].prefixes_suffixes_equal(referrer, true));
        if pool.len() > 1 {
            pool.retain(|j| resources[*j].prefixes_suffixes_equal(referrer, false));
        }
    }
    match pool.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => {
            let first = &resources[many[0]];
            let same = many
                .iter()
                .all(|j| resources[*j].name() == first.name() && (!with_namespace || resources[*j].namespace() == first.namespace()));
            if same {
                Ok(Some(many[0]))
            } else {
                let ids: Vec<String> = many.iter().map(|j| resources[*j].cur_id().describe()).collect();
                Err(format!("{} refers to {old:?}, which could be any of {}", referrer_id.describe(), ids.join(", ")))
            }
        }
    }
}
