//! Whose fields driftless takes over on an applied object, decided over its managedFields
//! alone (the cluster calls are in [`super::apply`]).
//!
//! - Flux's kustomize-controller, whose objects a migrated Kustomization applies: its entries
//!   are dropped after driftless's first apply, so driftless alone owns what the source sets.
//! - kubectl (`kubectl edit`, `kubectl apply`, `kubectl patch`...), as Flux's default `ssa:
//!   Override` does: before an apply, kubectl's entries are merged into driftless's own, so
//!   that the apply removes what kubectl added and the source alone decides the object. An
//!   object marked `ssa: Merge` keeps them: what kubectl set stays kubectl's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::Value;

/// Field managers whose ownership driftless takes over: Flux's kustomize-controller, whose
/// objects a migrated Kustomization applies.
const ADOPTED_MANAGERS: &[&str] = &["kustomize-controller"];

/// Managers (name prefix, operation) whose fields an `ssa: Override` apply takes over, as
/// Flux's: kubectl's server-side and client-side applies and edits, and what kubectl's
/// client-side apply recorded before its first apply.
const OVERRIDDEN_MANAGERS: &[(&str, &str)] = &[("kubectl", "Apply"), ("kubectl", "Update"), ("before-first-apply", "Update")];

/// kubectl's client-side apply record, removed with kubectl's ownership (a later `kubectl
/// apply` would otherwise compute its patch from a configuration no longer in force).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The managedFields to keep when some entries belong to [`ADOPTED_MANAGERS`]; `None` when
/// there is nothing to take over (or nothing would be left: an empty list would reset them).
pub fn adopted_managed_fields(entries: &Option<Vec<ManagedFieldsEntry>>) -> Option<Vec<ManagedFieldsEntry>> {
    let entries = entries.as_ref()?;
    let adopted = |e: &ManagedFieldsEntry| e.manager.as_deref().is_some_and(|m| ADOPTED_MANAGERS.contains(&m));
    if !entries.iter().any(adopted) {
        return None;
    }
    let kept: Vec<ManagedFieldsEntry> = entries.iter().filter(|e| !adopted(e)).cloned().collect();
    (!kept.is_empty()).then_some(kept)
}

fn overridden(e: &ManagedFieldsEntry) -> bool {
    e.subresource.as_deref().is_none_or(str::is_empty)
        && OVERRIDDEN_MANAGERS.iter().any(|(prefix, operation)| {
            e.manager.as_deref().is_some_and(|m| m.starts_with(prefix)) && e.operation.as_deref() == Some(*operation)
        })
}

/// The managedFields before an `ssa: Override` apply by `owner`: the entries of
/// [`OVERRIDDEN_MANAGERS`] merged into `owner`'s Apply entry (the first of them becomes it
/// when `owner` has none yet), the others as they are; `None` when no entry is kubectl's.
pub fn overridden_managed_fields(entries: &Option<Vec<ManagedFieldsEntry>>, owner: &str) -> Option<Vec<ManagedFieldsEntry>> {
    let entries = entries.as_ref()?;
    if !entries.iter().any(overridden) {
        return None;
    }
    let is_owner = |e: &ManagedFieldsEntry| e.manager.as_deref() == Some(owner) && e.operation.as_deref() == Some("Apply");
    let mut merged: Option<ManagedFieldsEntry> = entries.iter().find(|e| is_owner(e)).cloned();
    let mut kept = Vec::with_capacity(entries.len());
    for entry in entries {
        if is_owner(entry) {
            continue;
        }
        if !overridden(entry) {
            kept.push(entry.clone());
            continue;
        }
        match merged.as_mut() {
            Some(into) => {
                let mut fields = into.fields_v1.take().map(|f| f.0).unwrap_or_else(|| Value::Object(Default::default()));
                if let Some(more) = &entry.fields_v1 {
                    union(&mut fields, &more.0);
                }
                into.fields_v1 = Some(FieldsV1(fields));
            }
            None => {
                let mut renamed = entry.clone();
                renamed.manager = Some(owner.to_string());
                renamed.operation = Some("Apply".into());
                merged = Some(renamed);
            }
        }
    }
    kept.extend(merged);
    Some(kept)
}

