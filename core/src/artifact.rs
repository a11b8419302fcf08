//! The artifact store: deterministic, content-addressed tar.gz archives of a source tree.
//!
//! An artifact is written to `<root>/<kind>/<namespace>/<name>/<sha256 hex>.tar.gz`. The same
//! tree always gives the same bytes, so the same content always gets the same digest (and the
//! same file): a re-fetch of an unchanged tree changes nothing downstream.
//!
//! # Guarantees
//! - Entries are sorted by path; every header has mtime 0, uid/gid 0, no owner names, and mode
//!   0644 (files without an exec bit), 0755 (files with one, and directories) or 0777
//!   (symlinks); the gzip header carries no mtime and no file name.
//! - `.git` is never archived; `ignore` takes gitignore-style patterns relative to the tree.
//! - Symlinks are kept as symlinks, and refused when they point outside the tree.
//! - A file is written to a temp file and renamed, so a reader never sees half an artifact.
//! - Unpacking verifies the sha256 digest before extracting anything, and refuses entries that
//!   would land outside the destination.
//!
//! The exact bytes depend on the deflate implementation flate2 is built with; the digest is
//! stable for one build of driftless, which is all the store relies on.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// Errors of the artifact store. Messages name the path or digest involved.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid artifact {what} {value:?}: must be a non-empty single path segment")]
    InvalidName { what: &'static str, value: String },
    #[error("invalid artifact path {0:?}: must be relative to the store, without `..`")]
    InvalidPath(String),
    #[error("invalid digest {0:?}: expected `sha256:` followed by 64 hex digits")]
    InvalidDigest(String),
    #[error("invalid ignore pattern {pattern:?}: {message}")]
    InvalidIgnore { pattern: String, message: String },
    #[error("symlink {path} points outside the tree (to {target})")]
    SymlinkEscapes { path: String, target: String },
    #[error("{path} is not a regular file, directory or symlink; it cannot be archived")]
    UnsupportedFileType { path: String },
    #[error("artifact digest mismatch: expected {expected}, got {actual}; refusing to unpack")]
    DigestMismatch { expected: String, actual: String },
    #[error("refusing to unpack entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error("{what} is larger than the limit of {} bytes ({} MiB); raise the controller's --max-artifact-size or make the source smaller (spec.ignore)", .limit, .limit >> 20)]
    TooLarge { what: String, limit: u64 },
    #[error("cannot read artifact {0:?} from the store: only store paths and file:// URLs are local; download it and use unpack_verified")]
    UnsupportedUrl(String),
}

pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ArtifactError {
    let path = path.into();
    move |source| ArtifactError::Io { action, path, source }
}

/// An artifact written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Relative to the store root: `<kind>/<namespace>/<name>/<hex>.tar.gz`.
    pub path: String,
    /// `sha256:<hex>` of the tar.gz bytes.
    pub digest: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
}

/// A directory of content-addressed artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    /// Where runners download artifacts from (the controller's artifact server); `None`
    /// gives `file://` URLs for runners on this machine.
    base_url: Option<String>,
    /// The most bytes one source may bring: fetched, checked out or archived.
    max_size: u64,
}

/// The default of [`ArtifactStore::max_size`]: far above any repository of manifests or
/// modules, far below what fills a controller's disk or a runner's memory.
pub const DEFAULT_MAX_SIZE: u64 = 512 << 20;

