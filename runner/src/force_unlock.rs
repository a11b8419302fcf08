//! tofu-controller's `tfstate.forceUnlock`, applied before terraform starts: the run breaks
//! the state lock its policy names ([`ForceUnlock::breaks`]) on the store the state server
//! would serve, so terraform then takes the lock as usual.

use driftless_core::backend::{BackendError, LockInfo, StateKey, StateStore};
use driftless_core::contract::{ForceUnlock, RunSpec};

/// Breaks the lock `spec`'s policy names, if one is held; returns the broken lock. A
/// module's own backend (`custom_backend`) is left alone: its locks are not driftless's.
pub async fn apply<S: StateStore>(store: &S, spec: &RunSpec) -> Result<Option<LockInfo>, BackendError> {
    let policy = &spec.options.force_unlock;
    // A speculative plan never breaks a lock: it reads the state without one.
    if policy.is_never() || spec.custom_backend.is_some() || spec.operation == driftless_core::contract::Operation::SpeculativePlan {
        return Ok(None);
    }
    let key = StateKey { object: spec.object.clone(), state_name: spec.state_name.clone(), secret_suffix: spec.state_suffix.clone() };
    break_lock(store, &key, policy).await
}

/// Breaks the lock of `key` that `policy` names, if one is held; returns the broken lock.
pub async fn break_lock<S: StateStore>(store: &S, key: &StateKey, policy: &ForceUnlock) -> Result<Option<LockInfo>, BackendError> {
    let held = store.lock_info(key).await?;
    let Some(target) = policy.breaks(held.as_ref()).cloned() else { return Ok(None) };
    match policy {
        // Released only while it is still that lock: a lock taken meanwhile by someone
        // else is not the one the user named.
        ForceUnlock::Id(id) => match store.unlock(key, id).await {
            Ok(()) => {}
            // Another lock meanwhile: kept, and the run reports it as StateLocked.
            Err(BackendError::Locked { .. } | BackendError::LockMismatch { .. }) => return Ok(None),
            Err(e) => return Err(e),
        },
        _ => {
            store.force_unlock(key).await?;
        }
    }
    tracing::warn!(lock = %target.id, holder = %target.who, "state lock of {key} broken (spec.tfstate.forceUnlock)");
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftless_core::backend::LocalBackend;
    use driftless_core::contract::ObjectKey;

    fn held(id: &str) -> LockInfo {
        LockInfo { id: id.into(), who: "crashed-runner".into(), operation: "OperationTypeApply".into(), ..Default::default() }
    }

    #[tokio::test]
    async fn only_the_named_lock_is_broken_and_any_under_auto() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalBackend::new(dir.path());
        let key = StateKey {
            object: ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "app".into() },
            state_name: "default".into(),
            secret_suffix: None,
        };
        assert_eq!(break_lock(&store, &key, &ForceUnlock::Any).await.expect("nothing held"), None);
        store.lock(&key, &held("lock-a")).await.expect("lock");
        assert_eq!(break_lock(&store, &key, &ForceUnlock::Never).await.expect("no"), None);
        assert_eq!(break_lock(&store, &key, &ForceUnlock::Id("lock-b".into())).await.expect("another id"), None);
        assert_eq!(store.lock_info(&key).await.expect("read").map(|l| l.id), Some("lock-a".into()), "kept");
        let broken = break_lock(&store, &key, &ForceUnlock::Id("lock-a".into())).await.expect("yes");
        assert_eq!(broken.map(|l| l.id), Some("lock-a".into()));
        assert_eq!(store.lock_info(&key).await.expect("read"), None);
        store.lock(&key, &held("lock-c")).await.expect("lock");
        assert_eq!(break_lock(&store, &key, &ForceUnlock::Any).await.expect("auto").map(|l| l.who), Some("crashed-runner".into()));
        assert_eq!(store.lock_info(&key).await.expect("read"), None);
    }
}
