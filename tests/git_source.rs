//! The GitRepository source against real repositories: file://, git's smart HTTP behind a
//! small HTTP server that asks for credentials, and ssh through a real sshd.
//!
//! Needs the `git` CLI (with `git http-backend`); the ssh tests need `sshd` and `ssh-keygen`
//! (Debian: `openssh-server`, `openssh-client`). With `CI=true` a missing tool fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use driftless::api::{Artifact, GitRepositoryRef, GitVerificationMode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use testkit::certs::Ca;

use driftless::source::{
    ArtifactError, ArtifactOutcome, ArtifactStore, FetchOutcome, GitAuth, GitError, GitSource, Keyring, Proxy, StoredArtifact,
    Verification, VerifyError,
};

const KIND: &str = "gitrepository";
const NS: &str = "default";
const NAME: &str = "repo";

// ---------------------------------------------------------------------------------------------
// helpers

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a tool the test needs is there; in CI its absence fails the test.
fn have_tool(path: &str, why: &str) -> bool {
    let found = if path.contains('/') {
        Path::new(path).is_file()
    } else {
        Command::new("sh").arg("-c").arg(format!("command -v {path}")).output().is_ok_and(|o| o.status.success())
    };
    if !found {
        assert!(!in_ci(), "{path} is required ({why}) and missing; install it in CI");
        eprintln!("skipping: {path} is not installed ({why})");
    }
    found
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
        .args(["-c", "tag.gpgsign=false", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work repository made with the git CLI.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        Repo { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
        self
    }

    fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "--allow-empty", "-m", message]);
        git(self.path(), &["rev-parse", "HEAD"])
    }

    fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }
}

/// A repository with a first commit holding a few files.
fn sample_repo() -> (Repo, String) {
    let repo = Repo::new();
    repo.write("main.tf", "resource \"null_resource\" \"a\" {}\n")
        .write("modules/net/vars.tf", "variable \"cidr\" {}\n")
        .write("docs/guide.md", "# guide\n")
        .write("README.md", "readme\n")
        .write("scripts/run.sh", "#!/bin/sh\necho run\n");
    fs::set_permissions(repo.path().join("scripts/run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let sha = repo.commit("first");
    (repo, sha)
}

fn branch(name: &str) -> GitRepositoryRef {
    GitRepositoryRef { branch: Some(name.into()), ..Default::default() }
}

fn tag(name: &str) -> GitRepositoryRef {
    GitRepositoryRef { tag: Some(name.into()), ..Default::default() }
}

fn semver(range: &str) -> GitRepositoryRef {
    GitRepositoryRef { semver: Some(range.into()), ..Default::default() }
}

fn commit(sha: &str, on_branch: Option<&str>) -> GitRepositoryRef {
    GitRepositoryRef { commit: Some(sha.into()), branch: on_branch.map(str::to_string), ..Default::default() }
}

/// A store and a cache for one GitRepository object.
struct Env {
    store_dir: tempfile::TempDir,
    cache: tempfile::TempDir,
    store: ArtifactStore,
}

impl Env {
    fn new() -> Self {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::new(store_dir.path());
        Env { store_dir, cache: tempfile::tempdir().expect("tempdir"), store }
    }

    fn source(&self, url: &str, reference: Option<&GitRepositoryRef>) -> GitSource {
        GitSource::new(url, reference, self.cache.path().join("cache")).expect("source").with_timeout(Duration::from_secs(30))
    }

    fn object_files(&self) -> Vec<String> {
        let dir = self.store_dir.path().join(KIND).join(NS).join(NAME);
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Fetch into the store; `last` plays the object's status.
fn fetch(env: &Env, source: &GitSource, ignore: Option<&str>, last: Option<&Artifact>) -> Result<ArtifactOutcome, GitError> {
    source.fetch_artifact(&env.store, KIND, NS, NAME, ignore, last)
}

fn stored(outcome: ArtifactOutcome) -> (String, StoredArtifact) {
    match outcome {
        ArtifactOutcome::Stored { revision, artifact, .. } => (revision, artifact),
        other => panic!("expected a new artifact, got {other:?}"),
    }
}

fn status_artifact(revision: &str, artifact: &StoredArtifact) -> Artifact {
    Artifact {
        path: artifact.path.clone(),
        url: String::new(),
        revision: revision.to_string(),
        digest: artifact.digest.clone(),
        last_update_time: String::new(),
        size: artifact.size,
    }
}

/// Every file under `dir` (relative path → content; symlinks as `-> target`).
fn tree_files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).expect("ls") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(root).expect("rel").display().to_string();
            let meta = fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                out.insert(rel, format!("-> {}", fs::read_link(&path).expect("link").display()));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read_to_string(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn unpacked(env: &Env, artifact: &StoredArtifact) -> (tempfile::TempDir, BTreeMap<String, String>) {
    let out = tempfile::tempdir().expect("tempdir");
    env.store.unpack(&artifact.path, &artifact.digest, out.path()).expect("unpack");
    let files = tree_files(out.path());
    (out, files)
}

fn sha_of(revision: &str) -> &str {
    revision.rsplit_once("sha1:").expect("revision has a sha").1
}

// ---------------------------------------------------------------------------------------------
// file://

#[test]
fn a_branch_fetch_gives_the_flux_revision_and_an_artifact_of_the_tree() {
    let (repo, sha) = sample_repo();
    repo.write(".gitignore", "*.log\n").commit("gitignore");
    let sha2 = repo.git(&["rev-parse", "HEAD"]);
    assert_ne!(sha, sha2);
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));

    let (revision, artifact) = stored(fetch(&env, &source, Some("docs/\n*.md\n"), None).expect("fetch"));
    assert_eq!(revision, format!("main@sha1:{sha2}"));
    assert_eq!(artifact.path, format!("{KIND}/{NS}/{NAME}/{}.tar.gz", artifact.digest.trim_start_matches("sha256:")));
    assert!(env.store.exists(&artifact.path));

    let (out, files) = unpacked(&env, &artifact);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, vec![".gitignore", "main.tf", "modules/net/vars.tf", "scripts/run.sh"]);
    assert_eq!(files["modules/net/vars.tf"], "variable \"cidr\" {}\n");
    assert!(!out.path().join(".git").exists(), ".git is never in the artifact");
    let mode = fs::metadata(out.path().join("scripts/run.sh")).expect("stat").permissions().mode();
    assert_ne!(mode & 0o100, 0, "the exec bit survives");
}

#[test]
fn a_repository_larger_than_the_size_limit_is_refused_naming_it_and_nothing_is_stored() {
    let repo = Repo::new();
    // Incompressible bytes, so neither the pack nor the checkout is small.
    let noise: String = (0..300_000u64).map(|i| char::from(b'a' + ((i.wrapping_mul(2654435761) >> 7) % 26) as u8)).collect();
    repo.write("main.tf", "resource \"null_resource\" \"a\" {}\n").write("blob.txt", &noise).commit("big");
    let env = Env::new();
    let store = env.store.clone().with_max_size(100_000);
    let source = env.source(&repo.url(), Some(&branch("main")));
    let err = source.fetch_artifact(&store, KIND, NS, NAME, None, None).expect_err("over the limit");
    let message = err.to_string();
    assert!(message.contains("limit of 100000 bytes") && message.contains("--max-artifact-size"), "{message}");
    assert!(env.object_files().is_empty(), "no artifact stored: {:?}", env.object_files());
    let fits = env.store.clone().with_max_size(10_000_000);
    stored(source.fetch_artifact(&fits, KIND, NS, NAME, None, None).expect("within a larger limit"));
}

#[test]
fn the_default_ref_is_the_master_branch() {
    let repo = Repo::new();
    repo.git(&["checkout", "-q", "-b", "master"]);
    let sha = repo.write("a.tf", "a").commit("on master");
    let env = Env::new();
    let (revision, _) = stored(fetch(&env, &env.source(&repo.url(), None), None, None).expect("fetch"));
    assert_eq!(revision, format!("master@sha1:{sha}"));
}

#[test]
fn unchanged_revision_makes_no_new_artifact() {
    let (repo, _) = sample_repo();
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    let files_before = env.object_files();
    let mtime_before = fs::metadata(env.store_dir.path().join(&artifact.path)).expect("stat").modified().expect("mtime");

    let last = status_artifact(&revision, &artifact);
    match fetch(&env, &source, None, Some(&last)).expect("fetch again") {
        ArtifactOutcome::Unchanged { revision: again } => assert_eq!(again, revision),
        other => panic!("expected Unchanged, got {other:?}"),
    }
    assert_eq!(env.object_files(), files_before);
    let mtime_after = fs::metadata(env.store_dir.path().join(&artifact.path)).expect("stat").modified().expect("mtime");
    assert_eq!(mtime_before, mtime_after, "the artifact is not rewritten");

    // The same revision whose artifact is gone is fetched again, to the same digest.
    fs::remove_file(env.store_dir.path().join(&artifact.path)).expect("rm");
    let (revision2, artifact2) = stored(fetch(&env, &source, None, Some(&last)).expect("refetch"));
    assert_eq!((revision2, artifact2.digest), (revision, artifact.digest));
}

#[test]
fn unchanged_is_decided_by_the_blocking_fetch_too() {
    let (repo, sha) = sample_repo();
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));
    let revision = format!("main@sha1:{sha}");
    assert!(matches!(source.fetch(Some(&revision), true).expect("fetch"), FetchOutcome::Unchanged { .. }));
    // The caller says the artifact is gone: a checkout it gets.
    match source.fetch(Some(&revision), false).expect("fetch") {
        FetchOutcome::Fetched(checkout) => {
            assert_eq!(checkout.revision, revision);
            assert_eq!(checkout.commit, sha);
            assert!(checkout.path().join("main.tf").is_file());
            assert!(!checkout.path().join(".git").exists());
        }
        other => panic!("expected a checkout, got {other:?}"),
    }
    assert_eq!(source.resolve().expect("resolve").revision(), Some(revision));
}