impl ArtifactStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), base_url: None, max_size: DEFAULT_MAX_SIZE }
    }

    /// Sources may bring at most `bytes` (a fetch, a checkout, an archive); more is an
    /// error naming the limit.
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Artifacts are published as `<base_url>/<store path>` (the artifact server).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into().trim_end_matches('/').to_string());
        self
    }

    /// The URL a runner fetches the artifact at this store-relative path from.
    pub fn url(&self, path: &str) -> Result<String> {
        match &self.base_url {
            Some(base) => {
                self.local_path(path)?;
                Ok(format!("{base}/{path}"))
            }
            None => self.file_url(path),
        }
    }

    /// Removes every artifact of an object (its source was deleted).
    pub fn remove_object(&self, kind: &str, namespace: &str, name: &str) -> Result<()> {
        let dir = self.object_dir(kind, namespace, name)?;
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &dir)(e)),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory holding every artifact of one object.
    pub fn object_dir(&self, kind: &str, namespace: &str, name: &str) -> Result<PathBuf> {
        check_segment("kind", kind)?;
        check_segment("namespace", namespace)?;
        check_segment("name", name)?;
        Ok(self.root.join(kind).join(namespace).join(name))
    }

    /// The file behind a store-relative path (refuses absolute paths and `..`).
    pub fn local_path(&self, path: &str) -> Result<PathBuf> {
        let rel = Path::new(path);
        if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(ArtifactError::InvalidPath(path.to_string()));
        }
        Ok(self.root.join(rel))
    }

    /// A `file://` URL for a store-relative path, for runners on the same machine.
    pub fn file_url(&self, path: &str) -> Result<String> {
        let full = self.local_path(path)?;
        let full = if full.is_absolute() {
            full
        } else {
            std::env::current_dir().map_err(io_err("read current directory for", &full))?.join(full)
        };
        Ok(format!("file://{}", full.display()))
    }

    /// Whether the artifact at this store-relative path is present.
    pub fn exists(&self, path: &str) -> bool {
        self.local_path(path).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Archive `dir` into the store as a deterministic tar.gz named by its sha256.
    ///
    /// `ignore` holds gitignore-style patterns (one per line) of paths left out; `.git` is
    /// always left out. Writing the same content again finds the file already there and does
    /// not rewrite it.
    pub fn archive_dir(&self, kind: &str, namespace: &str, name: &str, dir: &Path, ignore: Option<&str>) -> Result<StoredArtifact> {
        self.store_written(kind, namespace, name, |writer| write_tar_gz(dir, ignore, writer))
    }

    /// Store the tar.gz `file` as it is (an OCI layer kept whole, Flux's `copy`): named by
    /// its sha256 like every artifact, after checking that it unpacks safely (a gzipped
    /// tarball without entries outside its root), so a runner never meets one that does not.
    pub fn store_archive(&self, kind: &str, namespace: &str, name: &str, file: &Path) -> Result<StoredArtifact> {
        let size = fs::metadata(file).map_err(io_err("stat", file))?.len();
        if size > self.max_size {
            return Err(ArtifactError::TooLarge {
                what: format!("the artifact of {kind} {namespace}/{name} ({size} bytes)"),
                limit: self.max_size,
            });
        }
        let check = tempfile::tempdir().map_err(io_err("create a temp directory for", file))?;
        extract_tar_gz(BufReader::new(File::open(file).map_err(io_err("open", file))?), check.path())?;
        drop(check);
        self.store_written(kind, namespace, name, |mut writer| {
            io::copy(&mut File::open(file).map_err(io_err("open", file))?, &mut writer).map_err(io_err("copy", file))?;
            Ok(writer)
        })
    }

    /// One artifact of an object from what `write` writes: hashed as it is written into a
    /// temporary file beside the artifacts, refused over the size limit, then renamed to its
    /// sha256 (an artifact of the same content already there is kept: readers may hold it
    /// open).
    fn store_written<F>(&self, kind: &str, namespace: &str, name: &str, write: F) -> Result<StoredArtifact>
    where
        F: FnOnce(HashingWriter<io::BufWriter<&File>>) -> Result<HashingWriter<io::BufWriter<&File>>>,
    {
        let object_dir = self.object_dir(kind, namespace, name)?;
        fs::create_dir_all(&object_dir).map_err(io_err("create", &object_dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".tar.gz")
            .tempfile_in(&object_dir)
            .map_err(io_err("create a temp file in", &object_dir))?;
        let writer = write(HashingWriter::new(io::BufWriter::new(tmp.as_file())))?;
        let (buf, hex, size) = writer.finish();
        if size > self.max_size {
            return Err(ArtifactError::TooLarge {
                what: format!("the artifact of {kind} {namespace}/{name} ({size} bytes)"),
                limit: self.max_size,
            });
        }
        buf.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).map_err(io_err("write", tmp.path()))?;
        let file_name = format!("{hex}.tar.gz");
        let target = object_dir.join(&file_name);
        if target.is_file() {
            drop(tmp);
        } else {
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644)).map_err(io_err("chmod", tmp.path()))?;
            tmp.persist(&target).map_err(|e| ArtifactError::Io { action: "rename into", path: target.clone(), source: e.error })?;
        }
        Ok(StoredArtifact { path: format!("{kind}/{namespace}/{name}/{file_name}"), digest: format!("sha256:{hex}"), size })
    }

    /// Remove every artifact of one object whose digest is not in `keep`; returns the
    /// store-relative paths removed.
    pub fn gc(&self, kind: &str, namespace: &str, name: &str, keep: &[&str]) -> Result<Vec<String>> {
        let keep: BTreeSet<String> = keep.iter().map(|d| parse_digest(d)).collect::<Result<_>>()?;
        let object_dir = self.object_dir(kind, namespace, name)?;
        let entries = match fs::read_dir(&object_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &object_dir)(e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &object_dir))?;
            let file_name = entry.file_name();
            let Some(hex) = file_name.to_str().and_then(|n| n.strip_suffix(".tar.gz")) else { continue };
            if !is_sha256_hex(hex) || keep.contains(hex) {
                continue;
            }
            fs::remove_file(entry.path()).map_err(io_err("remove", entry.path()))?;
            removed.push(format!("{kind}/{namespace}/{name}/{hex}.tar.gz"));
        }
        removed.sort();
        Ok(removed)
    }

    /// Verify the artifact's sha256 against `expected_digest`, then extract it into `dest`.
    ///
    /// `path_or_url` is a store-relative path, an absolute path or a `file://` URL. Nothing is
    /// extracted when the digest does not match.
    pub fn unpack(&self, path_or_url: &str, expected_digest: &str, dest: &Path) -> Result<()> {
        let expected = parse_digest(expected_digest)?;
        let path = if let Some(rest) = path_or_url.strip_prefix("file://") {
            PathBuf::from(percent_decode(rest))
        } else if path_or_url.contains("://") {
            return Err(ArtifactError::UnsupportedUrl(path_or_url.to_string()));
        } else if Path::new(path_or_url).is_absolute() {
            PathBuf::from(path_or_url)
        } else {
            self.local_path(path_or_url)?
        };
        let mut file = File::open(&path).map_err(io_err("open", &path))?;
        let mut hasher = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut hasher).map_err(io_err("read", &path))?;
        let (_, actual, _) = hasher.finish();
        check_digest(&expected, &actual)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err("read", &path))?;
        extract_tar_gz(BufReader::new(file), dest)
    }
}

