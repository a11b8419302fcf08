//! Plan, drift and content identities. Pure functions: the same inputs always give the same id, so
//! a re-plan with nothing changed keeps an approval valid, and one drift keeps one id.

use sha2::{Digest, Sha256};

use crate::drift::DriftObject;

/// `plan-<revision short>-<10 hex of sha256(inputs [+ drift])>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(String);

impl PlanId {
    /// `drift_id` is set for a corrective plan: correcting a drift is a different decision
    /// from rolling out the revision, so it must not ride on an earlier approval.
    pub fn new(source_revision: &str, inputs_digest: &str, drift_id: Option<&str>) -> Self {
        let mut h = Sha256::new();
        h.update(inputs_digest.as_bytes());
        if let Some(d) = drift_id {
            h.update(b"\0drift\0");
            h.update(d.as_bytes());
        }
        let hash = hex::encode(h.finalize());
        Self(format!("plan-{}-{}", revision_short(source_revision), &hash[..10]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PlanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first 7 hex of the commit (or content digest) a revision names.
pub fn revision_short(revision: &str) -> String {
    let hex = revision.rsplit(':').next().unwrap_or(revision);
    hex.chars().filter(char::is_ascii_alphanumeric).take(7).collect()
}

/// `sha256:<hex>` of bytes: the one digest format of artifacts, plans and builds.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A drift's identity: a digest of its sorted entries.
pub fn drift_id(objects: &[DriftObject]) -> String {
    let mut sorted: Vec<&DriftObject> = objects.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for o in sorted {
        let mut fields = o.fields.clone();
        fields.sort();
        h.update(format!("{}\0{}\0{}\0{}\n", o.kind, o.name, o.action, fields.join(",")).as_bytes());
    }
    format!("drift-{}", &hex::encode(h.finalize())[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, fields: &[&str]) -> DriftObject {
        DriftObject {
            kind: "drifttest_file".into(),
            name: name.into(),
            action: "update".into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn same_inputs_give_the_same_plan_id() {
        let a = PlanId::new("main@sha1:0123456789abcdef", "sha256:aa", None);
        let b = PlanId::new("main@sha1:0123456789abcdef", "sha256:aa", None);
        assert_eq!(a, b);
        assert!(a.as_str().starts_with("plan-0123456-"), "{a}");
        assert_eq!(a.as_str().len(), "plan-0123456-".len() + 10);
    }

    #[test]
    fn changed_inputs_or_drift_give_a_new_plan_id() {
        let base = PlanId::new("main@sha1:0123456789abcdef", "sha256:aa", None);
        assert_ne!(base, PlanId::new("main@sha1:0123456789abcdef", "sha256:ab", None));
        assert_ne!(base, PlanId::new("main@sha1:0123456789abcdef", "sha256:aa", Some("drift-1")));
        assert_ne!(base, PlanId::new("main@sha1:1123456789abcdef", "sha256:aa", None));
    }

    #[test]
    fn drift_id_ignores_entry_order_but_not_content() {
        let a = drift_id(&[obj("a", &["x", "y"]), obj("b", &["z"])]);
        let b = drift_id(&[obj("b", &["z"]), obj("a", &["y", "x"])]);
        assert_eq!(a, b);
        assert_ne!(a, drift_id(&[obj("a", &["x"]), obj("b", &["z"])]));
    }
}
