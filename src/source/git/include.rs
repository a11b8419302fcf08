//! Flux's `include`: other GitRepositories' artifacts copied into a checkout before it is
//! archived, `fromPath` of each (its root by default) to `toPath` (the included object's
//! name by default).
//!
//! An included artifact is unpacked from the store with its digest checked, so what is
//! copied is exactly what that object published. Nothing is written through a symlink: a
//! `fromPath` or `toPath` that goes through one (in the artifact or in the repository) is
//! refused, and a symlink already at a path being written is replaced, not followed.
//! What the repository has at `toPath` is merged with the copy, the included files winning,
//! as Flux's copy does.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::api::Artifact;
use crate::source::artifact::ArtifactStore;

/// One included artifact and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The included GitRepository's name, for messages.
    pub name: String,
    pub artifact: Artifact,
    /// Cleaned, relative; empty for the artifact's root.
    pub from_path: String,
    /// Cleaned, relative; empty for the checkout's root.
    pub to_path: String,
}

impl Include {
    /// `fromPath` and `toPath` as written (toPath already defaulted), cleaned; `None` for one
    /// that leaves its root (absolute, or with `..`).
    pub fn new(name: &str, artifact: Artifact, from_path: &str, to_path: &str) -> Option<Self> {
        Some(Include { name: name.to_string(), artifact, from_path: clean(from_path)?, to_path: clean(to_path)? })
    }
}

/// `./a//b/` -> `a/b`; `None` when absolute or with a `..` component.
fn clean(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Copy `include`'s part of its artifact into `checkout`.
pub(super) fn copy_into(store: &ArtifactStore, include: &Include, checkout: &Path) -> Result<(), String> {
    let Include { name, artifact, from_path, to_path } = include;
    let unpacked = tempfile::Builder::new().prefix("driftless-include-").tempdir().map_err(|e| e.to_string())?;
    store
        .unpack(&artifact.path, &artifact.digest, unpacked.path())
        .map_err(|e| format!("include {name:?}: its artifact (revision {}) cannot be read: {e}", artifact.revision))?;
    let from = real_path(unpacked.path(), from_path).map_err(|why| format!("include {name:?}: fromPath {from_path:?} {why}"))?;
    let from_meta = fs::symlink_metadata(&from)
        .map_err(|_| format!("include {name:?}: fromPath {from_path:?} is not in its artifact (revision {})", artifact.revision))?;
    let to = checkout.join(to_path);
    ensure_dirs(checkout, Path::new(to_path).parent().unwrap_or(Path::new("")))
        .map_err(|why| format!("include {name:?}: toPath {to_path:?} {why}"))?;
    let copied = if from_meta.is_dir() {
        if to_path.is_empty() { copy_dir(&from, &to) } else { make_dir(&to).and_then(|()| copy_dir(&from, &to)) }
    } else if to_path.is_empty() {
        return Err(format!("include {name:?}: fromPath {from_path:?} is a file; give it a toPath"));
    } else {
        copy_entry(&from, &to, &from_meta)
    };
    copied.map_err(|e| format!("include {name:?}: copying {from_path:?} to {to_path:?}: {e}"))
}

/// `root/rel` when every component of `rel` below `root` exists and is a real directory
/// or, for the last one, a file: never through a symlink.
fn real_path(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let mut path = root.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        path.push(part);
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.file_type().is_symlink()
        {
            return Err("goes through a symlink".into());
        }
    }
    Ok(path)
}

/// Create the directories of `rel` under `root` that are missing; refused through a symlink
/// or a file.
fn ensure_dirs(root: &Path, rel: &Path) -> Result<(), String> {
    let mut path = root.to_path_buf();
    for part in rel.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err("goes through a symlink of the repository".into()),
            Ok(meta) if !meta.is_dir() => return Err("goes through a file of the repository".into()),
            Ok(_) => {}
            Err(_) => fs::create_dir(&path).map_err(|e| e.to_string())?,
        }
    }
    Ok(())
}

/// A directory at `path`: an existing one is kept, anything else there replaced.
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Err(_) => fs::create_dir(path),
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        copy_entry(&entry.path(), &to.join(entry.file_name()), &meta)?;
    }
    Ok(())
}

/// Copy one entry (a directory recursively, a symlink as a symlink), replacing what is at
/// `to` unless both are directories.
fn copy_entry(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if meta.is_dir() {
        if fs::symlink_metadata(to).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(to)?;
        }
        make_dir(to)?;
        return copy_dir(from, to);
    }
    match fs::symlink_metadata(to) {
        Ok(existing) if existing.is_dir() => fs::remove_dir_all(to)?,
        Ok(_) => fs::remove_file(to)?,
        Err(_) => {}
    }
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::symlink(fs::read_link(from)?, to);
    }
    let perm = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
    let mut out = fs::OpenOptions::new().write(true).create_new(true).mode(perm).open(to)?;
    io::copy(&mut fs::File::open(from)?, &mut out)?;
    out.set_permissions(fs::Permissions::from_mode(perm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_escapes_refused() {
        assert_eq!(clean("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean("").as_deref(), Some(""));
        assert_eq!(clean("/etc"), None);
        assert_eq!(clean("a/../../b"), None);
    }

    fn artifact_of(store: &ArtifactStore, dir: &Path) -> Artifact {
        let stored = store.archive_dir("gitrepository", "default", "lib", dir, None).expect("archive");
        Artifact { path: stored.path, digest: stored.digest, revision: "main@sha1:abc".into(), ..Default::default() }
    }

    #[test]
    fn a_sub_directory_is_merged_into_the_checkout_and_symlinks_are_never_followed() {
        let store_dir = tempfile::tempdir().expect("tmp");
        let store = ArtifactStore::new(store_dir.path());
        let lib = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(lib.path().join("modules/net")).expect("mkdir");
        fs::write(lib.path().join("modules/net/main.tf"), "# net\n").expect("write");
        fs::write(lib.path().join("top.txt"), "top\n").expect("write");
        let artifact = artifact_of(&store, lib.path());

        let checkout = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(checkout.path().join("vendor/net")).expect("mkdir");
        fs::write(checkout.path().join("vendor/net/main.tf"), "# old\n").expect("write");
        fs::write(checkout.path().join("vendor/net/keep.tf"), "# kept\n").expect("write");
        let include = Include::new("lib", artifact.clone(), "modules/net", "vendor/net").expect("paths");
        copy_into(&store, &include, checkout.path()).expect("copy");
        assert_eq!(fs::read_to_string(checkout.path().join("vendor/net/main.tf")).expect("read"), "# net\n");
        assert_eq!(fs::read_to_string(checkout.path().join("vendor/net/keep.tf")).expect("read"), "# kept\n");
        assert!(!checkout.path().join("vendor/net/top.txt").exists());

        let outside = tempfile::tempdir().expect("tmp");
        std::os::unix::fs::symlink(outside.path(), checkout.path().join("escape")).expect("symlink");
        let include = Include::new("lib", artifact.clone(), "", "escape/lib").expect("paths");
        let err = copy_into(&store, &include, checkout.path()).expect_err("through a symlink");
        assert!(err.contains("symlink"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).expect("ls").count(), 0, "nothing written outside");

        let include = Include::new("lib", artifact, "no/such", "x").expect("paths");
        let err = copy_into(&store, &include, checkout.path()).expect_err("missing fromPath");
        assert!(err.contains("not in its artifact") && err.contains("main@sha1:abc"), "{err}");
    }
}
