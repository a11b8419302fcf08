//! The local store: one YAML file per object under `DIR/objects/<kind>/<namespace>/`, a
//! store-wide lock file for read-modify-write, and the artifact and backend directories.
//!
//! Guarantees: writes are atomic (temp + rename), so a crash never leaves a torn object;
//! the `run` loop and a CLI command in another process never lose each other's update,
//! because every mutation holds `DIR/.lock`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ObjectStore, Result, StoreError, StoredObject};

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

impl LocalStore {
    /// Opens (and creates) a store directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        std::fs::create_dir_all(root.join("objects")).map_err(io(&root))?;
        Ok(Self { root })
    }

    /// Opens an existing store only: a mistyped `--store` must not silently start empty.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        if !root.join("objects").is_dir() {
            return Err(StoreError::NoStore(root.display().to_string()));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    pub fn backend_dir(&self) -> PathBuf {
        self.root.join("backend")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    fn kind_dir<K: StoredObject>(&self) -> PathBuf {
        self.root.join("objects").join(K::kind(&()).to_lowercase())
    }

    fn path<K: StoredObject>(&self, namespace: &str, name: &str) -> PathBuf {
        self.kind_dir::<K>().join(namespace).join(format!("{name}.yaml"))
    }

    fn lock(&self) -> Result<std::fs::File> {
        let path = self.root.join(".lock");
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(f)
    }

    fn read<K: StoredObject>(&self, path: &Path) -> Result<Option<K>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        serde_yaml::from_str(&text).map(Some).map_err(|e| StoreError::Decode {
            path: path.display().to_string(),
            kind: K::kind(&()).to_string(),
            reason: e.to_string(),
        })
    }

    fn write<K: StoredObject>(&self, path: &Path, object: &K) -> Result<()> {
        let text =
            serde_yaml::to_string(object).map_err(|e| StoreError::Encode { kind: K::kind(&()).to_string(), reason: e.to_string() })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        std::fs::write(tmp.path(), text).map_err(io(path))?;
        // Secrets are stored in the clear, as in a Secret's data: readable by the owner only.
        if K::kind(&()) == "Secret" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
        }
        tmp.persist(path).map_err(|e| io(path)(e.error))?;
        Ok(())
    }
}

fn spec_of<K: StoredObject>(object: &K) -> Value {
    serde_json::to_value(object).ok().and_then(|v| v.get("spec").or_else(|| v.get("data")).cloned()).unwrap_or(Value::Null)
}

impl ObjectStore for LocalStore {
    async fn get<K: StoredObject>(&self, namespace: &str, name: &str) -> Result<Option<K>> {
        self.read(&self.path::<K>(namespace, name))
    }

    async fn list<K: StoredObject>(&self) -> Result<Vec<K>> {
        let mut out = Vec::new();
        let dir = self.kind_dir::<K>();
        let Ok(namespaces) = std::fs::read_dir(&dir) else { return Ok(out) };
        let mut paths: Vec<PathBuf> = Vec::new();
        for ns in namespaces.flatten() {
            if let Ok(files) = std::fs::read_dir(ns.path()) {
                paths.extend(files.flatten().map(|f| f.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")));
            }
        }
        paths.sort();
        for p in paths {
            if let Some(o) = self.read::<K>(&p)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    async fn apply<K: StoredObject>(&self, object: &K) -> Result<K> {
        let meta = object.meta();
        let namespace = meta.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = meta.name.clone().unwrap_or_default();
        let _guard = self.lock()?;
        let path = self.path::<K>(&namespace, &name);
        let existing: Option<K> = self.read(&path)?;
        let mut incoming =
            serde_json::to_value(object).map_err(|e| StoreError::Encode { kind: K::kind(&()).to_string(), reason: e.to_string() })?;
        let generation = match &existing {
            Some(old) => {
                let old_gen = old.meta().generation.unwrap_or(1);
                if spec_of(old) == spec_of(object) { old_gen } else { old_gen + 1 }
            }
            None => 1,
        };
        if let Some(m) = incoming.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("namespace".into(), Value::String(namespace.clone()));
            m.insert("generation".into(), Value::from(generation));
            if let Some(old) = &existing {
                if let Some(ts) = &old.meta().creation_timestamp {
                    m.insert("creationTimestamp".into(), serde_json::to_value(ts).unwrap_or(Value::Null));
                }
            } else {
                m.insert("creationTimestamp".into(), Value::String(jiff::Timestamp::now().to_string()));
            }
        }
        // Status belongs to the reconciler: keep what it wrote.
        if let Some(old) = &existing
            && let Some(status) = serde_json::to_value(old).ok().and_then(|v| v.get("status").cloned())
            && let Some(obj) = incoming.as_object_mut()
        {
            obj.insert("status".into(), status);
        }
        let stored: K = serde_json::from_value(incoming).map_err(|e| StoreError::Decode {
            path: path.display().to_string(),
            kind: K::kind(&()).to_string(),
            reason: e.to_string(),
        })?;
        self.write(&path, &stored)?;
        Ok(stored)
    }

    async fn update<K: StoredObject>(&self, namespace: &str, name: &str, mut mutate: impl FnMut(&mut K) + Send) -> Result<K> {
        let _guard = self.lock()?;
        let path = self.path::<K>(namespace, name);
        let mut object: K = self.read(&path)?.ok_or_else(|| StoreError::NotFound {
            kind: K::kind(&()).to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })?;
        mutate(&mut object);
        self.write(&path, &object)?;
        Ok(object)
    }

    async fn delete<K: StoredObject>(&self, namespace: &str, name: &str) -> Result<bool> {
        let _guard = self.lock()?;
        let path = self.path::<K>(namespace, name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path)(e)),
        }
    }
}