/// Adds the fields of `more` to the field set `into` (both in the fieldsV1 trie format).
fn union(into: &mut Value, more: &Value) {
    match (into, more) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in b {
                match a.get_mut(key) {
                    Some(existing) => union(existing, value),
                    None => {
                        a.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (into, more) if into.is_null() => *into = more.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry { manager: Some(manager.into()), operation: Some("Apply".into()), ..Default::default() }
    }

    fn with(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn only_flux_entries_are_dropped_and_only_when_something_is_left() {
        let managers = |v: Option<Vec<ManagedFieldsEntry>>| v.map(|v| v.into_iter().filter_map(|e| e.manager).collect::<Vec<_>>());
        let both = Some(vec![entry("kustomize-controller"), entry("driftless"), entry("kube-controller-manager")]);
        assert_eq!(managers(adopted_managed_fields(&both)), Some(vec!["driftless".to_string(), "kube-controller-manager".into()]));
        assert_eq!(adopted_managed_fields(&Some(vec![entry("driftless"), entry("kubectl")])), None, "nothing of Flux's");
        assert_eq!(adopted_managed_fields(&Some(vec![entry("kustomize-controller")])), None, "an empty list would reset them");
        assert_eq!(adopted_managed_fields(&None), None);
    }

    #[test]
    fn kubectl_fields_join_the_owners_entry_and_others_stay_theirs() {
        let entries = Some(vec![
            with("driftless", "Apply", json!({"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})),
            with("kubectl-edit", "Update", json!({"f:data": {"f:extra": {}}})),
            with("kubectl-client-side-apply", "Update", json!({"f:metadata": {"f:labels": {"f:b": {}}}})),
            with("kube-controller-manager", "Update", json!({"f:data": {"f:ctrl": {}}})),
            ManagedFieldsEntry { subresource: Some("status".into()), ..with("kubectl-edit", "Update", json!({"f:status": {}})) },
        ]);
        let after = overridden_managed_fields(&entries, "driftless").expect("kubectl's entries are taken over");
        let managers: Vec<&str> = after.iter().filter_map(|e| e.manager.as_deref()).collect();
        assert_eq!(
            managers,
            vec!["kube-controller-manager", "kubectl-edit", "driftless"],
            "a status entry is not kubectl's edit of the object"
        );
        assert_eq!(
            after[2].fields_v1.as_ref().map(|f| &f.0),
            Some(&json!({"f:data": {"f:key": {}, "f:extra": {}}, "f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}}))
        );
        assert_eq!(after[2].operation.as_deref(), Some("Apply"));
    }

    #[test]
    fn without_an_owner_entry_the_first_kubectl_entry_becomes_it_and_nothing_to_take_is_none() {
        let entries = Some(vec![
            with("kubectl", "Apply", json!({"f:data": {"f:a": {}}})),
            with("before-first-apply", "Update", json!({"f:data": {"f:b": {}}})),
        ]);
        let after = overridden_managed_fields(&entries, "driftless").expect("taken over");
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].manager.as_deref(), after[0].operation.as_deref()), (Some("driftless"), Some("Apply")));
        assert_eq!(after[0].fields_v1.as_ref().map(|f| &f.0), Some(&json!({"f:data": {"f:a": {}, "f:b": {}}})));
        let theirs = Some(vec![with("driftless", "Apply", json!({})), with("helm", "Update", json!({}))]);
        assert_eq!(overridden_managed_fields(&theirs, "driftless"), None, "nothing of kubectl's");
        assert_eq!(overridden_managed_fields(&Some(vec![with("kubectl", "Apply", json!({}))]), "driftless").map(|v| v.len()), Some(1));
        assert_eq!(overridden_managed_fields(&None, "driftless"), None);
    }
}
