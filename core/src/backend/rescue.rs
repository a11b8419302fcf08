//! Saving a state that terraform could not save itself (its `errored.tfstate`), to the
//! backend it should have gone to. One rule for every writer of such a state (the runner
//! right after the apply, and the save-state run the controller starts later): it goes in
//! under the state lock and never replaces a state written since (another lineage, a serial
//! as new or newer), which is as real as ours.

use super::{BackendError, LockInfo, StateKey, StateStore};

/// Why a rescued state may not replace the backend's.
#[derive(Debug, PartialEq, Eq)]
pub enum Conflict {
    NotAState,
    Unreadable,
    OtherLineage { ours: String, theirs: String },
    WrittenSince { ours: u64, theirs: u64 },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::NotAState => write!(f, "the unsaved state is not a terraform state"),
            Conflict::Unreadable => write!(f, "the backend holds a state driftless cannot read, which it will not replace"),
            Conflict::OtherLineage { ours, theirs } => {
                write!(f, "the backend holds another state (lineage {theirs}, the unsaved state has {ours}), which it will not replace")
            }
            Conflict::WrittenSince { ours, theirs } => {
                write!(f, "the backend's state was written since (serial {theirs}, the unsaved state has {ours}); it is not replaced")
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Header {
    #[serde(default)]
    lineage: String,
    serial: u64,
    #[serde(default)]
    resources: serde_json::Value,
    #[serde(default)]
    outputs: serde_json::Value,
}

/// Whether the rescued state may be written over `current` (the backend's state, if any):
/// `Ok(true)` to write it, `Ok(false)` when the backend already holds it (same lineage and
/// serial, same resources and outputs), else why not.
pub fn may_replace(current: Option<&[u8]>, rescued: &[u8]) -> Result<bool, Conflict> {
    let ours: Header = serde_json::from_slice(rescued).map_err(|_| Conflict::NotAState)?;
    let Some(current) = current.filter(|c| !c.is_empty()) else { return Ok(true) };
    let theirs: Header = serde_json::from_slice(current).map_err(|_| Conflict::Unreadable)?;
    if ours.lineage != theirs.lineage {
        return Err(Conflict::OtherLineage { ours: ours.lineage, theirs: theirs.lineage });
    }
    if theirs.serial == ours.serial && theirs.resources == ours.resources && theirs.outputs == ours.outputs {
        return Ok(false);
    }
    if theirs.serial >= ours.serial {
        return Err(Conflict::WrittenSince { ours: ours.serial, theirs: theirs.serial });
    }
    Ok(true)
}

/// Why one attempt to save a rescued state failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SaveFailure {
    /// Worth another attempt (the backend may come back, a lock be released).
    Retry(String),
    /// Final: the backend holds a state that must not be replaced.
    Final(String),
}

impl std::fmt::Display for SaveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveFailure::Retry(why) | SaveFailure::Final(why) => f.write_str(why),
        }
    }
}

/// One attempt to save `bytes` as the state of `key`. `held` is a lock terraform took and
/// could not release: the state is written under it (and it is left to its owner); without
/// one, or when that lock turns out to be gone, the attempt takes a lock of its own as
/// `holder` and releases it after.
pub async fn save<S: StateStore>(
    store: &S,
    key: &StateKey,
    bytes: &[u8],
    held: &mut Option<String>,
    holder: &str,
) -> Result<(), SaveFailure> {
    let retry = |e: BackendError| SaveFailure::Retry(e.to_string());
    let (id, ours) = match held.clone() {
        Some(id) => (id, false),
        None => {
            let info = LockInfo {
                id: format!("driftless-unsaved-state-{}-{}", std::process::id(), jiff::Timestamp::now().as_nanosecond()),
                operation: "OperationTypeApply".into(),
                info: "driftless saves a state terraform could not save".into(),
                who: holder.to_string(),
                created: jiff::Timestamp::now().to_string(),
                ..Default::default()
            };
            store.lock(key, &info).await.map_err(retry)?;
            (info.id, true)
        }
    };
    let written = async {
        let current = store.get(key).await.map_err(retry)?;
        if may_replace(current.as_deref(), bytes).map_err(|c| SaveFailure::Final(c.to_string()))? {
            store.put(key, bytes, Some(&id)).await.map_err(|e| {
                if matches!(e, BackendError::LockMismatch { .. }) {
                    // Terraform's lock is gone after all: take one of our own next time.
                    *held = None;
                }
                retry(e)
            })?;
            store.flush().await.map_err(retry)?;
        }
        Ok(())
    }
    .await;
    if ours && let Err(e) = store.unlock(key, &id).await {
        tracing::warn!("could not release lock {id} of {key}: {e}");
    }
    written
}

/// [`save`], tried again after each of `waits` while it fails in a way worth another try
/// (the backend may come back); `Err` says why the state is still not saved. `held` is left
/// naming the lock the state is (or would be) under.
pub async fn save_retrying<S: StateStore>(
    store: &S,
    key: &StateKey,
    bytes: &[u8],
    held: &mut Option<String>,
    holder: &str,
    waits: &[std::time::Duration],
) -> Result<(), String> {
    let mut why = String::new();
    for wait in std::iter::once(&std::time::Duration::ZERO).chain(waits) {
        tokio::time::sleep(*wait).await;
        match save(store, key, bytes, held, holder).await {
            Ok(()) => return Ok(()),
            Err(SaveFailure::Final(reason)) => return Err(reason),
            Err(SaveFailure::Retry(reason)) => why = reason,
        }
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(lineage: &str, serial: u64, resources: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"version": 4, "serial": serial, "lineage": lineage, "outputs": {}, "resources": resources}))
            .unwrap_or_default()
    }

    #[test]
    fn a_rescued_state_replaces_only_an_older_state_of_its_lineage() {
        let ours = state("L", 6, serde_json::json!([{"name": "a"}]));
        assert_eq!(may_replace(None, &ours), Ok(true));
        assert_eq!(may_replace(Some(b""), &ours), Ok(true));
        assert_eq!(may_replace(Some(&state("L", 5, serde_json::json!([]))), &ours), Ok(true));
        assert_eq!(may_replace(Some(&ours), &ours), Ok(false), "already there");
        assert_eq!(may_replace(Some(&state("L", 6, serde_json::json!([]))), &ours), Err(Conflict::WrittenSince { ours: 6, theirs: 6 }));
        assert_eq!(may_replace(Some(&state("L", 9, serde_json::json!([]))), &ours), Err(Conflict::WrittenSince { ours: 6, theirs: 9 }));
        assert_eq!(
            may_replace(Some(&state("M", 1, serde_json::json!([]))), &ours),
            Err(Conflict::OtherLineage { ours: "L".into(), theirs: "M".into() })
        );
        assert_eq!(may_replace(Some(b"{"), &ours), Err(Conflict::Unreadable));
        assert_eq!(may_replace(None, b"not json"), Err(Conflict::NotAState));
    }
}
