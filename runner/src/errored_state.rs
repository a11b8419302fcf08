//! The state an apply could not save. When terraform has changed resources and the backend
//! refuses the state (an outage, a full disk, a lost lock), terraform writes it to
//! `errored.tfstate` in its working directory, which the runner deletes with the workspace:
//! the record of what was created would be gone, and the next plan would create it again.
//!
//! So before the workspace goes, the runner saves that file to the backend itself, under the
//! state lock (terraform's own when it could not release it, else one of its own), retrying a
//! few times. It never replaces a state written since (another lineage, a serial as new or
//! newer): that one is as real as ours. When it cannot save it, the state is carried in the
//! run's result ([`RunResult::unsaved_state`](driftless_core::contract::RunResult)), and the
//! run's error says which of the two happened.

use std::path::Path;
use std::time::Duration;

use driftless_core::backend::rescue;
use driftless_core::backend::{StateKey, StateStore};
use driftless_core::contract::{RunResult, UnsavedState};

/// What terraform writes when it cannot save state to the backend after changing resources.
pub const ERRORED_STATE: &str = "errored.tfstate";

/// The waits between attempts to save it: about 15 s in all, within the time dispatchers
/// allow a runner past its deadline.
pub const RETRY_WAITS: [Duration; 4] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)];

/// The largest result a pod writes into its result Secret (a Secret holds at most 1 MiB).
pub const RESULT_SECRET_LIMIT: usize = 900 * 1024;

/// What became of an `errored.tfstate`.
#[derive(Debug, PartialEq, Eq)]
pub enum Rescue {
    /// Saved to the backend: nothing is lost.
    Saved,
    /// Not saved (`why`): the state travels in the run's result.
    Kept { state: UnsavedState, why: String },
}

impl Rescue {
    /// What the run's error says about it, naming the engine that ran (`terraform`, `tofu`).
    pub fn note(&self, engine: driftless_core::engine::Engine) -> String {
        match self {
            Rescue::Saved => {
                format!("{engine} could not save the state, so driftless saved it from {ERRORED_STATE}: nothing that was applied is lost")
            }
            Rescue::Kept { why, .. } => format!(
                "{engine} could not save the state and neither could driftless ({why}); the state is kept in the run's result \
                 (unsavedState), not in the backend: until it is stored there, resources exist that the backend's state does not record"
            ),
        }
    }
}

/// Saves `errored.tfstate` of `dir`, if there is one, waiting `waits` between attempts.
/// `held` is the lock terraform took and could not release (the state server still holds
/// it); without one, the rescue takes a lock of its own as `holder`.
pub async fn rescue<S: StateStore>(
    store: &S,
    key: &StateKey,
    dir: &Path,
    held: Option<String>,
    holder: &str,
    waits: &[Duration],
) -> Option<Rescue> {
    let bytes = std::fs::read(dir.join(ERRORED_STATE)).ok()?;
    let mut held = held;
    match rescue::save_retrying(store, key, &bytes, &mut held, holder, waits).await {
        Ok(()) => {
            tracing::warn!("terraform could not save the state of {key}; driftless saved it from {ERRORED_STATE}");
            Some(Rescue::Saved)
        }
        Err(why) => {
            tracing::error!("the state of {key} from {ERRORED_STATE} could not be saved: {why}; it is kept in the run's result");
            // Terraform's lock, if it still holds one, is the lock the state is later saved under.
            Some(Rescue::Kept { state: UnsavedState { state: String::from_utf8_lossy(&bytes).into_owned(), lock: held }, why })
        }
    }
}

/// The save-state run: saves a state an earlier run could not (`unsaved`), with the same
/// retries as the rescue, under the lock terraform left (released after: the terraform that
/// took it is gone) or one of its own. `Err` says why it is still not saved.
pub async fn save_kept<S: StateStore>(
    store: &S,
    key: &StateKey,
    unsaved: &UnsavedState,
    holder: &str,
    waits: &[Duration],
) -> Result<(), String> {
    let mut held = unsaved.lock.clone();
    rescue::save_retrying(store, key, unsaved.state.as_bytes(), &mut held, holder, waits).await?;
    if let Some(id) = held
        && let Err(e) = store.unlock(key, &id).await
    {
        tracing::warn!("the state of {key} is saved; its lock {id} could not be released: {e}");
    }
    tracing::warn!("the state of {key} an earlier run could not save is saved now");
    Ok(())
}