#[test]
fn a_new_commit_gives_a_new_revision_and_a_new_digest() {
    let (repo, sha1) = sample_repo();
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));
    let (rev1, art1) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(rev1, format!("main@sha1:{sha1}"));

    let sha2 = repo.write("main.tf", "# changed\n").commit("change");
    let (rev2, art2) = stored(fetch(&env, &source, None, Some(&status_artifact(&rev1, &art1))).expect("fetch"));
    assert_eq!(rev2, format!("main@sha1:{sha2}"));
    assert_ne!(art1.digest, art2.digest);
    assert_eq!(unpacked(&env, &art2).1["main.tf"], "# changed\n");
    assert_eq!(env.object_files().len(), 2);

    let removed = env.store.gc(KIND, NS, NAME, &[art2.digest.as_str()]).expect("gc");
    assert_eq!(removed, vec![art1.path.clone()]);
    assert_eq!(env.object_files().len(), 1);
}

#[test]
fn identical_content_at_two_commits_has_the_same_digest() {
    let (repo, _) = sample_repo();
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));
    let (rev1, art1) = stored(fetch(&env, &source, None, None).expect("fetch"));
    let sha2 = repo.commit("empty commit, same tree");
    let (rev2, art2) = stored(fetch(&env, &source, None, Some(&status_artifact(&rev1, &art1))).expect("fetch"));
    assert_eq!(rev2, format!("main@sha1:{sha2}"));
    assert_ne!(rev1, rev2);
    assert_eq!(art1, art2, "same tree, same artifact");
    assert_eq!(env.object_files().len(), 1);

    // Another cache and store agree byte for byte.
    let other = Env::new();
    let (_, art3) = stored(fetch(&other, &other.source(&repo.url(), Some(&branch("main"))), None, None).expect("fetch"));
    assert_eq!(art3.digest, art2.digest);
}

#[test]
fn a_tag_resolves_to_its_commit_annotated_or_not() {
    let (repo, sha1) = sample_repo();
    repo.git(&["tag", "-a", "v1.0.0", "-m", "release"]);
    let sha2 = repo.write("main.tf", "# two\n").commit("two");
    repo.git(&["tag", "light"]);
    repo.write("main.tf", "# three\n").commit("three");

    let env = Env::new();
    let source = env.source(&repo.url(), Some(&tag("v1.0.0")));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("v1.0.0@sha1:{sha1}"), "the commit, not the tag object");
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "resource \"null_resource\" \"a\" {}\n");
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));

    let env = Env::new();
    let source = env.source(&repo.url(), Some(&tag("light")));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("light@sha1:{sha2}"));
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));
}

/// Flux's `sparseCheckout`: only the listed directories are in the artifact (with `ignore`
/// applied inside them), and a directory the revision lacks fails the fetch by name instead of
/// publishing an empty artifact.
#[test]
fn sparse_checkout_keeps_only_the_listed_directories() {
    let (repo, _) = sample_repo();
    repo.write("modules/net/notes.md", "notes\n").write("modules/dns/main.tf", "# dns\n").commit("more modules");
    let env = Env::new();
    let sparse = |dirs: &[&str]| {
        env.source(&repo.url(), Some(&branch("main")))
            .with_sparse_checkout(&dirs.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .expect("sparse dirs")
    };
    let (_, artifact) = stored(fetch(&env, &sparse(&["modules/net", "./scripts/"]), Some("*.md\n"), None).expect("fetch"));
    let (_, files) = unpacked(&env, &artifact);
    assert_eq!(files.keys().map(String::as_str).collect::<Vec<_>>(), vec!["modules/net/vars.tf", "scripts/run.sh"]);

    let err = fetch(&env, &sparse(&["modules/net", "modules/storage"]), None, None).expect_err("no such directory");
    assert!(err.to_string().contains("\"modules/storage\" is not a directory at revision main@sha1:"), "{err}");
    let bad = env.source(&repo.url(), None).with_sparse_checkout(&["../outside".to_string()]).map(|_| ()).expect_err("outside");
    assert!(bad.to_string().contains("spec.sparseCheckout[0]"), "{bad}");
}

/// Flux's `ref.name`: any reference the remote advertises, e.g. a pull request's head, which
/// no branch or tag names; the revision is `<name>@sha1:<commit>`, as Flux writes it.
#[test]
fn a_full_reference_name_such_as_a_pull_request_head_is_fetched() {
    let (repo, _) = sample_repo();
    let pr = repo.write("main.tf", "# proposed\n").commit("proposed");
    repo.git(&["update-ref", "refs/pull/7/head", &pr]);
    repo.git(&["reset", "--quiet", "--hard", "HEAD~1"]);

    let env = Env::new();
    let named = GitRepositoryRef { name: Some("refs/pull/7/head".into()), ..Default::default() };
    let source = env.source(&repo.url(), Some(&named));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("refs/pull/7/head@sha1:{pr}"));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "# proposed\n");
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));

    let missing = GitRepositoryRef { name: Some("refs/pull/8/head".into()), ..Default::default() };
    let err = fetch(&env, &env.source(&repo.url(), Some(&missing)), None, None).expect_err("no such reference");
    assert!(err.to_string().contains("reference \"refs/pull/8/head\" not found"), "{err}");
}

#[test]
fn a_semver_range_picks_the_highest_matching_tag() {
    let repo = Repo::new();
    let mut shas = BTreeMap::new();
    for (tag_name, annotated) in [("v1.0.0", true), ("1.1.0", false), ("v1.2.0-rc.1", true), ("v2.0.0", true), ("v1.1.5", true)] {
        let sha = repo.write("version.txt", tag_name).commit(tag_name);
        if annotated {
            repo.git(&["tag", "-a", tag_name, "-m", tag_name]);
        } else {
            repo.git(&["tag", tag_name]);
        }
        shas.insert(tag_name, sha);
    }
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&semver(">=1.0.0 <2.0.0")));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("v1.1.5@sha1:{}", shas["v1.1.5"]));
    assert_eq!(unpacked(&env, &artifact).1["version.txt"], "v1.1.5");

    let source = env.source(&repo.url(), Some(&semver("~1.1.0 <1.1.5")));
    let (revision, _) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("1.1.0@sha1:{}", shas["1.1.0"]));

    let source = env.source(&repo.url(), Some(&semver(">=3.0.0")));
    let err = fetch(&env, &source, None, None).expect_err("no match");
    assert!(matches!(err, GitError::NoSemverMatch { .. }), "{err}");
    assert!(err.to_string().contains(">=3.0.0") && err.to_string().contains(&repo.url()), "{err}");
}

