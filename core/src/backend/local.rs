//! Files on the local disk: the backend of `driftless --store DIR`.
//!
//! # Guarantees
//! - A state write is atomic (temp file + rename) and the previous state is kept as
//!   `.backup`.
//! - A lock is one file, created whole and at once (written to a temp file, then hard-linked
//!   into place, which fails when the name exists), so two runners on one machine cannot both
//!   hold it and a reader never sees half a lock.
//! - A lock taken with a lifetime ([`LocalBackend::with_lock_ttl`], what runners use) carries
//!   its expiry; past it, its runner is known dead and the next `lock` takes it over (of
//!   racing takers one wins: the expired file is renamed away, which only one rename does).
//! - A lock file that cannot be read (a crash of an older version mid-write) counts as a held
//!   lock with an unknown holder, so `driftless unlock` shows and breaks it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{BackendError, LockInfo, PlanMeta, PlanStore, Result, StateKey, StateStore};
use crate::key::ObjectKey;

#[derive(Clone, Debug)]
pub struct LocalBackend {
    root: PathBuf,
    /// How long locks taken here count; `None`: until released or broken.
    lock_ttl: Option<std::time::Duration>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io { path: path.display().to_string(), source }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Atomic replace: readers see the old or the new file, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), lock_ttl: None }
    }

    /// Locks taken through this backend expire after `ttl` (the runner's deadline plus a
    /// margin), so a runner killed holding one does not block the state for good.
    pub fn with_lock_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lock_ttl = Some(ttl);
        self
    }

    fn object_dir(&self, area: &str, object: &ObjectKey) -> PathBuf {
        self.root.join(area).join(&object.kind).join(&object.namespace).join(&object.name)
    }

    fn state_path(&self, key: &StateKey, ext: &str) -> PathBuf {
        self.object_dir("state", &key.object).join(format!("{}.{ext}", key.state_name))
    }

    fn read_lock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        let path = self.state_path(key, "lock");
        Ok(read_optional(&path)?.map(|bytes| parse_lock(&bytes)))
    }

    /// Creates the lock file whole, or fails with `AlreadyExists`.
    fn create_lock(&self, path: &Path, body: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(body)?;
        tmp.as_file().sync_all()?;
        std::fs::hard_link(tmp.path(), path)
    }

    /// Moves an expired lock (`held`) out of the way; false when another taker was first.
    fn take_over(&self, key: &StateKey, held: &LockInfo) -> Result<bool> {
        let path = self.state_path(key, "lock");
        let aside = path.with_extension(format!("lock.expired-{}", std::process::id()));
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&path)(e)),
        }
        let moved = read_optional(&aside)?.map(|b| parse_lock(&b));
        if moved.as_ref().map(|m| &m.id) != Some(&held.id) {
            // Another taker replaced the expired lock between our read and our rename: put
            // its live lock back (unless a third one is there already) and let it win.
            let _ = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
            return Ok(false);
        }
        tracing::warn!(
            "state lock {} of {key} held by {} expired at {}; taking it over",
            held.id,
            held.who,
            held.expires.as_deref().unwrap_or("?")
        );
        std::fs::remove_file(&aside).map_err(io(&aside))?;
        Ok(true)
    }
}

impl StateStore for LocalBackend {
    async fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>> {
        read_optional(&self.state_path(key, "tfstate"))
    }

    async fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> Result<()> {
        if let Some(id) = lock_id {
            match self.read_lock(key)? {
                Some(held) if held.id == id => {}
                _ => return Err(BackendError::LockMismatch { key: key.to_string(), id: id.to_string() }),
            }
        }
        let path = self.state_path(key, "tfstate");
        if let Some(previous) = read_optional(&path)? {
            write_atomic(&self.state_path(key, "tfstate.backup"), &previous)?;
        }
        write_atomic(&path, state)
    }

