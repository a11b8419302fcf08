//! Fixtures of the backend tests: object and state keys, lock infos, plan metas.

use driftless::backend::{LockInfo, PlanMeta, StateKey, sha256_digest};
use driftless::dispatch::ObjectKey;

pub fn object(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: "Terraform".into(), namespace: namespace.into(), name: name.into() }
}

pub fn state_key(namespace: &str, name: &str) -> StateKey {
    StateKey { object: object(namespace, name), state_name: "default".into(), secret_suffix: None }
}

/// The lock a runner `id` takes for an apply.
pub fn lock_info(id: &str) -> LockInfo {
    LockInfo {
        id: id.into(),
        operation: "OperationTypeApply".into(),
        who: format!("runner-{id}"),
        created: jiff::Timestamp::now().to_string(),
        ..Default::default()
    }
}

/// The meta of plan `id` with these bytes, and a rendering naming it.
pub fn plan_meta(id: &str, plan: &[u8]) -> PlanMeta {
    PlanMeta {
        id: id.into(),
        digest: sha256_digest(plan),
        created_at: jiff::Timestamp::now().to_string(),
        source_revision: "main@sha1:abc".into(),
        rendering: format!("rendering of {id}"),
        state_address: None,
        engine: None,
    }
}