#[test]
fn a_commit_pin_checks_out_that_commit() {
    let (repo, sha1) = sample_repo();
    let sha2 = repo.write("main.tf", "# two\n").commit("two");
    let env = Env::new();

    let source = env.source(&repo.url(), Some(&commit(&sha1, None)));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("sha1:{sha1}"));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "resource \"null_resource\" \"a\" {}\n");
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));

    let source = env.source(&repo.url(), Some(&commit(&sha1, Some("main"))));
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("main@sha1:{sha1}"));
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));
    let _ = sha2;
}

#[test]
fn a_commit_off_the_pinned_branch_is_refused() {
    let (repo, _) = sample_repo();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let feature_sha = repo.write("feature.tf", "f").commit("feature");
    repo.git(&["checkout", "-q", "main"]);
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&commit(&feature_sha, Some("main"))));
    let err = fetch(&env, &source, None, None).expect_err("not on main");
    assert!(matches!(err, GitError::CommitNotOnBranch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&feature_sha) && message.contains("\"main\""), "{message}");
    // On its own branch it is fine.
    let source = env.source(&repo.url(), Some(&commit(&feature_sha, Some("feature"))));
    let (revision, _) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(revision, format!("feature@sha1:{feature_sha}"));
}

#[test]
fn unknown_branch_tag_or_commit_is_an_error_naming_it() {
    let (repo, _) = sample_repo();
    let env = Env::new();
    let url = repo.url();

    let err = fetch(&env, &env.source(&url, Some(&branch("nope"))), None, None).expect_err("branch");
    assert!(matches!(err, GitError::BranchNotFound { .. }));
    assert_eq!(err.to_string(), format!("branch \"nope\" not found in {url}"));

    let err = fetch(&env, &env.source(&url, Some(&tag("v9.9.9"))), None, None).expect_err("tag");
    assert!(matches!(err, GitError::TagNotFound { .. }));
    assert_eq!(err.to_string(), format!("tag \"v9.9.9\" not found in {url}"));

    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = fetch(&env, &env.source(&url, Some(&commit(missing, None))), None, None).expect_err("commit");
    assert!(matches!(err, GitError::CommitNotFound { .. }));
    assert_eq!(err.to_string(), format!("commit {missing} not found in {url}"));

    let err = GitSource::new(url.as_str(), Some(&commit("abc", None)), env.cache.path()).expect_err("short sha");
    assert!(err.to_string().contains("abc"), "{err}");
    assert_eq!(err.reason(), "InvalidSpec");
}

#[test]
fn a_corrupted_artifact_is_refused_with_a_digest_mismatch() {
    let (repo, _) = sample_repo();
    let env = Env::new();
    let (_, artifact) = stored(fetch(&env, &env.source(&repo.url(), Some(&branch("main"))), None, None).expect("fetch"));
    let file = env.store_dir.path().join(&artifact.path);
    let mut bytes = fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&file, &bytes).expect("write");

    let out = tempfile::tempdir().expect("tempdir");
    let err = env.store.unpack(&artifact.path, &artifact.digest, out.path()).expect_err("corrupt");
    assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&artifact.digest), "{err}");
    assert_eq!(fs::read_dir(out.path()).expect("ls").count(), 0, "nothing extracted");

    let err = driftless::source::unpack_verified(&bytes[..], &artifact.digest, out.path()).expect_err("corrupt bytes");
    assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");
}

#[test]
fn symlinks_in_the_repo_are_kept_and_escaping_ones_refused() {
    let (repo, _) = sample_repo();
    std::os::unix::fs::symlink("../main.tf", repo.path().join("modules/main.tf")).expect("symlink");
    repo.commit("inside link");
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main")));
    let (_, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    assert_eq!(unpacked(&env, &artifact).1["modules/main.tf"], "-> ../main.tf");

    std::os::unix::fs::symlink("../../etc/passwd", repo.path().join("modules/escape")).expect("symlink");
    repo.commit("escaping link");
    let err = fetch(&env, &source, None, None).expect_err("escape");
    assert!(matches!(err, GitError::Artifact(ArtifactError::SymlinkEscapes { .. })), "{err}");
    assert!(err.to_string().contains("modules/escape"), "{err}");
}

#[test]
fn an_unreachable_remote_is_an_error_naming_the_url() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let env = Env::new();
    let err = fetch(&env, &env.source(&url, Some(&branch("main"))), None, None).expect_err("unreachable");
    assert!(matches!(err, GitError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");

    let url = "file:///nonexistent/driftless/repo";
    let err = fetch(&env, &env.source(url, Some(&branch("main"))), None, None).expect_err("missing repo");
    assert!(err.to_string().contains(url), "{err}");
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            // Accept and never answer.
            held.push(conn);
        }
    });
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let env = Env::new();
    let source = env.source(&url, Some(&branch("main"))).with_timeout(Duration::from_secs(1));
    let start = Instant::now();
    let err = fetch(&env, &source, None, None).expect_err("timeout");
    assert!(matches!(err, GitError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "gave up in time: {:?}", start.elapsed());
    assert!(err.to_string().contains(&url) && err.to_string().contains("timed out after 1s"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// smart HTTP behind `git http-backend`

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[derive(Clone)]
enum HttpAuth {
    /// No credentials asked for.
    Open,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

/// `git http-backend` as a CGI behind a minimal HTTP/1.1 server on 127.0.0.1 that asks for
/// credentials, over TLS when started with a rustls config; it counts upload-pack POSTs
/// (object negotiations) and the TLS connections whose client presented a certificate.
struct GitHttpServer {
    port: u16,
    scheme: &'static str,
    root: tempfile::TempDir,
    upload_packs: Arc<AtomicUsize>,
    rejected: Arc<AtomicUsize>,
    client_certs: Arc<AtomicUsize>,
}

impl GitHttpServer {
    fn start(auth: HttpAuth) -> Self {
        Self::start_with(auth, None)
    }

    /// Serve https with `tls` (its certificate, and whether it asks for a client's).
    fn start_tls(auth: HttpAuth, tls: rustls::ServerConfig) -> Self {
        Self::start_with(auth, Some(Arc::new(tls)))
    }

    fn start_with(auth: HttpAuth, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let root = tempfile::tempdir().expect("tempdir");
        let upload_packs = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let client_certs = Arc::new(AtomicUsize::new(0));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (project_root, uploads, rejects, certs) =
            (root.path().to_path_buf(), upload_packs.clone(), rejected.clone(), client_certs.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (project_root, auth, uploads, rejects, certs) =
                    (project_root.clone(), auth.clone(), uploads.clone(), rejects.clone(), certs.clone());
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let served = match tls {
                        None => serve(conn, &project_root, &auth, &uploads, &rejects),
                        Some(config) => rustls::ServerConnection::new(config).map_err(io::Error::other).and_then(|mut session| {
                            let mut conn = conn;
                            while session.is_handshaking() {
                                session.complete_io(&mut conn)?;
                            }
                            if session.peer_certificates().is_some_and(|c| !c.is_empty()) {
                                certs.fetch_add(1, Ordering::SeqCst);
                            }
                            serve(rustls::StreamOwned::new(session, conn), &project_root, &auth, &uploads, &rejects)
                        }),
                    };
                    if let Err(e) = served {
                        eprintln!("test http server: {e}");
                    }
                });
            }
        });
        GitHttpServer { port, scheme, root, upload_packs, rejected, client_certs }
    }

    /// Publish `repo` as `<name>.git`, or update it.
    fn publish(&self, repo: &Repo, name: &str) -> String {
        let bare = self.root.path().join(format!("{name}.git"));
        if bare.exists() {
            repo.git(&["push", "-q", "--force", "--tags", bare.to_str().expect("utf8"), "main"]);
        } else {
            git(self.root.path(), &["clone", "-q", "--bare", repo.path().to_str().expect("utf8"), &format!("{name}.git")]);
        }
        format!("{}://127.0.0.1:{}/{name}.git", self.scheme, self.port)
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { ALPHABET[((n >> shift) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn serve(conn: impl Read + Write, root: &Path, auth: &HttpAuth, uploads: &AtomicUsize, rejects: &AtomicUsize) -> io::Result<()> {
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let body = if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            read_chunked(&mut reader)?
        } else {
            let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        };

        let expected = match auth {
            HttpAuth::Open => None,
            HttpAuth::Basic { user, password } => Some(format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))),
            HttpAuth::Bearer(token) => Some(format!("Bearer {token}")),
        };
        if expected.is_some() && headers.get("authorization") != expected.as_ref() {
            rejects.fetch_add(1, Ordering::SeqCst);
            let writer = reader.get_mut();
            writer.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n")?;
            writer.flush()?;
            continue;
        }

        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if method == "POST" && path.ends_with("/git-upload-pack") {
            uploads.fetch_add(1, Ordering::SeqCst);
        }
        let mut cgi = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", headers.get("content-type").map(String::as_str).unwrap_or_default())
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("GIT_PROTOCOL", headers.get("git-protocol").map(String::as_str).unwrap_or_default())
            .env("HTTP_CONTENT_ENCODING", headers.get("content-encoding").map(String::as_str).unwrap_or_default())
            .env("REMOTE_USER", "test")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = cgi.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || stdin.write_all(&body));
        let output = cgi.wait_with_output()?;
        feeder.join().expect("feeder")?;
        let out = output.stdout;
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
        let split = split.or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
        let (head, content) = match split {
            Some((p, n)) => (String::from_utf8_lossy(&out[..p]).into_owned(), &out[p + n..]),
            None => (String::new(), &out[..]),
        };
        let mut status = "200 OK".to_string();
        let mut response = Vec::new();
        for line in head.lines() {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                Some(_) => response.extend_from_slice(format!("{line}\r\n").as_bytes()),
                None => {}
            }
        }
        let writer = reader.get_mut();
        writer.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", content.len()).as_bytes())?;
        writer.write_all(&response)?;
        writer.write_all(b"\r\n")?;
        writer.write_all(content)?;
        writer.flush()?;
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                reader.read_line(&mut trailer)?;
                if trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn basic_auth(user: &str, password: &str) -> GitAuth {
    let data = BTreeMap::from([("username".to_string(), user.to_string()), ("password".to_string(), password.to_string())]);
    GitAuth::from_secret_data(&data).expect("auth")
}

fn bearer_auth(token: &str) -> GitAuth {
    GitAuth::from_secret_data(&BTreeMap::from([("bearerToken".to_string(), token.to_string())])).expect("auth")
}

#[test]
fn basic_auth_over_http_fetches_with_the_right_credentials() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Basic { user: "flux".into(), password: "s3cr3t-pass".into() });
    let (repo, sha) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(basic_auth("flux", "s3cr3t-pass"))).expect("auth");
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch over http"));
    assert_eq!(revision, format!("main@sha1:{sha}"));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "resource \"null_resource\" \"a\" {}\n");

    let sha2 = repo.write("main.tf", "# http two\n").commit("two");
    server.publish(&repo, "infra");
    let (revision2, _) = stored(fetch(&env, &source, None, Some(&status_artifact(&revision, &artifact))).expect("fetch"));
    assert_eq!(sha_of(&revision2), sha2);
}