/// The `errored.tfstate` of `dir`, if there is one, kept for the result without trying the
/// backend (`why`).
pub fn keep(dir: &Path, why: &str) -> Option<Rescue> {
    let bytes = std::fs::read(dir.join(ERRORED_STATE)).ok()?;
    tracing::error!("terraform could not save the state and left {ERRORED_STATE}; {why}: it is kept in the run's result");
    Some(Rescue::Kept { state: UnsavedState { state: String::from_utf8_lossy(&bytes).into_owned(), lock: None }, why: why.to_string() })
}

/// `result` as it fits a result Secret of `limit` bytes: an unsaved state that makes it too
/// large is dropped, and the error says so (else the Secret write fails and the whole
/// result is lost, the error with it).
pub fn fit_for_secret(mut result: RunResult, limit: usize) -> RunResult {
    let size = serde_json::to_vec(&result).map(|b| b.len()).unwrap_or(usize::MAX);
    if size <= limit {
        return result;
    }
    // The log is for reading only: it goes first, then the readable plan (a copy for
    // reading: the plan itself is stored).
    if let Some(log) = result.log.take() {
        tracing::warn!("the run's log ({} bytes) is too large for the run's result; it is not stored this time", log.len());
        return fit_for_secret(result, limit);
    }
    if let Some(readable) = result.readable_plan.take() {
        tracing::warn!("the readable plan ({} bytes) is too large for the run's result; it is not stored this time", readable.len());
        return fit_for_secret(result, limit);
    }
    if let Some(state) = result.unsaved_state.take()
        && let Some(e) = result.error.as_mut()
    {
        e.message = format!(
            "{}; but the state ({} bytes) is too large for the run's result, so it is lost: import the resources it recorded",
            e.message,
            state.state.len()
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use driftless_core::backend::{BackendError, LocalBackend, LockInfo};
    use driftless_core::key::ObjectKey;

    fn state(lineage: &str, serial: u64, resources: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"version": 4, "serial": serial, "lineage": lineage, "outputs": {}, "resources": resources}))
            .unwrap()
    }

    /// A local backend whose first `failures` writes fail, as a backend that is down.
    #[derive(Clone)]
    struct Flaky {
        inner: LocalBackend,
        failures: std::sync::Arc<AtomicUsize>,
        locks: std::sync::Arc<Mutex<Vec<String>>>,
    }

    impl StateStore for Flaky {
        async fn get(&self, key: &StateKey) -> driftless_core::backend::Result<Option<Vec<u8>>> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> driftless_core::backend::Result<()> {
            if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(BackendError::Unreachable { endpoint: "test".into(), detail: "down".into() });
            }
            self.inner.put(key, state, lock_id).await
        }
        async fn delete(&self, key: &StateKey) -> driftless_core::backend::Result<()> {
            self.inner.delete(key).await
        }
        async fn lock(&self, key: &StateKey, info: &LockInfo) -> driftless_core::backend::Result<()> {
            self.locks.lock().unwrap().push(info.who.clone());
            self.inner.lock(key, info).await
        }
        async fn unlock(&self, key: &StateKey, id: &str) -> driftless_core::backend::Result<()> {
            self.inner.unlock(key, id).await
        }
        async fn lock_info(&self, key: &StateKey) -> driftless_core::backend::Result<Option<LockInfo>> {
            self.inner.lock_info(key).await
        }
        async fn force_unlock(&self, key: &StateKey) -> driftless_core::backend::Result<Option<LockInfo>> {
            self.inner.force_unlock(key).await
        }
    }

    fn setup(failures: usize) -> (tempfile::TempDir, Flaky, StateKey) {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky {
            inner: LocalBackend::new(dir.path().join("backend")),
            failures: std::sync::Arc::new(AtomicUsize::new(failures)),
            locks: Default::default(),
        };
        let key = StateKey {
            object: ObjectKey { kind: "Terraform".into(), namespace: "n".into(), name: "x".into() },
            state_name: "default".into(),
            secret_suffix: None,
        };
        (dir, store, key)
    }

    const WAITS: [Duration; 2] = [Duration::from_millis(1), Duration::from_millis(1)];

    #[tokio::test]
    async fn a_backend_that_comes_back_gets_the_errored_state_under_a_lock_of_the_runner() {
        let (dir, store, key) = setup(2);
        let errored = state("L", 1, serde_json::json!([{"name": "created"}]));
        std::fs::write(dir.path().join(ERRORED_STATE), &errored).unwrap();
        let rescued = rescue(&store, &key, dir.path(), None, "runner-1", &WAITS).await;
        assert_eq!(rescued, Some(Rescue::Saved));
        assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&errored[..]));
        assert_eq!(store.locks.lock().unwrap().as_slice(), ["runner-1", "runner-1", "runner-1"]);
        assert_eq!(store.lock_info(&key).await.unwrap(), None, "its lock is released");
        assert!(Rescue::Saved.note(driftless_core::engine::Engine::Terraform).contains("nothing that was applied is lost"));
    }

    #[tokio::test]
    async fn a_lock_terraform_could_not_release_is_written_under_and_left_to_its_owner() {
        let (dir, store, key) = setup(0);
        let held = LockInfo { id: "tf-lock".into(), who: "terraform".into(), ..Default::default() };
        store.inner.lock(&key, &held).await.unwrap();
        std::fs::write(dir.path().join(ERRORED_STATE), state("L", 1, serde_json::json!([]))).unwrap();
        let rescued = rescue(&store, &key, dir.path(), Some("tf-lock".into()), "runner-1", &WAITS).await;
        assert_eq!(rescued, Some(Rescue::Saved));
        assert!(store.locks.lock().unwrap().is_empty(), "no second lock taken");
        assert_eq!(store.lock_info(&key).await.unwrap().map(|l| l.id).as_deref(), Some("tf-lock"), "the state server releases it");
    }

    #[tokio::test]
    async fn a_backend_that_stays_down_leaves_the_state_in_the_result() {
        let (dir, store, key) = setup(usize::MAX);
        let errored = state("L", 1, serde_json::json!([{"name": "created"}]));
        std::fs::write(dir.path().join(ERRORED_STATE), &errored).unwrap();
        let Some(Rescue::Kept { state, why }) = rescue(&store, &key, dir.path(), None, "runner-1", &WAITS).await else { panic!() };
        assert_eq!(state.state.as_bytes(), &errored[..]);
        assert!(why.contains("down"), "{why}");
        assert_eq!(store.lock_info(&key).await.unwrap(), None, "no lock left behind");
        let note = Rescue::Kept { state, why }.note(driftless_core::engine::Engine::Tofu);
        assert!(note.starts_with("tofu could not save the state") && note.contains("kept in the run's result (unsavedState)"), "{note}");
    }

    #[tokio::test]
    async fn a_state_written_since_is_not_replaced_and_not_retried() {
        let (dir, store, key) = setup(0);
        let newer = state("L", 7, serde_json::json!([]));
        store.inner.put(&key, &newer, None).await.unwrap();
        std::fs::write(dir.path().join(ERRORED_STATE), state("L", 6, serde_json::json!([{"name": "created"}]))).unwrap();
        let Some(Rescue::Kept { why, .. }) = rescue(&store, &key, dir.path(), None, "runner-1", &WAITS).await else { panic!() };
        assert!(why.contains("written since (serial 7"), "{why}");
        assert_eq!(store.locks.lock().unwrap().len(), 1, "one attempt");
        assert_eq!(store.get(&key).await.unwrap(), Some(newer));
    }

    #[test]
    fn a_readable_plan_too_large_for_the_result_secret_goes_before_anything_else() {
        let mut r = RunResult::failed(driftless_core::contract::RunErrorKind::Backend, "x");
        r.readable_plan = Some("p".repeat(2000));
        assert_eq!(fit_for_secret(r.clone(), 4000), r);
        let fitted = fit_for_secret(r, 1000);
        assert_eq!(fitted.readable_plan, None);
        assert_eq!(fitted.error.map(|e| e.message).as_deref(), Some("x"), "the rest of the result is kept");
    }

    #[test]
    fn a_state_too_large_for_the_result_secret_is_dropped_and_said_so() {
        let mut r = RunResult::failed(driftless_core::contract::RunErrorKind::Backend, "state backend: down");
        r.unsaved_state = Some(UnsavedState { state: "x".repeat(2000), lock: None });
        let kept = fit_for_secret(r.clone(), 4000);
        assert_eq!(kept, r);
        let dropped = fit_for_secret(r, 1000);
        assert_eq!(dropped.unsaved_state, None);
        let message = dropped.error.map(|e| e.message).unwrap_or_default();
        assert!(message.starts_with("state backend: down; but the state (2000 bytes) is too large"), "{message}");
    }

    #[tokio::test]
    async fn without_an_errored_state_there_is_nothing_to_rescue() {
        let (dir, store, key) = setup(0);
        assert_eq!(rescue(&store, &key, dir.path(), None, "runner-1", &WAITS).await, None);
    }
}
