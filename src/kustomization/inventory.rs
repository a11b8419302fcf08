//! The inventory of a Kustomization: which objects it applied, as Flux records them
//! (`<namespace>_<name>_<group>_<kind>` plus the version), and which of them left the
//! source. Pure functions: the prune set is decided here, not while deleting.

use serde_json::Value;

use crate::api::ResourceRef;

/// One object's identity, whatever its version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    /// The identity of a manifest; `None` when it lacks apiVersion, kind or name.
    pub fn of(object: &Value) -> Option<(Self, String)> {
        let api_version = object["apiVersion"].as_str()?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        Some((
            ObjectId {
                group: group.to_string(),
                kind: object["kind"].as_str()?.to_string(),
                namespace: object["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                name: object["metadata"]["name"].as_str()?.to_string(),
            },
            version.to_string(),
        ))
    }

    pub fn to_ref(&self, version: &str) -> ResourceRef {
        ResourceRef { id: format!("{}_{}_{}_{}", self.namespace, self.name, self.group, self.kind), v: version.to_string() }
    }

    /// Reads an inventory entry back (names and namespaces hold no `_`; groups and kinds neither).
    pub fn parse(entry: &ResourceRef) -> Option<Self> {
        let mut parts = entry.id.splitn(4, '_');
        let namespace = parts.next()?.to_string();
        let name = parts.next()?.to_string();
        let group = parts.next()?.to_string();
        let kind = parts.next()?.to_string();
        (!name.is_empty() && !kind.is_empty()).then_some(ObjectId { group, kind, namespace, name })
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{version}", self.group) }
    }

    /// `Kind namespace/name` for messages.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Entries of `old` whose object is not in `new` (any version): the prune candidates.
pub fn stale(old: &[ResourceRef], new: &[ResourceRef]) -> Vec<ResourceRef> {
    let keep: std::collections::BTreeSet<&str> = new.iter().map(|r| r.id.as_str()).collect();
    let mut out: Vec<ResourceRef> = old.iter().filter(|r| !keep.contains(r.id.as_str())).cloned().collect();
    // Delete in reverse apply order: custom resources before their CRDs, objects before
    // their namespaces.
    out.sort_by_key(|r| std::cmp::Reverse(stage_of_kind(ObjectId::parse(r).map(|o| o.kind).as_deref().unwrap_or(""))));
    out
}

/// Why an object of the prune set is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// It does not carry this Kustomization's labels: another owner applied it.
    NotOurs,
    /// Its owner asked for it to stay (`driftless.dev/prune: disabled`, or Flux's
    /// `kustomize.toolkit.fluxcd.io/prune: disabled`).
    Disabled,
    /// It is marked to be left alone altogether (Flux's `reconcile: disabled` or `ssa:
    /// Ignore`), which Flux never prunes either.
    LeftAlone(super::policy::Skip),
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::NotOurs => f.write_str("not applied by this Kustomization"),
            Kept::Disabled => write!(f, "{}: disabled", driftless_core::names::annotation::PRUNE),
            Kept::LeftAlone(why) => write!(f, "{why}"),
        }
    }
}

/// Whether a live object, by its labels and annotations, may be pruned by the Kustomization
/// `owner` (namespace, name): only what it applied itself, and never what is marked to stay.
pub fn may_prune(
    labels: &std::collections::BTreeMap<String, String>,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    owner: (&str, &str),
) -> Result<(), Kept> {
    use driftless_core::names::{annotation, label};
    let ours = labels.get(label::KUSTOMIZATION_NAME).map(String::as_str) == Some(owner.1)
        && labels.get(label::KUSTOMIZATION_NAMESPACE).map(String::as_str) == Some(owner.0);
    if !ours {
        return Err(Kept::NotOurs);
    }
    let disabled = |key: &str| annotations.and_then(|a| a.get(key)).is_some_and(|v| v.eq_ignore_ascii_case("disabled"));
    if disabled(annotation::PRUNE) || disabled(annotation::FLUX_PRUNE) {
        return Err(Kept::Disabled);
    }
    if let Some(why) = super::policy::left_alone(labels, annotations) {
        return Err(Kept::LeftAlone(why));
    }
    Ok(())
}

/// What deleting a Kustomization does to the objects of its inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeletion {
    /// Nothing: they stay (with this Kustomization's labels, as Flux leaves them).
    Keep,
    /// Delete them (those [`may_prune`] allows) and let the Kustomization go.
    Delete,
    /// Delete them and keep the Kustomization until they are gone, up to its timeout.
    DeleteAndWait,
}