#[test]
fn unchanged_over_http_lists_refs_and_downloads_no_objects() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Basic { user: "flux".into(), password: "pw".into() });
    let (repo, _) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(basic_auth("flux", "pw"))).expect("auth");
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch"));
    let uploads = server.upload_packs.load(Ordering::SeqCst);
    assert!(uploads >= 1, "the first fetch downloads objects");

    let outcome = fetch(&env, &source, None, Some(&status_artifact(&revision, &artifact))).expect("fetch again");
    assert!(matches!(outcome, ArtifactOutcome::Unchanged { .. }), "{outcome:?}");
    assert_eq!(server.upload_packs.load(Ordering::SeqCst), uploads, "no object negotiation for an unchanged revision");
}

#[test]
fn wrong_basic_credentials_fail_auth_without_leaking_the_password() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Basic { user: "flux".into(), password: "right-pass".into() });
    let (repo, _) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(basic_auth("flux", "wrong-pass-9876"))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("wrong password");
    let message = err.to_string();
    assert!(matches!(err, GitError::AuthFailed { .. }), "{message}");
    assert_eq!(err.reason(), "AuthenticationFailed");
    assert!(message.contains(&url), "{message}");
    assert!(!message.contains("wrong-pass-9876") && !format!("{err:?}").contains("wrong-pass-9876"), "{message}");
    assert!(server.rejected.load(Ordering::SeqCst) <= 4, "credentials are not retried in a loop");

    // A password in the URL is not shown either.
    let url_with_password = url.replace("http://", "http://flux:url-pass-5555@");
    let source = env.source(&url_with_password, Some(&branch("main")));
    let err = fetch(&env, &source, None, None).expect_err("wrong password in url");
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains("url-pass-5555") && !format!("{err:?}").contains("url-pass-5555"), "{err}");
}

#[test]
fn a_protected_repo_without_credentials_is_an_auth_error() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Basic { user: "flux".into(), password: "pw".into() });
    let (repo, _) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let err = fetch(&env, &env.source(&url, Some(&branch("main"))), None, None).expect_err("no credentials");
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("no") && err.to_string().contains(&url), "{err}");
}

#[test]
fn a_bearer_token_is_sent_and_a_wrong_one_fails_without_leaking() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Bearer("tok-right-1234".into()));
    let (repo, sha) = sample_repo();
    repo.git(&["tag", "-a", "v1.0.0", "-m", "v1"]);
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let source = env.source(&url, Some(&semver("^1"))).with_auth(Some(bearer_auth("tok-right-1234"))).expect("auth");
    let (revision, _) = stored(fetch(&env, &source, None, None).expect("fetch with bearer"));
    assert_eq!(revision, format!("v1.0.0@sha1:{sha}"));

    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(bearer_auth("tok-wrong-5678"))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("wrong token");
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains("tok-wrong-5678") && !format!("{err:?}").contains("tok-wrong-5678"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// https with the Secret's TLS keys (ca.crt, tls.crt + tls.key)

fn secret_auth(pairs: &[(&str, &str)]) -> GitAuth {
    GitAuth::from_secret_data(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).expect("auth")
}

/// The rustls config of a test https server: a certificate for 127.0.0.1 signed by `ca`,
/// asking for a client certificate signed by `client_ca` when given.
fn tls_server_config(ca: &Ca, client_ca: Option<&Ca>) -> rustls::ServerConfig {
    let pair = ca.loopback_serving_cert("git server", &[]).expect("serving cert");
    let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("cert pem");
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).expect("key pem");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(client_ca.cert_pem().as_bytes()) {
                roots.add(cert.expect("ca pem")).expect("root");
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).expect("server cert")
}