/// Verify bytes downloaded from anywhere against `digest` (`sha256:<hex>`), then extract
/// them into `dest`. The reader is spooled to a temp file first, so nothing is extracted from
/// unverified bytes.
pub fn unpack_verified(reader: impl Read, digest: &str, dest: &Path) -> Result<()> {
    let expected = parse_digest(digest)?;
    let spool = tempfile::tempfile().map_err(io_err("create a temp file for", dest))?;
    let mut writer = HashingWriter::new(io::BufWriter::new(spool));
    let mut reader = reader;
    io::copy(&mut reader, &mut writer).map_err(io_err("spool the artifact for", dest))?;
    let (buf, actual, _) = writer.finish();
    check_digest(&expected, &actual)?;
    let mut spool = buf.into_inner().map_err(|e| io_err("spool the artifact for", dest)(e.into_error()))?;
    spool.seek(SeekFrom::Start(0)).map_err(io_err("spool the artifact for", dest))?;
    extract_tar_gz(BufReader::new(spool), dest)
}

/// An artifact URL as messages show it: without its query, which holds a run's download
/// token (the controller's artifact server signs each run's URL).
pub fn shown_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The lowercase hex of a `sha256:<hex>` digest (a bare 64-hex string is accepted too).
pub fn parse_digest(digest: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest).to_ascii_lowercase();
    if is_sha256_hex(&hex) { Ok(hex) } else { Err(ArtifactError::InvalidDigest(digest.to_string())) }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_digest(expected_hex: &str, actual_hex: &str) -> Result<()> {
    if expected_hex == actual_hex {
        Ok(())
    } else {
        Err(ArtifactError::DigestMismatch { expected: format!("sha256:{expected_hex}"), actual: format!("sha256:{actual_hex}") })
    }
}