/// What deleting a Kustomization with `policy` (and `prune`) does, as Flux's: `MirrorPrune`
/// follows `prune`, `Delete` and `WaitForTermination` delete whatever `prune` says, `Orphan`
/// keeps; a suspended Kustomization deletes nothing (suspending is how to let go of one
/// without touching what it applied).
pub fn on_deletion(policy: crate::api::DeletionPolicy, prune: bool, suspended: bool) -> OnDeletion {
    use crate::api::DeletionPolicy;
    match policy {
        _ if suspended => OnDeletion::Keep,
        DeletionPolicy::MirrorPrune if prune => OnDeletion::Delete,
        DeletionPolicy::MirrorPrune | DeletionPolicy::Orphan => OnDeletion::Keep,
        DeletionPolicy::Delete => OnDeletion::Delete,
        DeletionPolicy::WaitForTermination => OnDeletion::DeleteAndWait,
    }
}

/// Apply stage of a kind: cluster definitions first (CRDs, Namespaces), then the rest.
pub fn stage_of_kind(kind: &str) -> u8 {
    match kind {
        "CustomResourceDefinition" | "Namespace" => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_namespaced_and_cluster_objects() {
        let deployment =
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"}});
        let (id, v) = ObjectId::of(&deployment).expect("id");
        let r = id.to_ref(&v);
        assert_eq!(r.id, "prod_web_apps_Deployment");
        assert_eq!(r.v, "v1");
        assert_eq!(ObjectId::parse(&r), Some(id));
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        let (id, _) = ObjectId::of(&ns).expect("id");
        assert_eq!(id.to_ref("v1").id, "_prod__Namespace");
        assert_eq!(ObjectId::parse(&id.to_ref("v1")), Some(id));
    }

    #[test]
    fn only_objects_this_kustomization_applied_are_pruned_and_never_those_marked_to_stay() {
        use driftless_core::names::{annotation, label};
        let labels = |ns: &str, name: &str| -> std::collections::BTreeMap<String, String> {
            [(label::KUSTOMIZATION_NAMESPACE.to_string(), ns.to_string()), (label::KUSTOMIZATION_NAME.to_string(), name.to_string())].into()
        };
        assert_eq!(may_prune(&labels("team", "apps"), None, ("team", "apps")), Ok(()));
        assert_eq!(may_prune(&labels("team", "other"), None, ("team", "apps")), Err(Kept::NotOurs));
        assert_eq!(may_prune(&labels("other", "apps"), None, ("team", "apps")), Err(Kept::NotOurs), "same name, other namespace");
        assert_eq!(may_prune(&Default::default(), None, ("team", "apps")), Err(Kept::NotOurs));
        let stay = [(annotation::PRUNE.to_string(), "disabled".to_string())].into();
        assert_eq!(may_prune(&labels("team", "apps"), Some(&stay), ("team", "apps")), Err(Kept::Disabled));
        let flux_stay: std::collections::BTreeMap<String, String> =
            [(driftless_core::names::annotation::FLUX_PRUNE.to_string(), "disabled".to_string())].into();
        assert_eq!(may_prune(&labels("team", "apps"), Some(&flux_stay), ("team", "apps")), Err(Kept::Disabled), "Flux's annotation too");
        let ignored: std::collections::BTreeMap<String, String> = [(annotation::FLUX_SSA.to_string(), "Ignore".to_string())].into();
        assert_eq!(
            may_prune(&labels("team", "apps"), Some(&ignored), ("team", "apps")),
            Err(Kept::LeftAlone(super::super::policy::Skip::Ignore)),
            "what Flux leaves alone is never pruned"
        );
    }

    #[test]
    fn deletion_follows_prune_unless_the_policy_says_otherwise_and_a_suspended_one_deletes_nothing() {
        use crate::api::DeletionPolicy::*;
        assert_eq!(on_deletion(MirrorPrune, true, false), OnDeletion::Delete);
        assert_eq!(on_deletion(MirrorPrune, false, false), OnDeletion::Keep);
        assert_eq!(on_deletion(Delete, false, false), OnDeletion::Delete, "even without prune");
        assert_eq!(on_deletion(WaitForTermination, false, false), OnDeletion::DeleteAndWait);
        assert_eq!(on_deletion(Orphan, true, false), OnDeletion::Keep, "even with prune");
        for policy in [MirrorPrune, Delete, WaitForTermination, Orphan] {
            assert_eq!(on_deletion(policy, true, true), OnDeletion::Keep, "{policy:?} suspended");
        }
    }

    #[test]
    fn stale_entries_are_those_gone_from_the_source_deleted_before_their_namespace() {
        let r = |id: &str| ResourceRef { id: id.into(), v: "v1".into() };
        let old = vec![r("_team__Namespace"), r("team_a__ConfigMap"), r("team_b__ConfigMap")];
        let new = vec![r("team_a__ConfigMap")];
        let stale = stale(&old, &new);
        assert_eq!(stale, vec![r("team_b__ConfigMap"), r("_team__Namespace")]);
        assert!(super::stale(&old, &old).is_empty());
    }
}