#[test]
fn https_with_a_private_ca_needs_it_in_ca_crt_and_fetches_with_it() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let ca = Ca::new("git test CA").expect("ca");
    let server = GitHttpServer::start_tls(HttpAuth::Open, tls_server_config(&ca, None));
    let (repo, sha) = sample_repo();
    let url = server.publish(&repo, "infra");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let env = Env::new();

    // Without the CA: refused, saying where the CA goes.
    let err = fetch(&env, &env.source(&url, Some(&branch("main"))), None, None).expect_err("untrusted certificate");
    let message = err.to_string();
    assert!(message.contains(&url) && message.contains("ca.crt"), "{message}");

    // A CA that did not sign the server's certificate: the same, from driftless's TLS client.
    let other = Ca::new("another CA").expect("ca");
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(secret_auth(&[("ca.crt", &other.cert_pem())]))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("wrong CA");
    let message = err.to_string();
    assert!(matches!(err, GitError::Connect { .. }), "{message}");
    assert!(message.contains("not signed by a trusted CA") && message.contains("ca.crt") && message.contains(&url), "{message}");
    assert!(!message.contains("502"), "the gateway's status is not what the user is told: {message}");

    // With it: fetched, and an unchanged revision is decided by the ref listing alone.
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem())]))).expect("auth");
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch with the CA"));
    assert_eq!(revision, format!("main@sha1:{sha}"));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "resource \"null_resource\" \"a\" {}\n");
    let uploads = server.upload_packs.load(Ordering::SeqCst);
    let again = fetch(&env, &source, None, Some(&status_artifact(&revision, &artifact))).expect("fetch again");
    assert!(matches!(again, ArtifactOutcome::Unchanged { .. }), "{again:?}");
    assert_eq!(server.upload_packs.load(Ordering::SeqCst), uploads);

    // Flux's older key, caFile, is read too.
    let sha2 = repo.write("main.tf", "# two\n").commit("two");
    server.publish(&repo, "infra");
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(secret_auth(&[("caFile", &ca.cert_pem())]))).expect("auth");
    let (revision2, _) = stored(fetch(&env, &source, None, Some(&status_artifact(&revision, &artifact))).expect("fetch with caFile"));
    assert_eq!(sha_of(&revision2), sha2);

    // TLS keys on a URL that is not https are refused, not ignored.
    let err = env.source(&repo.url(), None).with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem())]))).expect_err("file url");
    assert!(err.to_string().contains("https URLs only"), "{err}");
}

#[test]
fn a_silent_https_server_times_out_through_the_gateway_and_its_connection_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let closed = closed_tx.clone();
            // Never answer; report when the client side goes away.
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                let _ = closed.send(());
            });
        }
    });
    let ca = Ca::new("git test CA").expect("ca");
    let url = format!("https://127.0.0.1:{port}/repo.git");
    let env = Env::new();
    let source = env
        .source(&url, Some(&branch("main")))
        .with_timeout(Duration::from_secs(1))
        .with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem())])))
        .expect("auth");
    let start = Instant::now();
    let err = fetch(&env, &source, None, None).expect_err("timeout");
    assert!(matches!(err, GitError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "gave up in time: {:?}", start.elapsed());
    // The gateway of the abandoned fetch stops at the deadline and closes its connection.
    closed_rx.recv_timeout(Duration::from_secs(10)).expect("the gateway's connection to the silent server is closed");
}

#[test]
fn mutual_tls_presents_the_client_certificate_of_tls_crt_and_tls_key() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let ca = Ca::new("git test CA").expect("ca");
    let client_ca = Ca::new("client CA").expect("client ca");
    let server = GitHttpServer::start_tls(
        HttpAuth::Basic { user: "flux".into(), password: "basic-pass-4242".into() },
        tls_server_config(&ca, Some(&client_ca)),
    );
    let (repo, sha) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();
    let client = client_ca.loopback_serving_cert("driftless", &[]).expect("client cert");

    // The CA alone: the server wants a client certificate, and the message says which keys.
    let source = env
        .source(&url, Some(&branch("main")))
        .with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem()), ("username", "flux"), ("password", "basic-pass-4242")])))
        .expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("no client certificate");
    assert!(err.to_string().contains("tls.crt and tls.key"), "{err}");
    assert_eq!(server.client_certs.load(Ordering::SeqCst), 0);

    // A client certificate the server does not trust: refused the same way.
    let stranger = Ca::new("stranger").expect("ca").loopback_serving_cert("x", &[]).expect("cert");
    let source = env
        .source(&url, Some(&branch("main")))
        .with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem()), ("tls.crt", &stranger.cert_pem), ("tls.key", &stranger.key_pem)])))
        .expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("untrusted client certificate");
    assert!(err.to_string().contains("refused the TLS handshake"), "{err}");

    // With tls.crt and tls.key (and basic auth through the same connection): fetched, the
    // certificate was presented, and neither the key nor the password shows anywhere.
    let auth = secret_auth(&[
        ("ca.crt", &ca.cert_pem()),
        ("tls.crt", &client.cert_pem),
        ("tls.key", &client.key_pem),
        ("username", "flux"),
        ("password", "basic-pass-4242"),
    ]);
    let source = env.source(&url, Some(&branch("main"))).with_auth(Some(auth.clone())).expect("auth");
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch with a client certificate"));
    assert_eq!(revision, format!("main@sha1:{sha}"));
    assert_eq!(unpacked(&env, &artifact).1["README.md"], "readme\n");
    assert!(server.client_certs.load(Ordering::SeqCst) >= 1, "the client certificate was presented");
    let key_body: String = client.key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!format!("{auth:?}").contains(&key_body) && !format!("{source:?}").contains(&key_body));

    // A wrong password through the gateway is still an authentication failure, unleaked.
    let wrong = secret_auth(&[
        ("ca.crt", &ca.cert_pem()),
        ("tls.crt", &client.cert_pem),
        ("tls.key", &client.key_pem),
        ("username", "flux"),
        ("password", "wrong-pass-1357"),
    ]);
    let env2 = Env::new();
    let err = fetch(&env2, &env2.source(&url, Some(&branch("main"))).with_auth(Some(wrong)).expect("auth"), None, None).expect_err("wrong");
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("wrong-pass-1357") && !shown.contains(&key_body) && shown.contains(&url), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// proxySecretRef: through a CONNECT proxy on 127.0.0.1

/// A CONNECT proxy that asks for basic credentials and records the target of each tunnel.
struct ConnectProxy {
    port: u16,
    tunnels: Arc<std::sync::Mutex<Vec<String>>>,
    refused: Arc<AtomicUsize>,
}

impl ConnectProxy {
    fn start(user: &str, password: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tunnels = Arc::new(std::sync::Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let (seen, refusals) = (tunnels.clone(), refused.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, refusals, expected) = (seen.clone(), refusals.clone(), expected.clone());
                std::thread::spawn(move || {
                    if let Err(e) = tunnel(conn, &expected, &seen, &refusals) {
                        eprintln!("test proxy: {e}");
                    }
                });
            }
        });
        ConnectProxy { port, tunnels, refused }
    }

    fn secret(&self, user: &str, password: &str) -> Proxy {
        let data = BTreeMap::from([
            ("address".to_string(), format!("http://127.0.0.1:{}", self.port)),
            ("username".to_string(), user.to_string()),
            ("password".to_string(), password.to_string()),
        ]);
        Proxy::from_secret_data(&data).expect("proxy")
    }

    fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().expect("lock").clone()
    }
}

fn tunnel(conn: TcpStream, expected: &str, seen: &std::sync::Mutex<Vec<String>>, refused: &AtomicUsize) -> io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("proxy-authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default().to_string());
    let mut client = reader.into_inner();
    if method != "CONNECT" {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
    }
    if authorization.as_deref() != Some(expected) {
        refused.fetch_add(1, Ordering::SeqCst);
        return client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let upstream = TcpStream::connect(&target)?;
    seen.lock().expect("lock").push(target);
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let (mut client_in, mut upstream_out) = (client.try_clone()?, upstream.try_clone()?);
    let (mut upstream_in, mut client_out) = (upstream, client);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(std::net::Shutdown::Write);
    });
    let _ = io::copy(&mut upstream_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
    Ok(())
}

