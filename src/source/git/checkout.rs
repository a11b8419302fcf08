//! Checking a commit out and archiving it: write the commit's tree from the bare cache into a
//! temp dir, and [`GitSource::fetch_artifact`], which turns that checkout into a stored
//! artifact.
//!
//! The tree is written straight from the bare cache's objects (there is no work tree),
//! skipping `.git` entries and submodules and reducing file modes to 0644/0755, so what is
//! archived depends on the commit alone.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use super::{ArtifactOutcome, FetchOutcome, GitError, GitSource, Result};
use crate::api::Artifact;
use crate::source::artifact::ArtifactStore;

impl GitSource {
    /// [`fetch`](Self::fetch), then archive the checkout into `store` with `ignore` patterns.
    /// `last` is the object's current artifact; it counts only while its file is in the store.
    pub fn fetch_artifact(
        &self,
        store: &ArtifactStore,
        kind: &str,
        namespace: &str,
        name: &str,
        ignore: Option<&str>,
        last: Option<&Artifact>,
    ) -> Result<ArtifactOutcome> {
        let exists = last.is_some_and(|a| store.exists(&a.path));
        match self.fetch(last.map(|a| a.revision.as_str()), exists)? {
            FetchOutcome::Unchanged { revision } => Ok(ArtifactOutcome::Unchanged { revision }),
            FetchOutcome::Fetched(checkout) => {
                let artifact = store.archive_dir(kind, namespace, name, checkout.path(), ignore)?;
                Ok(ArtifactOutcome::Stored { revision: checkout.revision.clone(), commit: checkout.commit.clone(), artifact })
            }
        }
    }

    /// Write `commit`'s tree into a new temp dir.
    pub(super) fn checkout(&self, repo: &Repository, commit: &str) -> Result<tempfile::TempDir> {
        let err = |detail: String| GitError::Checkout { commit: commit.to_string(), url: self.display_url(), detail };
        let dir = tempfile::Builder::new().prefix("driftless-git-").tempdir().map_err(|e| err(e.to_string()))?;
        let oid = Oid::from_str(commit).map_err(|e| err(e.message().to_string()))?;
        let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| err(e.message().to_string()))?;
        write_tree(repo, &tree, dir.path()).map_err(err)?;
        Ok(dir)
    }
}

/// Write a tree's files under `dir`: files 0644/0755 by the exec bit, symlinks as symlinks;
/// submodules are not recursed (as Flux by default) and `.git` entries are skipped.
fn write_tree(repo: &Repository, tree: &git2::Tree<'_>, dir: &Path) -> Result<(), String> {
    for entry in tree.iter() {
        let name = entry.name_bytes();
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
            return Err(format!("the tree holds an invalid entry name {:?}", String::from_utf8_lossy(name)));
        }
        if name.eq_ignore_ascii_case(b".git") {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(name));
        let io_err = |e: io::Error| format!("{}: {e}", path.display());
        match entry.kind() {
            Some(ObjectType::Tree) => {
                fs::create_dir(&path).map_err(io_err)?;
                let subtree = repo.find_tree(entry.id()).map_err(|e| e.message().to_string())?;
                write_tree(repo, &subtree, &path)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
                match entry.filemode() {
                    0o120000 => std::os::unix::fs::symlink(OsStr::from_bytes(blob.content()), &path).map_err(io_err)?,
                    mode => {
                        fs::write(&path, blob.content()).map_err(io_err)?;
                        let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                        fs::set_permissions(&path, fs::Permissions::from_mode(perm)).map_err(io_err)?;
                    }
                }
            }
            // A submodule (a commit in the tree) or something unknown: not part of this tree.
            _ => {}
        }
    }
    Ok(())
}
