//! Reading the files a kustomization names, confined to a build root: a source artifact is
//! untrusted input, so `../../etc/passwd` or a symlink out of the tree is refused (Flux
//! confines builds to the artifact in the same way).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What every file a build reads passes through before it is parsed: how a Kustomization's
/// SOPS decryption reaches its manifests and the files its generators read, without this
/// module knowing SOPS (it imports nothing else of the crate).
pub trait ReadFilter: Send + Sync + std::fmt::Debug {
    /// The bytes to use for the file `shown` (its path as messages name it), or an error
    /// message that names the file.
    fn filter(&self, shown: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, String>;
}

/// A kustomization directory inside a build root.
#[derive(Debug, Clone)]
pub(crate) struct Dir {
    /// The directory, canonical.
    pub path: PathBuf,
    /// The build root, canonical.
    pub root: PathBuf,
    /// The directory as the user wrote it (for messages).
    pub shown: PathBuf,
    /// What the files read go through (see [`ReadFilter`]).
    pub filter: Option<Arc<dyn ReadFilter>>,
}

impl Dir {
    /// # Errors
    /// `dir` does not exist or is outside `root`.
    pub fn new(root: &Path, dir: &Path) -> Result<Dir, String> {
        let root_c = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
        let path = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
        if !path.starts_with(&root_c) {
            return Err(format!("{} is outside the build root {}", dir.display(), root.display()));
        }
        Ok(Dir { path, root: root_c, shown: dir.to_path_buf(), filter: None })
    }

    /// `rel` resolved against this directory; it must stay inside the root.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        if rel.contains("://") || rel.starts_with("git@") || rel.starts_with("github.com/") {
            return Err(format!("{rel:?} is a remote reference; driftless builds only local files (see docs/KUSTOMIZE.md)"));
        }
        let canonical = self.path.join(rel).canonicalize().map_err(|e| format!("{rel:?}: {e}"))?;
        if !canonical.starts_with(&self.root) {
            return Err(format!("{rel:?} is outside the build root; only files inside the source can be used"));
        }
        Ok(canonical)
    }

    /// The subdirectory `rel` as a `Dir`.
    pub fn child(&self, rel: &str) -> Result<Dir, String> {
        let path = self.resolve(rel)?;
        Ok(Dir { path, root: self.root.clone(), shown: normalize(&self.shown.join(rel)), filter: self.filter.clone() })
    }

    pub fn read(&self, rel: &str) -> Result<Vec<u8>, String> {
        let path = self.resolve(rel)?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{rel:?}: {e}"))?;
        match &self.filter {
            Some(f) => f.filter(&self.show(rel), bytes),
            None => Ok(bytes),
        }
    }

    pub fn read_text(&self, rel: &str) -> Result<String, String> {
        String::from_utf8(self.read(rel)?).map_err(|_| format!("{rel:?} is not UTF-8 text"))
    }

    /// A file of this directory as the user would write its path.
    pub fn show(&self, rel: &str) -> PathBuf {
        normalize(&self.shown.join(rel))
    }
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() { PathBuf::from(".") } else { out.iter().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_from_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app")).unwrap();
        std::fs::write(root.path().join("app/a.yaml"), "x").unwrap();
        let dir = Dir::new(root.path(), &root.path().join("app")).unwrap();
        assert!(dir.read("a.yaml").is_ok());
        let err = dir.read("../../etc/passwd").unwrap_err();
        assert!(err.contains("outside the build root") || err.contains("No such file"), "{err}");
        assert!(dir.resolve("https://example.com/x").unwrap_err().contains("remote"));
    }

    #[test]
    fn shown_paths_are_normalized() {
        assert_eq!(normalize(Path::new("overlays/prod/../../base/./k.yaml")), PathBuf::from("base/k.yaml"));
    }
}