#[test]
fn a_proxy_secret_sends_the_fetch_through_the_proxy() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let proxy = ConnectProxy::start("proxy-user", "proxy-pass-8080");
    let ca = Ca::new("git test CA").expect("ca");
    let server = GitHttpServer::start_tls(HttpAuth::Open, tls_server_config(&ca, None));
    let (repo, sha) = sample_repo();
    let url = server.publish(&repo, "infra");
    let env = Env::new();

    // https with the Secret's CA, through the proxy.
    let source = env
        .source(&url, Some(&branch("main")))
        .with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem())])))
        .and_then(|s| s.with_proxy(Some(proxy.secret("proxy-user", "proxy-pass-8080"))))
        .expect("source");
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch through the proxy"));
    assert_eq!(revision, format!("main@sha1:{sha}"));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "resource \"null_resource\" \"a\" {}\n");
    let target = format!("127.0.0.1:{}", server.port);
    assert!(!proxy.tunnels().is_empty() && proxy.tunnels().iter().all(|t| *t == target), "{:?}", proxy.tunnels());

    // Plain http with basic auth, through the same proxy.
    let plain = GitHttpServer::start(HttpAuth::Basic { user: "flux".into(), password: "pw-2468".into() });
    let plain_url = plain.publish(&repo, "infra");
    let env2 = Env::new();
    let source = env2
        .source(&plain_url, Some(&branch("main")))
        .with_auth(Some(basic_auth("flux", "pw-2468")))
        .and_then(|s| s.with_proxy(Some(proxy.secret("proxy-user", "proxy-pass-8080"))))
        .expect("source");
    stored(fetch(&env2, &source, None, None).expect("http through the proxy"));
    assert!(proxy.tunnels().contains(&format!("127.0.0.1:{}", plain.port)), "{:?}", proxy.tunnels());

    // Wrong proxy credentials: said so, naming the proxy, never the password.
    let env3 = Env::new();
    let source = env3
        .source(&url, Some(&branch("main")))
        .with_auth(Some(secret_auth(&[("ca.crt", &ca.cert_pem())])))
        .and_then(|s| s.with_proxy(Some(proxy.secret("proxy-user", "wrong-proxy-pass-777"))))
        .expect("source");
    let err = fetch(&env3, &source, None, None).expect_err("refused by the proxy");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&format!("the proxy 127.0.0.1:{} asks for credentials", proxy.port)), "{shown}");
    assert!(!shown.contains("wrong-proxy-pass-777") && !shown.contains("proxy-pass-8080"), "{shown}");
    assert!(proxy.refused.load(Ordering::SeqCst) >= 1);

    // A proxy is for http(s) URLs: an ssh or file URL with one is refused, not ignored.
    let err = env.source(&repo.url(), None).with_proxy(Some(proxy.secret("u", "p"))).expect_err("file url");
    assert!(err.to_string().contains("http(s) URLs only"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// recurseSubmodules

#[test]
fn recurse_submodules_checks_out_each_submodule_at_the_commit_recorded() {
    if !have_tool("git", "git http-backend serves the repository") {
        return;
    }
    let server = GitHttpServer::start(HttpAuth::Open);
    let lib = Repo::new();
    lib.write("net/main.tf", "# lib v1\n").commit("lib v1");
    let lib_url = server.publish(&lib, "lib");
    let app = Repo::new();
    app.write("main.tf", "# app\n");
    app.git(&["submodule", "add", "-q", &lib_url, "vendor/lib"]);
    // As most repositories write it: relative to the superproject's own URL.
    app.git(&["config", "-f", ".gitmodules", "submodule.vendor/lib.url", "../lib.git"]);
    let app_sha = app.commit("app with a submodule");
    let app_url = server.publish(&app, "app");
    let env = Env::new();

    // Without recurseSubmodules the submodule's directory stays out, as in Flux.
    let (_, artifact) = stored(fetch(&env, &env.source(&app_url, Some(&branch("main"))), None, None).expect("fetch"));
    let files = unpacked(&env, &artifact).1;
    assert!(files.contains_key("main.tf") && !files.keys().any(|f| f.starts_with("vendor/lib/")), "{files:?}");

    let env = Env::new();
    let source = env.source(&app_url, Some(&branch("main"))).with_recurse_submodules(true);
    let (revision, artifact) = stored(fetch(&env, &source, None, None).expect("fetch with submodules"));
    assert_eq!(revision, format!("main@sha1:{app_sha}"), "the revision is the superproject's");
    let files = unpacked(&env, &artifact).1;
    assert_eq!(files.get("vendor/lib/net/main.tf").map(String::as_str), Some("# lib v1\n"), "{files:?}");
    assert!(!files.keys().any(|f| f.ends_with("/.git") || f == ".git"), "{files:?}");

    // A new lib commit the superproject does not record changes nothing; recording it does.
    lib.write("net/main.tf", "# lib v2\n").commit("lib v2");
    server.publish(&lib, "lib");
    let last = status_artifact(&revision, &artifact);
    assert!(matches!(fetch(&env, &source, None, Some(&last)).expect("fetch"), ArtifactOutcome::Unchanged { .. }));
    app.git(&["-c", "protocol.file.allow=always", "submodule", "update", "--remote", "-q"]);
    app.commit("lib v2 recorded");
    server.publish(&app, "app");
    let (_, artifact2) = stored(fetch(&env, &source, None, Some(&last)).expect("fetch the new pointer"));
    assert_eq!(unpacked(&env, &artifact2).1.get("vendor/lib/net/main.tf").map(String::as_str), Some("# lib v2\n"));

    // A submodule that points at the controller's own disk is refused by name.
    let evil = Repo::new();
    evil.write("a.tf", "# a\n");
    evil.git(&["submodule", "add", "-q", &lib_url, "vendor/lib"]);
    evil.git(&["config", "-f", ".gitmodules", "submodule.vendor/lib.url", &lib.url()]);
    evil.commit("file submodule");
    let evil_url = server.publish(&evil, "evil");
    let env = Env::new();
    let err = fetch(&env, &env.source(&evil_url, Some(&branch("main"))).with_recurse_submodules(true), None, None).expect_err("file://");
    assert!(err.to_string().contains("submodule") && err.to_string().contains("file://"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// ssh through a real sshd

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// The known_hosts line of this server's host key.
    fn known_hosts(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().expect("type"), fields.next().expect("key"));
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    fn url(&self, repo_path: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, repo_path.display())
    }
}

fn ssh_keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "driftless-test", "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    (fs::read_to_string(&path).expect("private"), fs::read_to_string(path.with_extension("pub")).expect("public"))
}

/// Start sshd on 127.0.0.1 with a fresh host key, letting in `authorized` keys; None (after
/// printing why) when sshd is not installed outside CI.
fn start_sshd(authorized: &str) -> Option<Sshd> {
    if !have_tool(SSHD, "the ssh tests run a real sshd") || !have_tool("ssh-keygen", "the ssh tests make keys") {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    ssh_keygen(dir.path(), "host_key");
    fs::write(dir.path().join("authorized_keys"), authorized).expect("authorized_keys");
    let user = Command::new("id").arg("-un").output().expect("id");
    let user = String::from_utf8_lossy(&user.stdout).trim().to_string();
    // sshd running as root wants its privilege separation directory.
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        fs::create_dir_all("/run/sshd").expect("privilege separation dir");
    }
    let d = dir.path().display();
    let config = format!(
        "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n\
         StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
    );
    fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
    for _attempt in 0..5 {
        let port = free_port();
        let log = fs::File::create(dir.path().join("sshd.log")).expect("log");
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Sshd { child, port, dir, user });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("sshd did not start: {}", fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default());
}

fn ssh_auth(identity: &str, known_hosts: Option<&str>) -> GitAuth {
    let mut data = BTreeMap::from([("identity".to_string(), identity.to_string())]);
    if let Some(known_hosts) = known_hosts {
        data.insert("known_hosts".to_string(), known_hosts.to_string());
    }
    GitAuth::from_secret_data(&data).expect("auth")
}

/// A bare copy of a sample repo for sshd to serve.
fn ssh_served_repo() -> (Repo, tempfile::TempDir, PathBuf, String) {
    let (repo, sha) = sample_repo();
    let served = tempfile::tempdir().expect("tempdir");
    git(served.path(), &["clone", "-q", "--bare", repo.path().to_str().expect("utf8"), "infra.git"]);
    let path = served.path().join("infra.git");
    (repo, served, path, sha)
}

#[test]
fn an_ssh_key_from_memory_fetches_over_ssh_with_known_hosts_checked() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (private, public) = ssh_keygen(keys.path(), "client");
    let Some(sshd) = start_sshd(&public) else { return };
    let (_repo, _served, path, sha) = ssh_served_repo();
    let env = Env::new();
    let source =
        env.source(&sshd.url(&path), Some(&branch("main"))).with_auth(Some(ssh_auth(&private, Some(&sshd.known_hosts())))).expect("auth");
    let result = fetch(&env, &source, None, None);
    let log = fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default();
    let (revision, artifact) = stored(result.unwrap_or_else(|e| panic!("fetch over ssh: {e}\nsshd log:\n{log}")));
    assert_eq!(revision, format!("main@sha1:{sha}"));
    assert_eq!(unpacked(&env, &artifact).1["modules/net/vars.tf"], "variable \"cidr\" {}\n");

    // Without known_hosts the host key cannot be checked: refused, as Flux refuses it.
    let env = Env::new();
    let source = env.source(&sshd.url(&path), Some(&branch("main"))).with_auth(Some(ssh_auth(&private, None))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("no known_hosts, no fetch");
    assert!(matches!(err, GitError::NoKnownHosts { .. }), "{err}");
    assert!(err.to_string().contains("known_hosts") && err.to_string().contains("ssh-keyscan"), "{err}");
    assert_eq!(err.reason(), "AuthenticationFailed");
}

#[test]
fn an_ssh_host_key_missing_from_known_hosts_is_refused() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (private, public) = ssh_keygen(keys.path(), "client");
    let Some(sshd) = start_sshd(&public) else { return };
    let (_repo, _served, path, _) = ssh_served_repo();
    let (_, other_public) = ssh_keygen(keys.path(), "other_host");
    let mut fields = other_public.split_whitespace();
    let wrong = format!("[127.0.0.1]:{} {} {}\n", sshd.port, fields.next().expect("type"), fields.next().expect("key"));
    let env = Env::new();
    let source = env.source(&sshd.url(&path), Some(&branch("main"))).with_auth(Some(ssh_auth(&private, Some(&wrong)))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("unknown host key");
    assert!(matches!(err, GitError::HostKeyRejected { .. }), "{err}");
    assert!(err.to_string().contains(&format!("[127.0.0.1]:{}", sshd.port)), "{err}");
}

#[test]
fn an_unauthorized_ssh_key_is_an_auth_error() {
    let keys = tempfile::tempdir().expect("tempdir");
    let (_, public) = ssh_keygen(keys.path(), "client");
    let (intruder, _) = ssh_keygen(keys.path(), "intruder");
    let Some(sshd) = start_sshd(&public) else { return };
    let (_repo, _served, path, _) = ssh_served_repo();
    let env = Env::new();
    let source =
        env.source(&sshd.url(&path), Some(&branch("main"))).with_auth(Some(ssh_auth(&intruder, Some(&sshd.known_hosts())))).expect("auth");
    let err = fetch(&env, &source, None, None).expect_err("unauthorized key");
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// verify: OpenPGP signatures made by gpg through git

/// A GnuPG home with one signing key (ed25519, no passphrase), for `git commit -S` and
/// `git tag -s`. Its gpg-agent is stopped on drop.
struct Gpg {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf").args(["--kill", "gpg-agent"]).env("GNUPGHOME", self.home.path()).status();
    }
}

impl Gpg {
    fn new(name: &str) -> Gpg {
        // A short path (the system temp dir): gpg-agent's socket lives in the home.
        let home = tempfile::Builder::new().prefix("gpg").tempdir().expect("tempdir");
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .env("GNUPGHOME", home.path())
                .output()
                .expect("run gpg");
            assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        gpg(&["--quick-gen-key", &format!("{name} <{name}@example.com>"), "ed25519", "sign", "never"]);
        let listing = gpg(&["--with-colons", "--list-keys", name]);
        let fingerprint = listing.lines().find_map(|l| l.strip_prefix("fpr:")).map(|l| l.trim_matches(':').to_string()).expect("fpr");
        Gpg { home, fingerprint }
    }

    fn public_key(&self) -> String {
        let out =
            Command::new("gpg").args(["--armor", "--export", &self.fingerprint]).env("GNUPGHOME", self.home.path()).output().expect("gpg");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("armored")
    }

    /// git in `repo` signing with this key.
    fn git(&self, repo: &Repo, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "gpg.program=gpg"])
            .args(["-c", &format!("user.signingkey={}", self.fingerprint)])
            .args(args)
            .current_dir(repo.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", self.home.path())
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn signed_commit(&self, repo: &Repo, message: &str) -> String {
        self.git(repo, &["add", "-A"]);
        self.git(repo, &["commit", "-q", "-S", "--allow-empty", "-m", message]);
        repo.git(&["rev-parse", "HEAD"])
    }

    fn signed_tag(&self, repo: &Repo, name: &str) {
        self.git(repo, &["tag", "-s", name, "-m", &format!("release {name}")]);
    }
}

fn have_gpg() -> bool {
    have_tool("gpg", "gpg signs the commits and tags of the verify tests") && have_tool("gpgconf", "gpgconf stops gpg's agent")
}

/// A `verify` of `mode` trusting the keys of `signers`, as a Secret `default/keys` gives them.
fn verification(mode: GitVerificationMode, signers: &[&Gpg]) -> Verification {
    let data = signers.iter().enumerate().map(|(i, g)| (format!("key{i}.asc"), g.public_key())).collect();
    Verification { mode, keyring: Keyring::from_secret_data("default/keys", &data).expect("keys") }
}

fn verify_error(result: Result<ArtifactOutcome, GitError>) -> VerifyError {
    match result {
        Err(GitError::Verify(e)) => e,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn a_signed_commit_verifies_in_mode_head_naming_the_key() {
    if !have_gpg() {
        return;
    }
    let (alice, bob) = (Gpg::new("alice"), Gpg::new("bob"));
    let (repo, _) = sample_repo();
    let sha = alice.signed_commit(repo.write("main.tf", "# signed\n"), "signed");
    let env = Env::new();
    let source =
        env.source(&repo.url(), Some(&branch("main"))).with_verification(Some(verification(GitVerificationMode::Head, &[&bob, &alice])));
    let ArtifactOutcome::Stored { revision, artifact, verified, .. } = fetch(&env, &source, None, None).expect("verified") else {
        panic!("a new artifact")
    };
    assert_eq!(revision, format!("main@sha1:{sha}"));
    let verified = verified.expect("what was verified");
    assert_eq!(verified, format!("verified signature of commit {sha} with key {}", alice.fingerprint));
    assert_eq!(unpacked(&env, &artifact).1["main.tf"], "# signed\n");
}

#[test]
fn an_unsigned_commit_or_one_signed_by_another_key_makes_no_artifact() {
    if !have_gpg() {
        return;
    }
    let (alice, bob) = (Gpg::new("alice"), Gpg::new("bob"));
    let (repo, unsigned) = sample_repo();
    let env = Env::new();
    let source = env.source(&repo.url(), Some(&branch("main"))).with_verification(Some(verification(GitVerificationMode::Head, &[&alice])));

    let err = verify_error(fetch(&env, &source, None, None));
    let message = err.to_string();
    assert_eq!(err.reason(), "InvalidCommitSignature");
    assert!(message.contains(&format!("commit {unsigned} of {}", repo.url())) && message.contains("is not signed"), "{message}");
    assert!(env.object_files().is_empty(), "no artifact of an unverified revision: {:?}", env.object_files());

    let by_bob = bob.signed_commit(repo.write("main.tf", "# bob\n"), "by bob");
    let err = verify_error(fetch(&env, &source, None, None));
    let message = err.to_string();
    assert_eq!(err.reason(), "InvalidCommitSignature");
    assert!(message.contains(&format!("commit {by_bob} of {}", repo.url())), "{message}");
    assert!(message.contains("not verified by any key of Secret default/keys") && message.contains(&bob.fingerprint), "{message}");
    assert!(env.object_files().is_empty(), "{:?}", env.object_files());

    // Trusting bob too, the same revision verifies.
    let source = source.with_verification(Some(verification(GitVerificationMode::Head, &[&alice, &bob])));
    let (revision, _) = stored(fetch(&env, &source, None, None).expect("bob is trusted now"));
    assert_eq!(revision, format!("main@sha1:{by_bob}"));
}

#[test]
fn a_signed_annotated_tag_verifies_in_mode_tag_and_with_its_commit_in_tag_and_head() {
    if !have_gpg() {
        return;
    }
    let alice = Gpg::new("alice");
    let (repo, unsigned) = sample_repo();
    alice.signed_tag(&repo, "v1.0.0");
    let env = Env::new();

    let tag_only = env.source(&repo.url(), Some(&tag("v1.0.0"))).with_verification(Some(verification(GitVerificationMode::Tag, &[&alice])));
    let ArtifactOutcome::Stored { revision, verified, .. } = fetch(&env, &tag_only, None, None).expect("tag verified") else {
        panic!("a new artifact")
    };
    assert_eq!(revision, format!("v1.0.0@sha1:{unsigned}"));
    assert_eq!(verified.as_deref(), Some(format!("verified signature of tag \"v1.0.0\" with key {}", alice.fingerprint).as_str()));

    // TagAndHEAD wants the commit signed too.
    let env = Env::new();
    let both =
        env.source(&repo.url(), Some(&tag("v1.0.0"))).with_verification(Some(verification(GitVerificationMode::TagAndHead, &[&alice])));
    let err = verify_error(fetch(&env, &both, None, None));
    assert_eq!(err.reason(), "InvalidCommitSignature", "{err}");
    assert!(env.object_files().is_empty());

    let signed = alice.signed_commit(repo.write("main.tf", "# v2\n"), "v2");
    alice.signed_tag(&repo, "v2.0.0");
    let both =
        env.source(&repo.url(), Some(&semver(">=2.0.0"))).with_verification(Some(verification(GitVerificationMode::TagAndHead, &[&alice])));
    let ArtifactOutcome::Stored { revision, verified, .. } = fetch(&env, &both, None, None).expect("both verified") else {
        panic!("a new artifact")
    };
    assert_eq!(revision, format!("v2.0.0@sha1:{signed}"));
    let fpr = &alice.fingerprint;
    assert_eq!(
        verified.expect("verified"),
        format!("verified signature of tag \"v2.0.0\" with key {fpr} and commit {signed} with key {fpr}")
    );
}

#[test]
fn mode_tag_refuses_a_lightweight_or_unsigned_tag_a_tag_by_another_key_and_a_branch() {
    if !have_gpg() {
        return;
    }
    let (alice, bob) = (Gpg::new("alice"), Gpg::new("bob"));
    let (repo, _) = sample_repo();
    repo.git(&["tag", "light"]);
    repo.git(&["tag", "-a", "plain", "-m", "not signed"]);
    bob.signed_tag(&repo, "by-bob");
    let env = Env::new();
    let mode_tag =
        |r: GitRepositoryRef| env.source(&repo.url(), Some(&r)).with_verification(Some(verification(GitVerificationMode::Tag, &[&alice])));

    let err = verify_error(fetch(&env, &mode_tag(tag("light")), None, None));
    assert_eq!(err.reason(), "InvalidGitObject");
    assert!(err.to_string().contains(&format!("tag \"light\" of {} is a lightweight tag", repo.url())), "{err}");

    let err = verify_error(fetch(&env, &mode_tag(tag("plain")), None, None));
    assert_eq!(err.reason(), "InvalidGitObject");
    assert!(err.to_string().contains("tag \"plain\"") && err.to_string().contains("is not signed"), "{err}");

    let err = verify_error(fetch(&env, &mode_tag(tag("by-bob")), None, None));
    assert_eq!(err.reason(), "InvalidTagSignature");
    assert!(err.to_string().contains("tag \"by-bob\"") && err.to_string().contains(&bob.fingerprint), "{err}");

    let err = verify_error(fetch(&env, &mode_tag(branch("main")), None, None));
    assert_eq!(err.reason(), "InvalidVerificationMode");
    assert!(err.to_string().contains("branch \"main\"") && err.to_string().contains("is not a tag"), "{err}");
    assert!(env.object_files().is_empty(), "{:?}", env.object_files());
}

/// `driftless` on a local store in `dir`: (success, stdout + stderr).
fn driftless(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_driftless"))
        .arg("--store")
        .arg(dir.join("store"))
        .args(args)
        .env_remove("DRIFTLESS_STORE")
        .output()
        .expect("driftless");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn get_gitrepository(dir: &Path, name: &str) -> serde_json::Value {
    let (ok, out) = driftless(dir, &["get", "gitrepository", name, "-o", "json"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).expect("json")
}

/// A condition's (status, reason, message).
fn condition(object: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    let c = object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Some((text(&c["status"]), text(&c["reason"]), text(&c["message"])))
}

/// The whole sequence on a local store, as a user runs it: a verified revision publishes
/// its artifact with SourceVerified and status.sourceVerificationMode; an unsigned one
/// keeps the last artifact and says why; a Secret that is missing is named.
#[test]
fn a_gitrepository_with_verify_reports_source_verified_on_a_local_store() {
    if !have_gpg() {
        return;
    }
    let alice = Gpg::new("alice");
    let (repo, _) = sample_repo();
    let signed = alice.signed_commit(repo.write("main.tf", "# signed\n"), "signed");
    let dir = tempfile::tempdir().expect("tempdir");
    let key: String = alice.public_key().lines().map(|l| format!("    {l}\n")).collect();
    let objects = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: trusted-keys}}\nstringData:\n  alice.asc: |\n{key}---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {{name: app}}\nspec:\n  url: {}\n  interval: 1h\n  ref: {{branch: main}}\n  verify:\n    mode: head\n    secretRef: {{name: trusted-keys}}\n",
        repo.url()
    );
    fs::write(dir.path().join("objects.yaml"), &objects).expect("write");
    let (ok, out) = driftless(dir.path(), &["apply", "-f", dir.path().join("objects.yaml").to_str().expect("utf8")]);
    assert!(ok, "{out}");

    let (ok, out) = driftless(dir.path(), &["reconcile", "gitrepository", "app"]);
    assert!(ok, "{out}");
    let object = get_gitrepository(dir.path(), "app");
    let (status, reason, message) = condition(&object, "SourceVerified").expect("SourceVerified");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Succeeded"), "{object}");
    assert_eq!(message, format!("verified signature of commit {signed} with key {}", alice.fingerprint));
    assert_eq!(object["status"]["sourceVerificationMode"], "HEAD", "Flux's older head is HEAD: {object}");
    assert_eq!(condition(&object, "Ready").expect("Ready").0, "True");
    let artifact = object["status"]["artifact"].clone();
    assert_eq!(artifact["revision"], format!("main@sha1:{signed}"));

    // An unsigned commit on top: not Ready, the verified artifact stays.
    let unsigned = repo.write("main.tf", "# unsigned\n").commit("unsigned");
    driftless(dir.path(), &["reconcile", "gitrepository", "app"]);
    let object = get_gitrepository(dir.path(), "app");
    let (status, reason, message) = condition(&object, "SourceVerified").expect("SourceVerified");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidCommitSignature"), "{object}");
    assert!(message.contains(&format!("commit {unsigned} of {}", repo.url())) && message.contains("not signed"), "{message}");
    let (status, reason, _) = condition(&object, "Ready").expect("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidCommitSignature"));
    assert_eq!(object["status"]["artifact"], artifact, "no artifact of the unsigned revision");

    // The Secret gone: named.
    let (ok, out) = driftless(dir.path(), &["delete", "secret", "trusted-keys"]);
    assert!(ok, "{out}");
    driftless(dir.path(), &["reconcile", "gitrepository", "app"]);
    let object = get_gitrepository(dir.path(), "app");
    let (status, reason, message) = condition(&object, "SourceVerified").expect("SourceVerified");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "VerificationError"), "{object}");
    assert!(message.contains("spec.verify.secretRef") && message.contains("default/trusted-keys"), "{message}");
    assert_eq!(condition(&object, "Ready").expect("Ready").0, "False");
}
