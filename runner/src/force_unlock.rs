//! tofu-controller's `tfstate.forceUnlock`, applied before terraform starts: the run breaks
//! the state lock its policy names ([`ForceUnlock::breaks`]) on the store the state server
//! would serve, so terraform then takes the lock as usual.

use driftless_core::backend::{BackendError, LockInfo, StateKey, StateStore};
use driftless_core::contract::{ForceUnlock, RunSpec};

/// Breaks the lock `spec`'s policy names, if one is held; returns the broken lock. A
/// module's own backend (`custom_backend`) is left alone: its locks are not driftless's.
pub async fn apply<S: StateStore>(store: &S, spec: &RunSpec) -> Result<Option<LockInfo>, BackendError> {
    let policy = &spec.options.force_unlock;
    if policy.is_never() || spec.custom_backend.is_some() {
        return Ok(None);
    }
    let key = StateKey { object: spec.object.clone(), state_name: spec.state_name.clone(), secret_suffix: spec.state_suffix.clone() };
    let held = store.lock_info(&key).await?;
    let Some(target) = policy.breaks(held.as_ref()).cloned() else { return Ok(None) };
    match policy {
        // Released only while it is still that lock: a lock taken meanwhile by someone
        // else is not the one the user named.
        ForceUnlock::Id(id) => store.unlock(&key, id).await?,
        _ => {
            store.force_unlock(&key).await?;
        }
    }
    tracing::warn!(lock = %target.id, holder = %target.who, "state lock of {key} broken (spec.tfstate.forceUnlock)");
    Ok(Some(target))
}
