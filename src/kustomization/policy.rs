//! What Flux's per-object annotations ask of one object of the build, decided from the
//! object of the source and its live object alone: apply it (taking over what kubectl set, or
//! merging with it; recreating it on an immutable change, or not), or leave it alone.
//!
//! Flux's kustomize-controller reads these marks as selectors over labels and annotations,
//! with values compared case-insensitively; so does this module, so an object marked for Flux
//! behaves the same after the move:
//! - `kustomize.toolkit.fluxcd.io/reconcile: disabled` or `kustomize.toolkit.fluxcd.io/ssa:
//!   Ignore` on the source's object or on the live one: not applied (not even created);
//! - `ssa: IfNotPresent` on the source's object: created when absent, never updated;
//! - `ssa: Merge` on either: applied without taking over the fields kubectl set;
//! - `kustomize.toolkit.fluxcd.io/force: enabled` on either: recreated when the API refuses
//!   an immutable change, as `spec.force` does for every object.

use serde_json::Value;

use driftless_core::names::annotation::{FLUX_FORCE, FLUX_RECONCILE, FLUX_SSA};

/// Why an object of the build is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// `kustomize.toolkit.fluxcd.io/reconcile: disabled`.
    ReconcileDisabled,
    /// `kustomize.toolkit.fluxcd.io/ssa: Ignore`.
    Ignore,
    /// `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent`, and the object exists.
    IfNotPresent,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::ReconcileDisabled => write!(f, "{FLUX_RECONCILE}: disabled"),
            Skip::Ignore => write!(f, "{FLUX_SSA}: Ignore"),
            Skip::IfNotPresent => write!(f, "{FLUX_SSA}: IfNotPresent, and it exists"),
        }
    }
}

/// How to apply an object that is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mode {
    /// Recreate it when an immutable field changed.
    pub force: bool,
    /// `ssa: Merge`: leave the fields other managers (kubectl) set to them, instead of taking
    /// them over so that the source alone decides the object.
    pub merge: bool,
}

/// What to do with one object of the build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Apply(Mode),
    Skip(Skip),
}

/// Whether `object` carries `key: value` as a label or an annotation (the value compared
/// case-insensitively, as Flux does).
fn marked(object: &Value, key: &str, value: &str) -> bool {
    ["labels", "annotations"]
        .iter()
        .any(|place| object["metadata"][place][key].as_str().is_some_and(|v| !v.is_empty() && v.eq_ignore_ascii_case(value)))
}

/// What to do with `desired` (an object of the build) given its `live` object, if any;
/// `spec_force` is the Kustomization's `spec.force`.
pub fn policy(desired: &Value, live: Option<&Value>, spec_force: bool) -> Policy {
    let either = |key: &str, value: &str| marked(desired, key, value) || live.is_some_and(|l| marked(l, key, value));
    if either(FLUX_RECONCILE, "disabled") {
        return Policy::Skip(Skip::ReconcileDisabled);
    }
    if either(FLUX_SSA, "Ignore") {
        return Policy::Skip(Skip::Ignore);
    }
    if live.is_some() && marked(desired, FLUX_SSA, "IfNotPresent") {
        return Policy::Skip(Skip::IfNotPresent);
    }
    Policy::Apply(Mode { force: spec_force || either(FLUX_FORCE, "enabled"), merge: either(FLUX_SSA, "Merge") })
}

/// Whether a live object is marked to be left alone, so that pruning it would undo what its
/// owner asked for (Flux never deletes such an object either).
pub fn left_alone(
    labels: &std::collections::BTreeMap<String, String>,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<Skip> {
    let has = |key: &str, value: &str| {
        labels.get(key).into_iter().chain(annotations.and_then(|a| a.get(key))).any(|v| v.eq_ignore_ascii_case(value))
    };
    if has(FLUX_RECONCILE, "disabled") {
        Some(Skip::ReconcileDisabled)
    } else if has(FLUX_SSA, "Ignore") {
        Some(Skip::Ignore)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "annotations": annotations}})
    }

    const PLAIN: Policy = Policy::Apply(Mode { force: false, merge: false });

    #[test]
    fn an_unmarked_object_is_applied_taking_over_what_kubectl_set() {
        assert_eq!(policy(&object(json!({})), None, false), PLAIN);
        assert_eq!(policy(&object(json!({})), Some(&object(json!({}))), false), PLAIN);
        assert_eq!(policy(&object(json!({FLUX_SSA: "Override"})), Some(&object(json!({}))), false), PLAIN, "Override is the default");
        assert_eq!(policy(&object(json!({})), None, true), Policy::Apply(Mode { force: true, merge: false }), "spec.force");
    }

    #[test]
    fn reconcile_disabled_or_ignore_on_either_side_leaves_the_object_alone_even_when_absent() {
        let off = object(json!({FLUX_RECONCILE: "disabled"}));
        assert_eq!(policy(&off, None, false), Policy::Skip(Skip::ReconcileDisabled), "not even created");
        assert_eq!(policy(&object(json!({})), Some(&off), false), Policy::Skip(Skip::ReconcileDisabled), "marked on the cluster");
        let ignore = object(json!({FLUX_SSA: "ignore"}));
        assert_eq!(policy(&ignore, None, true), Policy::Skip(Skip::Ignore), "values are case-insensitive");
        assert_eq!(policy(&object(json!({})), Some(&ignore), false), Policy::Skip(Skip::Ignore));
        let label = json!({"metadata": {"name": "a", "labels": {FLUX_RECONCILE: "Disabled"}}});
        assert_eq!(policy(&label, None, false), Policy::Skip(Skip::ReconcileDisabled), "a label counts, as Flux's selectors");
    }

    #[test]
    fn if_not_present_creates_once_and_never_updates() {
        let once = object(json!({FLUX_SSA: "IfNotPresent"}));
        assert_eq!(policy(&once, None, false), PLAIN, "created when absent");
        assert_eq!(policy(&once, Some(&object(json!({}))), false), Policy::Skip(Skip::IfNotPresent));
        assert_eq!(policy(&object(json!({})), Some(&once), false), PLAIN, "only the source's object asks for it");
    }

    #[test]
    fn merge_and_force_come_from_either_side() {
        let merge = object(json!({FLUX_SSA: "Merge"}));
        assert_eq!(policy(&merge, None, false), Policy::Apply(Mode { force: false, merge: true }));
        assert_eq!(policy(&object(json!({})), Some(&merge), false), Policy::Apply(Mode { force: false, merge: true }));
        let force = object(json!({FLUX_FORCE: "enabled"}));
        assert_eq!(policy(&force, Some(&object(json!({}))), false), Policy::Apply(Mode { force: true, merge: false }));
        assert_eq!(policy(&object(json!({})), Some(&force), false), Policy::Apply(Mode { force: true, merge: false }));
        assert_eq!(policy(&object(json!({FLUX_FORCE: "disabled"})), None, false), PLAIN);
    }

    #[test]
    fn live_objects_marked_to_be_left_alone_are_named() {
        let map = |k: &str, v: &str| -> std::collections::BTreeMap<String, String> { [(k.to_string(), v.to_string())].into() };
        assert_eq!(left_alone(&Default::default(), Some(&map(FLUX_RECONCILE, "disabled"))), Some(Skip::ReconcileDisabled));
        assert_eq!(left_alone(&map(FLUX_SSA, "Ignore"), None), Some(Skip::Ignore));
        assert_eq!(left_alone(&Default::default(), Some(&map(FLUX_SSA, "IfNotPresent"))), None, "IfNotPresent objects are pruned");
        assert_eq!(left_alone(&Default::default(), None), None);
    }
}