fn check_segment(what: &'static str, value: &str) -> Result<()> {
    if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\\', '\0']) {
        return Err(ArtifactError::InvalidName { what, value: value.to_string() });
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(b) = std::str::from_utf8(hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The inner writer, the hex digest and the byte count.
    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Build the gitignore matcher of an artifact: `.git` always, plus the user's patterns.
fn build_ignore(dir: &Path, ignore: Option<&str>) -> Result<Gitignore> {
    let mut builder = GitignoreBuilder::new(dir);
    for line in ignore.unwrap_or_default().lines() {
        builder.add_line(None, line).map_err(|e| ArtifactError::InvalidIgnore { pattern: line.to_string(), message: e.to_string() })?;
    }
    builder.build().map_err(|e| ArtifactError::InvalidIgnore { pattern: ignore.unwrap_or_default().to_string(), message: e.to_string() })
}

/// One entry to archive, found by the sorted walk.
enum Item {
    Dir,
    File { size: u64, executable: bool },
    Symlink { target: PathBuf },
}

/// Write the deterministic tar.gz of `dir` into `out` and return `out`.
fn write_tar_gz<W: Write>(dir: &Path, ignore: Option<&str>, out: W) -> Result<W> {
    let matcher = build_ignore(dir, ignore)?;
    let canonical_root = fs::canonicalize(dir).map_err(io_err("resolve", dir))?;
    let mut items = Vec::new();
    walk(dir, &canonical_root, Path::new(""), &matcher, &mut items)?;

    let gz = GzBuilder::new().operating_system(255).write(out, Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (rel, item) in &items {
        let mut header = Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match item {
            Item::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, rel, io::empty()).map_err(io_err("archive", dir.join(rel)))?;
            }
            Item::File { size, executable } => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let path = dir.join(rel);
                let file = File::open(&path).map_err(io_err("open", &path))?;
                // A file that changes size while being read fails the archive instead of
                // producing a corrupt one.
                tar.append_data(&mut header, rel, file.take(*size)).map_err(io_err("archive", &path))?;
            }
            Item::Symlink { target } => {
                header.set_entry_type(EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, rel, target).map_err(io_err("archive", dir.join(rel)))?;
            }
        }
    }
    let gz = tar.into_inner().map_err(io_err("finish the archive of", dir))?;
    gz.finish().map_err(io_err("finish the archive of", dir))
}