    async fn delete(&self, key: &StateKey) -> Result<()> {
        let path = self.state_path(key, "tfstate");
        if let Some(previous) = read_optional(&path)? {
            write_atomic(&self.state_path(key, "tfstate.backup"), &previous)?;
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    async fn lock(&self, key: &StateKey, info: &LockInfo) -> Result<()> {
        let path = self.state_path(key, "lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut info = info.clone();
        if let Some(ttl) = self.lock_ttl {
            let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_hours(1));
            info.expires = jiff::Timestamp::now().checked_add(ttl).ok().map(|t| t.to_string());
        }
        let body = serde_json::to_vec(&info).map_err(|e| BackendError::Corrupt { what: "lock info".into(), reason: e.to_string() })?;
        // A few rounds: the holder may release, or an expired lock be taken over, meanwhile.
        for _ in 0..4 {
            match self.create_lock(&path, &body) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&path)(e)),
            }
            match self.read_lock(key)? {
                None => continue,
                Some(held) if super::is_expired(&held) => {
                    self.take_over(key, &held)?;
                }
                Some(held) => return Err(BackendError::Locked { key: key.to_string(), holder: Box::new(held) }),
            }
        }
        let holder = self.read_lock(key)?.unwrap_or_default();
        Err(BackendError::Locked { key: key.to_string(), holder: Box::new(holder) })
    }

    async fn unlock(&self, key: &StateKey, id: &str) -> Result<()> {
        match self.read_lock(key)? {
            None => Ok(()),
            Some(held) if held.id == id => {
                let path = self.state_path(key, "lock");
                std::fs::remove_file(&path).map_err(io(&path))
            }
            Some(held) => Err(BackendError::Locked { key: key.to_string(), holder: Box::new(held) }),
        }
    }

    async fn lock_info(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        self.read_lock(key)
    }

    async fn force_unlock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        let held = self.read_lock(key)?;
        if held.is_some() {
            let path = self.state_path(key, "lock");
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(held)
    }
}

/// A lock file's info; an unreadable one is a lock held by someone unknown.
fn parse_lock(bytes: &[u8]) -> LockInfo {
    serde_json::from_slice(bytes).unwrap_or_else(|_| LockInfo { who: "unknown (unreadable lock file)".into(), ..Default::default() })
}

impl PlanStore for LocalBackend {
    async fn put_plan(&self, object: &ObjectKey, meta: &PlanMeta, plan: &[u8]) -> Result<()> {
        let dir = self.object_dir("plans", object);
        write_atomic(&dir.join(format!("{}.tfplan", meta.id)), plan)?;
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| BackendError::Corrupt { what: "plan meta".into(), reason: e.to_string() })?;
        write_atomic(&dir.join(format!("{}.json", meta.id)), &json)
    }

    async fn get_plan(&self, object: &ObjectKey, id: &str) -> Result<(PlanMeta, Vec<u8>)> {
        let not_found = || BackendError::PlanNotFound { object: object.to_string(), id: id.to_string() };
        let meta = self.plan_meta(object, id).await?.ok_or_else(not_found)?;
        let path = self.object_dir("plans", object).join(format!("{id}.tfplan"));
        let bytes = read_optional(&path)?.ok_or_else(not_found)?;
        super::verified_plan(object, id, meta, bytes, &[])
    }

    async fn plan_meta(&self, object: &ObjectKey, id: &str) -> Result<Option<PlanMeta>> {
        let path = self.object_dir("plans", object).join(format!("{id}.json"));
        match read_optional(&path)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| BackendError::Corrupt { what: format!("plan {id} of {object}"), reason: e.to_string() }),
        }
    }

    async fn prune_plans(&self, object: &ObjectKey, keep: &[&str]) -> Result<()> {
        let dir = self.object_dir("plans", object);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if !keep.contains(&stem) {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_digest;

    fn key() -> StateKey {
        StateKey {
            object: ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "demo".into() },
            state_name: "default".into(),
            secret_suffix: None,
        }
    }

    fn lock(id: &str) -> LockInfo {
        LockInfo { id: id.into(), who: format!("runner-{id}"), created: "now".into(), ..Default::default() }
    }

    #[tokio::test]
    async fn a_second_locker_is_refused_and_told_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.lock(&key(), &lock("a")).await.unwrap();
        match b.lock(&key(), &lock("b")).await {
            Err(BackendError::Locked { holder, .. }) => assert_eq!(holder.who, "runner-a"),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(matches!(b.put(&key(), b"{}", Some("b")).await, Err(BackendError::LockMismatch { .. })));
        b.put(&key(), b"{\"serial\":1}", Some("a")).await.unwrap();
        b.unlock(&key(), "a").await.unwrap();
        b.lock(&key(), &lock("b")).await.unwrap();
        assert_eq!(b.force_unlock(&key()).await.unwrap().unwrap().id, "b");
        assert_eq!(b.get(&key()).await.unwrap().unwrap(), b"{\"serial\":1}");
    }

    #[tokio::test]
    async fn a_tampered_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let object = key().object;
        let meta = PlanMeta {
            id: "plan-abc-123".into(),
            digest: sha256_digest(b"plan bytes"),
            created_at: "t".into(),
            source_revision: "main@sha1:abc".into(),
            rendering: String::new(),
            state_address: None,
            engine: None,
        };
        b.put_plan(&object, &meta, b"plan bytes").await.unwrap();
        assert_eq!(b.get_plan(&object, "plan-abc-123").await.unwrap().1, b"plan bytes");
        std::fs::write(dir.path().join("plans/Terraform/default/demo/plan-abc-123.tfplan"), b"other").unwrap();
        assert!(matches!(b.get_plan(&object, "plan-abc-123").await, Err(BackendError::PlanDigestMismatch { .. })));
    }
}
