//! Checking a commit out and archiving it: write the commit's tree from the bare cache into a
//! temp dir, and [`GitSource::fetch_artifact`], which turns that checkout into a stored
//! artifact.
//!
//! The tree is written straight from the bare cache's objects (there is no work tree),
//! skipping `.git` entries and submodules and reducing file modes to 0644/0755, so what is
//! archived depends on the commit alone.
//!
//! Every file and directory is created new, never opened through what is already there: a
//! crafted tree that names an entry twice (a symlink, then a file of the same name) cannot
//! make the checkout write through the link, out of its directory. The bytes written are
//! counted against the store's size limit.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
        let this = self.clone().with_max_size(store.max_size());
        match this.fetch(last.map(|a| a.revision.as_str()), exists)? {
            FetchOutcome::Unchanged { revision } => Ok(ArtifactOutcome::Unchanged { revision }),
            FetchOutcome::Fetched(checkout) => {
                let sparse = self.sparse_ignore(checkout.path(), &checkout.revision, ignore)?;
                for include in &self.includes {
                    super::include::copy_into(store, include, checkout.path()).map_err(GitError::Include)?;
                }
                let artifact = store.archive_dir(kind, namespace, name, checkout.path(), sparse.as_deref().or(ignore))?;
                Ok(ArtifactOutcome::Stored {
                    revision: checkout.revision.clone(),
                    commit: checkout.commit.clone(),
                    artifact,
                    verified: checkout.verified.clone(),
                })
            }
        }
    }

    /// The ignore patterns of `sparseCheckout` followed by the object's own, once every
    /// listed directory is known to be one at this revision (a typo would otherwise give an
    /// empty artifact); `None` without sparseCheckout.
    fn sparse_ignore(&self, dir: &std::path::Path, revision: &str, ignore: Option<&str>) -> Result<Option<String>> {
        if self.sparse.is_empty() {
            return Ok(None);
        }
        if let Some(missing) = self.sparse.iter().find(|d| !dir.join(d).is_dir()) {
            return Err(GitError::InvalidSparseCheckout(format!(
                "spec.sparseCheckout: {missing:?} is not a directory at revision {revision}; fix the path or remove it"
            )));
        }
        // What is included goes in whatever the sparse directories are (Flux copies it in
        // after its sparse clone): each toPath is kept as a wanted directory.
        let mut wanted = self.sparse.clone();
        wanted.extend(self.includes.iter().filter(|i| !i.to_path.is_empty()).map(|i| i.to_path.clone()));
        let mut patterns = super::sparse::patterns(&wanted);
        if let Some(own) = ignore {
            patterns.push('\n');
            patterns.push_str(own);
        }
        Ok(Some(patterns))
    }

    /// Write `commit`'s tree into a new temp dir, and its submodules when asked to.
    pub(super) fn checkout(&self, repo: &Repository, commit: &str, deadline: std::time::Instant) -> Result<tempfile::TempDir> {
        let err = |detail: String| GitError::Checkout { commit: commit.to_string(), url: self.display_url(), detail };
        let dir = tempfile::Builder::new().prefix("driftless-git-").tempdir().map_err(|e| err(e.to_string()))?;
        let oid = Oid::from_str(commit).map_err(|e| err(e.message().to_string()))?;
        let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| err(e.message().to_string()))?;
        let mut budget = Budget { left: self.max_size, limit: self.max_size };
        let mut gitlinks = Vec::new();
        write_tree(repo, &tree, dir.path(), "", &mut budget, &mut gitlinks).map_err(err)?;
        if self.recurse_submodules && !gitlinks.is_empty() {
            self.check_out_submodules(repo, &tree, dir.path(), &gitlinks, deadline)?;
        }
        Ok(dir)
    }
}

/// Bytes a checkout may still write.
struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<(), String> {
        self.left = self.left.checked_sub(bytes as u64).ok_or_else(|| {
            format!("the checkout is larger than the limit of {} bytes; raise the controller's --max-artifact-size or make the repository smaller", self.limit)
        })?;
        Ok(())
    }
}

/// Write a tree's files under `dir`: files 0644/0755 by the exec bit, symlinks as symlinks;
/// `.git` entries are skipped and submodules (commits in the tree) are listed in `gitlinks`
/// with their path below the root (`prefix` is `dir`'s), not written.
fn write_tree(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    dir: &Path,
    prefix: &str,
    budget: &mut Budget,
    gitlinks: &mut Vec<(String, Oid)>,
) -> Result<(), String> {
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
                let sub_prefix = format!("{prefix}{}/", String::from_utf8_lossy(name));
                write_tree(repo, &subtree, &path, &sub_prefix, budget, gitlinks)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
                budget.spend(blob.size())?;
                match entry.filemode() {
                    // symlink(2) fails on an existing name, as create_dir does.
                    0o120000 => std::os::unix::fs::symlink(OsStr::from_bytes(blob.content()), &path).map_err(io_err)?,
                    mode => {
                        let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                        // O_CREAT|O_EXCL: fails on any existing name, a symlink included,
                        // instead of following it.
                        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(perm).open(&path).map_err(io_err)?;
                        io::Write::write_all(&mut file, blob.content()).map_err(io_err)?;
                        // The mode given at creation is masked by the umask; set it on the
                        // file itself, never by path.
                        file.set_permissions(fs::Permissions::from_mode(perm)).map_err(io_err)?;
                    }
                }
            }
            // A submodule: its commit is another repository's, checked out only when asked.
            Some(ObjectType::Commit) => gitlinks.push((format!("{prefix}{}", String::from_utf8_lossy(name)), entry.id())),
            // Something unknown: not part of this tree.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree object written as raw bytes, so it may hold what `git` itself never writes.
    fn raw_tree(repo: &Repository, entries: &[(&str, &str, Oid)]) -> Oid {
        let mut bytes = Vec::new();
        for (mode, name, oid) in entries {
            bytes.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            bytes.extend_from_slice(oid.as_bytes());
        }
        repo.odb().expect("odb").write(ObjectType::Tree, &bytes).expect("write tree")
    }

    fn budget(limit: u64) -> Budget {
        Budget { left: limit, limit }
    }

    #[test]
    fn a_name_given_twice_never_writes_through_the_first_ones_symlink() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(repo_dir.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        let link = repo.blob(victim.to_string_lossy().as_bytes()).unwrap();
        let payload = repo.blob(b"written through the link").unwrap();
        let tree = raw_tree(&repo, &[("120000", "a", link), ("100644", "a", payload)]);
        let tree = repo.find_tree(tree).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = write_tree(&repo, &tree, out.path(), "", &mut budget(1 << 20), &mut Vec::new()).expect_err("the second `a` is refused");
        assert!(err.contains("exists"), "{err}");
        assert!(!victim.exists(), "nothing was written outside the checkout");
    }

    #[test]
    fn a_checkout_larger_than_the_limit_stops_naming_it() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(repo_dir.path()).unwrap();
        let big = repo.blob(&[b'x'; 4096]).unwrap();
        let tree = raw_tree(&repo, &[("100644", "a.tf", big), ("100644", "b.tf", big)]);
        let tree = repo.find_tree(tree).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = write_tree(&repo, &tree, out.path(), "", &mut budget(6000), &mut Vec::new()).expect_err("too large");
        assert!(err.contains("larger than the limit of 6000 bytes") && err.contains("--max-artifact-size"), "{err}");
        let fits = tempfile::tempdir().unwrap();
        write_tree(&repo, &tree, fits.path(), "", &mut budget(8192), &mut Vec::new()).expect("fits");
        let mode = fs::metadata(fits.path().join("a.tf")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