/// Collect the entries under `dir/rel`, sorted by name, skipping `.git` and ignored paths.
fn walk(root: &Path, canonical_root: &Path, rel: &Path, matcher: &Gitignore, items: &mut Vec<(PathBuf, Item)>) -> Result<()> {
    let here = root.join(rel);
    let mut names: Vec<OsString> = fs::read_dir(&here)
        .map_err(io_err("list", &here))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(io_err("list", &here))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        if name == ".git" {
            continue;
        }
        let rel_path = rel.join(&name);
        let path = root.join(&rel_path);
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        let file_type = meta.file_type();
        if matcher.matched(&rel_path, file_type.is_dir()).is_ignore() {
            continue;
        }
        if file_type.is_dir() {
            items.push((rel_path.clone(), Item::Dir));
            walk(root, canonical_root, &rel_path, matcher, items)?;
        } else if file_type.is_file() {
            let executable = meta.permissions().mode() & 0o111 != 0;
            items.push((rel_path, Item::File { size: meta.len(), executable }));
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("read the symlink", &path))?;
            check_symlink(&rel_path, &target)?;
            // A chain of symlinks can still leave the tree while each looks fine on its own.
            if let Ok(resolved) = fs::canonicalize(&path)
                && !resolved.starts_with(canonical_root)
            {
                return Err(escape_error(&rel_path, &target));
            }
            items.push((rel_path, Item::Symlink { target }));
        } else {
            return Err(ArtifactError::UnsupportedFileType { path: rel_path.display().to_string() });
        }
    }
    Ok(())
}

fn escape_error(link: &Path, target: &Path) -> ArtifactError {
    ArtifactError::SymlinkEscapes { path: link.display().to_string(), target: target.display().to_string() }
}

/// Refuse a symlink at `link` (relative to the tree) whose `target` leaves the tree lexically.
fn check_symlink(link: &Path, target: &Path) -> Result<()> {
    if !link_stays_inside(link, target) {
        return Err(escape_error(link, target));
    }
    Ok(())
}

fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = link.parent().map(|p| p.iter().collect()).unwrap_or_default();
    for component in target.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::Normal(name) => depth.push(name),
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Extract a tar.gz into `dest`, refusing entries that would land outside it.
fn extract_tar_gz(reader: impl Read, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    archive.set_preserve_mtime(false);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(io_err("read the artifact into", dest))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err("read the artifact into", dest))?;
        let path = entry.path().map_err(io_err("read the artifact into", dest))?.into_owned();
        let shown = path.display().to_string();
        let unsafe_entry = |reason| ArtifactError::UnsafeEntry { path: shown.clone(), reason };
        if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(unsafe_entry("its path is absolute or contains `..`"));
        }
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Directory => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io_err("read the artifact into", dest))?
                    .ok_or_else(|| unsafe_entry("a symlink without a target"))?;
                if !link_stays_inside(&path, &target) {
                    return Err(unsafe_entry("a symlink pointing outside the destination"));
                }
            }
            _ => return Err(unsafe_entry("only files, directories and symlinks are unpacked")),
        }
        let unpacked = entry.unpack_in(dest).map_err(io_err("unpack into", dest))?;
        if !unpacked {
            return Err(unsafe_entry("it would land outside the destination"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(path: &Path, content: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    fn tar_gz_bytes(dir: &Path, ignore: Option<&str>) -> Vec<u8> {
        write_tar_gz(dir, ignore, Vec::new()).expect("archive")
    }

    fn entry_names(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(GzDecoder::new(bytes));
        archive.entries().expect("entries").map(|e| e.expect("entry").path().expect("path").display().to_string()).collect()
    }

    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("main.tf"), "resource \"null_resource\" \"a\" {}\n");
        write(&dir.path().join("modules/net/vars.tf"), "variable \"x\" {}\n");
        write(&dir.path().join("scripts/run.sh"), "#!/bin/sh\necho hi\n");
        fs::set_permissions(dir.path().join("scripts/run.sh"), fs::Permissions::from_mode(0o750)).expect("chmod");
        dir
    }

    #[test]
    fn the_same_tree_archives_to_the_same_bytes() {
        let dir = sample_tree();
        assert_eq!(tar_gz_bytes(dir.path(), None), tar_gz_bytes(dir.path(), None));
    }

    #[test]
    fn creation_order_mtimes_and_non_exec_mode_bits_do_not_change_the_bytes() {
        let a = tempfile::tempdir().expect("tempdir");
        write(&a.path().join("b.txt"), "b");
        write(&a.path().join("a/z.txt"), "z");
        write(&a.path().join("a.txt"), "a");

        let b = tempfile::tempdir().expect("tempdir");
        write(&b.path().join("a.txt"), "a");
        write(&b.path().join("a/z.txt"), "z");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(&b.path().join("b.txt"), "b");
        fs::set_permissions(b.path().join("a.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::set_permissions(b.path().join("a"), fs::Permissions::from_mode(0o700)).expect("chmod");

        assert_eq!(tar_gz_bytes(a.path(), None), tar_gz_bytes(b.path(), None));
    }

    #[test]
    fn the_exec_bit_changes_the_bytes() {
        let dir = sample_tree();
        let before = tar_gz_bytes(dir.path(), None);
        fs::set_permissions(dir.path().join("main.tf"), fs::Permissions::from_mode(0o744)).expect("chmod");
        assert_ne!(before, tar_gz_bytes(dir.path(), None));
    }

    #[test]
    fn headers_are_normalised() {
        let dir = sample_tree();
        symlink("main.tf", dir.path().join("link.tf")).expect("symlink");
        let bytes = tar_gz_bytes(dir.path(), None);
        // gzip: no mtime (bytes 4..8), no FNAME flag, unknown OS.
        assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(bytes[3] & 0x08, 0, "no file name in the gzip header");
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(bytes[9], 255);

        let mut archive = tar::Archive::new(GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let h = entry.header();
            let path = entry.path().expect("path").display().to_string();
            assert_eq!(h.mtime().expect("mtime"), 0, "{path}");
            assert_eq!(h.uid().expect("uid"), 0, "{path}");
            assert_eq!(h.gid().expect("gid"), 0, "{path}");
            assert_eq!(h.username().expect("user"), Some(""), "{path}");
            assert_eq!(h.groupname().expect("group"), Some(""), "{path}");
            seen.push((path, h.entry_type(), h.mode().expect("mode")));
        }
        assert_eq!(
            seen,
            vec![
                ("link.tf".to_string(), EntryType::Symlink, 0o777),
                ("main.tf".to_string(), EntryType::Regular, 0o644),
                ("modules".to_string(), EntryType::Directory, 0o755),
                ("modules/net".to_string(), EntryType::Directory, 0o755),
                ("modules/net/vars.tf".to_string(), EntryType::Regular, 0o644),
                ("scripts".to_string(), EntryType::Directory, 0o755),
                ("scripts/run.sh".to_string(), EntryType::Regular, 0o755),
            ]
        );
    }

    #[test]
    fn long_paths_survive_the_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!("{}/{}.tf", "d".repeat(80), "f".repeat(90));
        write(&dir.path().join(&long), "x");
        let names = entry_names(&tar_gz_bytes(dir.path(), None));
        assert!(names.contains(&long), "{names:?}");
    }

    #[test]
    fn git_dir_is_never_archived_and_ignore_patterns_drop_paths() {
        let dir = sample_tree();
        write(&dir.path().join(".git/HEAD"), "ref: refs/heads/main\n");
        write(&dir.path().join("docs/readme.md"), "docs");
        write(&dir.path().join("keep.md"), "keep");
        let names = entry_names(&tar_gz_bytes(dir.path(), Some("# comment\n\n*.md\n!keep.md\n/scripts/\n")));
        assert_eq!(names, vec!["docs", "keep.md", "main.tf", "modules", "modules/net", "modules/net/vars.tf"]);
    }

    #[test]
    fn a_symlink_leaving_the_tree_is_refused() {
        let dir = sample_tree();
        symlink("../../outside", dir.path().join("modules/escape")).expect("symlink");
        let err = write_tar_gz(dir.path(), None, Vec::new()).expect_err("must refuse");
        assert!(matches!(err, ArtifactError::SymlinkEscapes { .. }), "{err}");
        assert!(err.to_string().contains("modules/escape"), "{err}");

        let dir = sample_tree();
        symlink("/etc/passwd", dir.path().join("abs")).expect("symlink");
        assert!(matches!(write_tar_gz(dir.path(), None, Vec::new()), Err(ArtifactError::SymlinkEscapes { .. })));
    }

    #[test]
    fn a_symlink_chain_leaving_the_tree_is_refused() {
        let dir = sample_tree();
        symlink("..", dir.path().join("modules/up")).expect("symlink");
        // Lexically inside (modules/up/.. -> modules), but modules/up is the tree root.
        symlink("up/../..", dir.path().join("modules/sneaky")).expect("symlink");
        let err = write_tar_gz(dir.path(), None, Vec::new()).expect_err("must refuse");
        assert!(err.to_string().contains("modules/sneaky"), "{err}");
    }

    #[test]
    fn symlink_check_is_lexical_and_relative_to_the_link() {
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("../c")));
        assert!(link_stays_inside(Path::new("a/l"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("/c")));
        assert!(link_stays_inside(Path::new("a/l"), Path::new("./x/../y")));
    }

    #[test]
    fn archive_is_written_once_under_its_digest() {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(store_dir.path());
        let dir = sample_tree();
        let first = store.archive_dir("gitrepository", "default", "repo", dir.path(), None).expect("archive");
        let hex = parse_digest(&first.digest).expect("digest");
        assert_eq!(first.path, format!("gitrepository/default/repo/{hex}.tar.gz"));
        let bytes = fs::read(store_dir.path().join(&first.path)).expect("read");
        assert_eq!(bytes.len() as u64, first.size);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), hex);
        let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(store_dir.path().join(&first.path)).expect("stat"));

        let second = store.archive_dir("gitrepository", "default", "repo", dir.path(), None).expect("archive");
        assert_eq!(first, second);
        let inode2 = std::os::unix::fs::MetadataExt::ino(&fs::metadata(store_dir.path().join(&first.path)).expect("stat"));
        assert_eq!(inode, inode2, "the same content is not rewritten");
        let files: Vec<_> = fs::read_dir(store_dir.path().join("gitrepository/default/repo")).expect("ls").collect();
        assert_eq!(files.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn names_with_separators_are_refused() {
        let store = ArtifactStore::new("store");
        let dir = sample_tree();
        for (kind, ns, name) in [("a/b", "ns", "n"), ("k", "..", "n"), ("k", "ns", "")] {
            assert!(matches!(store.archive_dir(kind, ns, name, dir.path(), None), Err(ArtifactError::InvalidName { .. })));
        }
        assert!(matches!(store.local_path("../x"), Err(ArtifactError::InvalidPath(_))));
        assert!(matches!(store.local_path("/x"), Err(ArtifactError::InvalidPath(_))));
    }

    #[test]
    fn an_archive_over_the_size_limit_is_refused_naming_the_limit_and_not_stored() {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let dir = sample_tree();
        let small = ArtifactStore::new(store_dir.path()).with_max_size(64);
        let err = small.archive_dir("k", "ns", "n", dir.path(), None).expect_err("too large");
        assert!(err.to_string().contains("larger than the limit of 64 bytes") && err.to_string().contains("--max-artifact-size"), "{err}");
        let left: Vec<_> = fs::read_dir(small.object_dir("k", "ns", "n").expect("dir")).expect("list").collect();
        assert!(left.is_empty(), "nothing stored: {left:?}");
        assert!(ArtifactStore::new(store_dir.path()).archive_dir("k", "ns", "n", dir.path(), None).is_ok(), "the default fits");
    }

    #[test]
    fn gc_keeps_only_the_named_digests() {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(store_dir.path());
        let dir = sample_tree();
        let old = store.archive_dir("k", "ns", "n", dir.path(), None).expect("archive");
        write(&dir.path().join("new.tf"), "new");
        let new = store.archive_dir("k", "ns", "n", dir.path(), None).expect("archive");
        assert_ne!(old.digest, new.digest);
        let removed = store.gc("k", "ns", "n", &[new.digest.as_str()]).expect("gc");
        assert_eq!(removed, vec![old.path.clone()]);
        assert!(!store.exists(&old.path));
        assert!(store.exists(&new.path));
        assert!(store.gc("k", "ns", "missing", &[]).expect("gc").is_empty());
    }

    #[test]
    fn unpack_round_trips_and_keeps_modes_and_symlinks() {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(store_dir.path());
        let dir = sample_tree();
        symlink("../main.tf", dir.path().join("modules/main.tf")).expect("symlink");
        let art = store.archive_dir("k", "ns", "n", dir.path(), None).expect("archive");
        let out = tempfile::tempdir().expect("tempdir");
        store.unpack(&art.path, &art.digest, out.path()).expect("unpack");
        assert_eq!(fs::read_to_string(out.path().join("modules/net/vars.tf")).expect("read"), "variable \"x\" {}\n");
        let mode = fs::metadata(out.path().join("scripts/run.sh")).expect("stat").permissions().mode();
        assert_ne!(mode & 0o100, 0, "exec bit kept");
        assert_eq!(fs::read_link(out.path().join("modules/main.tf")).expect("link"), Path::new("../main.tf"));

        let out2 = tempfile::tempdir().expect("tempdir");
        let url = store.file_url(&art.path).expect("url");
        store.unpack(&url, &art.digest, out2.path()).expect("unpack by url");
        let out3 = tempfile::tempdir().expect("tempdir");
        let bytes = fs::read(store_dir.path().join(&art.path)).expect("read");
        unpack_verified(&bytes[..], &art.digest, out3.path()).expect("unpack bytes");
        assert!(out3.path().join("main.tf").is_file());
    }

    #[test]
    fn a_digest_mismatch_extracts_nothing() {
        let dir = sample_tree();
        let bytes = tar_gz_bytes(dir.path(), None);
        let wrong = format!("sha256:{}", "0".repeat(64));
        let out = tempfile::tempdir().expect("tempdir");
        let err = unpack_verified(&bytes[..], &wrong, out.path()).expect_err("mismatch");
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(out.path()).expect("ls").count(), 0);
        assert!(matches!(unpack_verified(&bytes[..], "md5:abc", out.path()), Err(ArtifactError::InvalidDigest(_))));
    }

    fn raw_tar_gz(name: &[u8], entry_type: EntryType, link: Option<&[u8]>) -> Vec<u8> {
        let mut header = Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(entry_type);
        header.set_mode(0o644);
        header.set_size(if entry_type == EntryType::Regular { 1 } else { 0 });
        header.set_cksum();
        let mut tar = tar::Builder::new(Vec::new());
        let data: &[u8] = if entry_type == EntryType::Regular { b"x" } else { b"" };
        tar.append(&header, data).expect("append");
        let bytes = tar.into_inner().expect("tar");
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::default());
        gz.write_all(&bytes).expect("gz");
        gz.finish().expect("gz")
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dest = parent.path().join("dest");
        for (name, kind, link) in [
            (&b"../evil"[..], EntryType::Regular, None),
            (&b"/tmp/evil"[..], EntryType::Regular, None),
            (&b"a/../../evil"[..], EntryType::Regular, None),
            (&b"link"[..], EntryType::Symlink, Some(&b"../../etc"[..])),
            (&b"hard"[..], EntryType::Link, Some(&b"/etc/passwd"[..])),
        ] {
            let bytes = raw_tar_gz(name, kind, link);
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            let err = unpack_verified(&bytes[..], &digest, &dest).expect_err("must refuse");
            assert!(matches!(err, ArtifactError::UnsafeEntry { .. }), "{}: {err}", String::from_utf8_lossy(name));
        }
        assert!(!parent.path().join("evil").exists());
    }
}
