//! The GitRepository source: resolve a ref by listing the remote, fetch only when the commit
//! changed, and check the commit's tree out for the artifact store.
//!
//! Everything here is blocking (git2 is): call it from `tokio::task::spawn_blocking`.
//!
//! # Guarantees
//! - The wanted commit is resolved from the remote's advertised refs first (no objects are
//!   downloaded); when it equals the last revision and its artifact still exists the result is
//!   [`FetchOutcome::Unchanged`] and nothing else happens.
//! - Objects are fetched into a per-repository bare cache (`cache_dir`), reused across fetches,
//!   so a new commit downloads only what the cache lacks. Shallow fetches are not used. Run
//!   one fetch at a time per cache (one per GitRepository object); the cache is never pruned.
//! - Revisions use Flux v1's format: `<branch>@sha1:<sha>`, `<tag>@sha1:<sha>` (also for a
//!   semver range: the chosen tag), `sha1:<sha>` for a bare commit.
//! - Errors name the URL (without any password in it) and the ref, and never contain a
//!   credential: every libgit2 message is scrubbed of the secret values before it is kept.
//! - The whole operation is bounded by the timeout: progress callbacks cancel it, and a
//!   server that goes silent is abandoned when the timeout (plus a short grace) is over. The
//!   abandoned libgit2 call finishes on its own thread; a later fetch of the same cache may
//!   then meet a locked ref and fail once.
//!
//! # Auth
//! - https/http: `username` + `password` (basic), or `bearerToken` (sent as
//!   `Authorization: Bearer` on every request). Basic auth over plain `http://` is allowed here
//!   (Flux asks for `insecure: true` for that); the tests rely on it.
//! - ssh: `identity` (a private key, PEM or OpenSSH format) read from memory, `password` as
//!   its passphrase, the user from the URL (else `username`, else `git`). When `known_hosts` is
//!   given, the server's host key must match one of its entries (plain host patterns, `[host]:port`
//!   for ports other than 22, `*`/`?` wildcards and `!` negations, `@revoked`); hashed host names
//!   (`|1|...`) and `@cert-authority` lines are not understood and never match. Without
//!   `known_hosts` any host key is accepted.
//! - https certificates are checked by libgit2 against the system's CAs. No proxy is used.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, FetchOptions, ObjectType, Oid, RemoteCallbacks,
    Repository,
};
use semver::{Version, VersionReq};

use super::artifact::{ArtifactError, ArtifactStore, StoredArtifact};
use crate::api::{Artifact, GitRepositoryRef};

/// How long past the timeout a silent server is waited for before the fetch is abandoned.
const HARD_STOP_GRACE: Duration = Duration::from_millis(500);
/// Flux's default timeout of one Git operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Flux's default branch when no ref is given.
pub const DEFAULT_BRANCH: &str = "master";
/// A refspec that matches nothing: connecting with it lists the remote's refs and downloads nothing.
const LIST_ONLY_REFSPEC: &str = "refs/driftless/list-only:refs/driftless/list-only";

/// Errors of the Git source. Messages name the URL and the ref, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid ref: {0}")]
    InvalidRef(String),
    #[error("invalid git credentials: {0}")]
    InvalidAuth(String),
    #[error("branch {branch:?} not found in {url}")]
    BranchNotFound { branch: String, url: String },
    #[error("tag {tag:?} not found in {url}")]
    TagNotFound { tag: String, url: String },
    #[error("invalid semver range {range:?}: {reason}")]
    InvalidSemver { range: String, reason: String },
    #[error("no tag in {url} matches semver range {range:?}")]
    NoSemverMatch { range: String, url: String },
    #[error("commit {commit} not found in {url}")]
    CommitNotFound { commit: String, url: String },
    #[error("commit {commit} is not on branch {branch:?} of {url}")]
    CommitNotOnBranch { commit: String, branch: String, url: String },
    #[error("authentication to {url} failed: {detail}")]
    AuthFailed { url: String, detail: String },
    #[error("host key of {host} does not match known_hosts; refusing to fetch {url}")]
    HostKeyRejected { host: String, url: String },
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("fetching {reference} from {url} timed out after {}", humantime::format_duration(*.after))]
    Timeout { reference: String, url: String, after: Duration },
    #[error("fetching {reference} from {url} failed: {detail}")]
    Fetch { reference: String, url: String, detail: String },
    #[error("git cache {}: {detail}", .path.display())]
    Cache { path: PathBuf, detail: String },
    #[error("checking out {commit} of {url}: {detail}")]
    Checkout { commit: String, url: String, detail: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl GitError {
    /// The condition reason this error maps to (Flux's vocabulary).
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::InvalidRef(_) | GitError::InvalidSemver { .. } => "InvalidSpec",
            GitError::InvalidAuth(_) | GitError::AuthFailed { .. } | GitError::HostKeyRejected { .. } => "AuthenticationFailed",
            GitError::Cache { .. } | GitError::Artifact(_) => "StorageOperationFailed",
            _ => "GitOperationFailed",
        }
    }
}

pub type Result<T, E = GitError> = std::result::Result<T, E>;

/// Credentials for a Git remote, as Flux reads them from a Secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GitAuth {
    pub username: Option<String>,
    /// Basic auth password (https), or the passphrase of `identity` (ssh).
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// A private key (PEM or OpenSSH format) for ssh.
    pub identity: Option<String>,
    /// known_hosts lines the ssh server's host key must match.
    pub known_hosts: Option<String>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("bearer_token", &set(&self.bearer_token))
            .field("identity", &set(&self.identity))
            .field("known_hosts", &self.known_hosts.as_ref().map(|k| k.lines().count()))
            .finish()
    }
}

impl GitAuth {
    /// Read Flux's Secret keys: `username`, `password`, `bearerToken`, `identity`, `known_hosts`.
    /// Empty values count as absent; other keys are ignored.
    ///
    /// # Errors
    /// A bearer token together with a username or password, a password without a username
    /// (and without an identity it could unlock), and a bearer token that cannot be a header value.
    pub fn from_secret_data(data: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty()).cloned();
        let auth = GitAuth {
            username: get("username"),
            password: get("password"),
            bearer_token: get("bearerToken").map(|t| t.trim().to_string()),
            identity: get("identity"),
            known_hosts: get("known_hosts"),
        };
        auth.validate()?;
        Ok(auth)
    }

    fn validate(&self) -> Result<()> {
        if self.bearer_token.is_some() && (self.username.is_some() || self.password.is_some()) {
            return Err(GitError::InvalidAuth("bearerToken cannot be combined with username/password: use one or the other".into()));
        }
        if self.password.is_some() && self.username.is_none() && self.identity.is_none() {
            return Err(GitError::InvalidAuth("password is set but username is not".into()));
        }
        if let Some(token) = &self.bearer_token
            && token.chars().any(|c| c.is_control())
        {
            return Err(GitError::InvalidAuth("bearerToken contains control characters".into()));
        }
        Ok(())
    }

    /// Every secret value, to scrub from messages.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        [&self.password, &self.bearer_token, &self.identity].into_iter().flatten().map(String::as_str)
    }
}

/// Which revision to fetch, with Flux's precedence applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitReference {
    Branch(String),
    Tag(String),
    /// A semver range over the tags; the highest matching tag wins.
    Semver(String),
    /// A full commit SHA, optionally required to be on `branch`.
    Commit {
        sha: String,
        branch: Option<String>,
    },
}

impl GitReference {
    /// From a spec's `ref`: commit, then semver, then tag, then branch; `master` when empty.
    pub fn from_spec(reference: Option<&GitRepositoryRef>) -> Result<Self> {
        let r = reference.cloned().unwrap_or_default();
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(sha) = non_empty(r.commit) {
            let sha = sha.trim().to_ascii_lowercase();
            if Oid::from_str(&sha).is_err() || sha.len() != 40 {
                return Err(GitError::InvalidRef(format!("commit {sha:?} is not a full 40-hex SHA-1")));
            }
            return Ok(GitReference::Commit { sha, branch: non_empty(r.branch) });
        }
        if let Some(range) = non_empty(r.semver) {
            parse_semver_range(&range)?;
            return Ok(GitReference::Semver(range));
        }
        if let Some(tag) = non_empty(r.tag) {
            return Ok(GitReference::Tag(tag));
        }
        Ok(GitReference::Branch(non_empty(r.branch).unwrap_or_else(|| DEFAULT_BRANCH.to_string())))
    }
}

impl fmt::Display for GitReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitReference::Branch(b) => write!(f, "branch {b:?}"),
            GitReference::Tag(t) => write!(f, "tag {t:?}"),
            GitReference::Semver(r) => write!(f, "semver range {r:?}"),
            GitReference::Commit { sha, branch: None } => write!(f, "commit {sha}"),
            GitReference::Commit { sha, branch: Some(b) } => write!(f, "commit {sha} on branch {b:?}"),
        }
    }
}

/// What the remote's refs say the wanted revision is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The full ref fetched (`refs/heads/main`, `refs/tags/v1.2.0`), none for a bare commit.
    pub refname: Option<String>,
    /// The branch or tag name that prefixes the revision.
    pub label: Option<String>,
    /// The commit, when the listing (or the cache) tells it: an annotated tag the server did
    /// not peel and the cache does not hold is known only after the fetch.
    pub commit: Option<String>,
    /// What the ref points at now (for a commit pinned to a branch: the branch's tip).
    tip: Option<Oid>,
}

impl Resolved {
    /// The revision string, when the commit is known.
    pub fn revision(&self) -> Option<String> {
        self.commit.as_deref().map(|c| revision(self.label.as_deref(), c))
    }
}

fn revision(label: Option<&str>, commit: &str) -> String {
    match label {
        Some(label) => format!("{label}@sha1:{commit}"),
        None => format!("sha1:{commit}"),
    }
}

/// A commit's tree checked out into a temp dir (removed on drop).
#[derive(Debug)]
pub struct Checkout {
    /// Flux v1 revision, e.g. `main@sha1:<sha>`.
    pub revision: String,
    /// The commit's full SHA-1.
    pub commit: String,
    dir: tempfile::TempDir,
}

impl Checkout {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keep the directory beyond this value's life (the caller removes it).
    pub fn into_temp_dir(self) -> tempfile::TempDir {
        self.dir
    }
}

/// The result of [`GitSource::fetch`].
#[derive(Debug)]
pub enum FetchOutcome {
    /// The remote still points at the last revision and its artifact exists: nothing fetched.
    Unchanged {
        revision: String,
    },
    Fetched(Checkout),
}

/// The result of [`GitSource::fetch_artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactOutcome {
    Unchanged { revision: String },
    Stored { revision: String, commit: String, artifact: StoredArtifact },
}

/// One Git repository to fetch: URL, ref, credentials, timeout and its object cache.
#[derive(Debug, Clone)]
pub struct GitSource {
    url: String,
    reference: GitReference,
    auth: Option<GitAuth>,
    timeout: Duration,
    cache_dir: PathBuf,
}

impl GitSource {
    /// A source for `url` at `reference` (Flux's default `master` branch when `None`), caching
    /// objects in the bare repository at `cache_dir` (created when missing).
    pub fn new(url: impl Into<String>, reference: Option<&GitRepositoryRef>, cache_dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            url: url.into(),
            reference: GitReference::from_spec(reference)?,
            auth: None,
            timeout: DEFAULT_TIMEOUT,
            cache_dir: cache_dir.into(),
        })
    }

    pub fn with_auth(mut self, auth: Option<GitAuth>) -> Result<Self> {
        if let Some(auth) = &auth {
            auth.validate()?;
        }
        self.auth = auth;
        Ok(self)
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn reference(&self) -> &GitReference {
        &self.reference
    }

    /// The URL as shown in messages: without a password in it.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// List the remote's refs and resolve the wanted revision, downloading no objects.
    /// (A bare commit pin is resolved without contacting the remote.)
    pub fn resolve(&self) -> Result<Resolved> {
        self.with_deadline(|this, deadline| {
            let repo = this.open_cache()?;
            let ctx = CallContext::new(deadline);
            this.resolve_in(&repo, &ctx)
        })
    }

    /// Fetch the wanted revision and check it out, unless it is `last_revision` and the
    /// caller says that revision's artifact still exists.
    ///
    /// `Unchanged` only says the commit is the same; if anything else that shapes the artifact
    /// changed (the ignore patterns), pass `artifact_exists = false`.
    pub fn fetch(&self, last_revision: Option<&str>, artifact_exists: bool) -> Result<FetchOutcome> {
        let last = last_revision.filter(|_| artifact_exists).map(str::to_string);
        self.with_deadline(move |this, deadline| this.fetch_in(last.as_deref(), deadline))
    }

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

    /// Run `work` on its own thread and give up on it when the timeout (plus a grace) is over.
    fn with_deadline<T: Send + 'static>(&self, work: impl FnOnce(&GitSource, Instant) -> Result<T> + Send + 'static) -> Result<T> {
        let this = self.clone();
        let start = Instant::now();
        let deadline = start.checked_add(self.timeout).unwrap_or_else(|| start + Duration::from_secs(86400 * 365));
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("driftless-git".into())
            .spawn(move || {
                // The receiver is gone when the caller gave up; the result is dropped then.
                let _ = tx.send(work(&this, deadline));
            })
            .map_err(|e| self.fetch_error(format!("cannot start the git worker thread: {e}")))?;
        match rx.recv_timeout(self.timeout.saturating_add(HARD_STOP_GRACE)) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.timeout_error()),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.fetch_error("the git worker thread panicked".into())),
        }
    }

    fn timeout_error(&self) -> GitError {
        GitError::Timeout { reference: self.reference.to_string(), url: self.display_url(), after: self.timeout }
    }

    fn fetch_error(&self, detail: String) -> GitError {
        GitError::Fetch { reference: self.reference.to_string(), url: self.display_url(), detail }
    }

    fn fetch_in(&self, last: Option<&str>, deadline: Instant) -> Result<FetchOutcome> {
        let repo = self.open_cache()?;
        let ctx = CallContext::new(deadline);
        let resolved = self.resolve_in(&repo, &ctx)?;
        if let (Some(last), Some(expected)) = (last, resolved.revision())
            && last == expected
            && self.still_valid_locally(&repo, &resolved)
        {
            tracing::debug!(url = %self.display_url(), revision = %expected, "git revision unchanged");
            return Ok(FetchOutcome::Unchanged { revision: expected });
        }

        let commit = match &self.reference {
            GitReference::Commit { sha, branch: None } => {
                let oid = Oid::from_str(sha).map_err(|e| GitError::InvalidRef(e.message().to_string()))?;
                if repo.find_commit(oid).is_err() {
                    self.fetch_refspecs(&repo, &ctx, &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"])?;
                }
                repo.find_commit(oid).map_err(|_| GitError::CommitNotFound { commit: sha.clone(), url: self.display_url() })?.id()
            }
            _ => {
                let refname = resolved.refname.as_deref().unwrap_or_default();
                let refspec = format!("+{refname}:{refname}");
                self.fetch_refspecs(&repo, &ctx, &[refspec.as_str()])?;
                let tip = repo
                    .find_reference(refname)
                    .and_then(|r| r.peel_to_commit())
                    .map_err(|e| self.fetch_error(format!("{refname} did not resolve to a commit after the fetch: {}", e.message())))?
                    .id();
                match &self.reference {
                    GitReference::Commit { sha, branch: Some(branch) } => self.commit_on_branch(&repo, sha, branch, tip)?,
                    _ => tip,
                }
            }
        };
        let commit = commit.to_string();
        let revision = revision(resolved.label.as_deref(), &commit);
        if last == Some(revision.as_str()) {
            // A tag the server did not peel: resolved only now, and unchanged after all.
            return Ok(FetchOutcome::Unchanged { revision });
        }
        let dir = self.checkout(&repo, &commit)?;
        tracing::debug!(url = %self.display_url(), %revision, "git revision fetched");
        Ok(FetchOutcome::Fetched(Checkout { revision, commit, dir }))
    }

    /// For a commit pinned to a branch, a same revision is unchanged only while the commit is
    /// still on the branch; decided from the cache when it holds both, else by fetching.
    fn still_valid_locally(&self, repo: &Repository, resolved: &Resolved) -> bool {
        match (&self.reference, &resolved.refname) {
            (GitReference::Commit { sha, branch: Some(_) }, Some(_)) => {
                let (Ok(commit), Some(tip)) = (Oid::from_str(sha), resolved.tip) else {
                    return false;
                };
                tip == commit
                    || (repo.find_commit(tip).is_ok()
                        && repo.find_commit(commit).is_ok()
                        && repo.graph_descendant_of(tip, commit).unwrap_or(false))
            }
            _ => true,
        }
    }

    fn commit_on_branch(&self, repo: &Repository, sha: &str, branch: &str, tip: Oid) -> Result<Oid> {
        let oid = Oid::from_str(sha).map_err(|e| GitError::InvalidRef(e.message().to_string()))?;
        let not_on_branch = || GitError::CommitNotOnBranch { commit: sha.to_string(), branch: branch.to_string(), url: self.display_url() };
        if repo.find_commit(oid).is_err() {
            return Err(not_on_branch());
        }
        if tip == oid || repo.graph_descendant_of(tip, oid).unwrap_or(false) { Ok(oid) } else { Err(not_on_branch()) }
    }

    fn open_cache(&self) -> Result<Repository> {
        let cache_err = |detail: String| GitError::Cache { path: self.cache_dir.clone(), detail };
        if self.cache_dir.join("HEAD").is_file() {
            match Repository::open_bare(&self.cache_dir) {
                Ok(repo) => return Ok(repo),
                Err(e) => {
                    tracing::warn!(path = %self.cache_dir.display(), error = %e.message(), "git cache unreadable; recreating it");
                    fs::remove_dir_all(&self.cache_dir).map_err(|e| cache_err(format!("cannot remove it: {e}")))?;
                }
            }
        }
        fs::create_dir_all(&self.cache_dir).map_err(|e| cache_err(format!("cannot create it: {e}")))?;
        Repository::init_bare(&self.cache_dir).map_err(|e| cache_err(e.message().to_string()))
    }

    /// List the remote's refs: `(name, oid)`; annotated tags also appear as `name^{}` (peeled).
    fn list_remote(&self, repo: &Repository, ctx: &CallContext) -> Result<HashMap<String, Oid>> {
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.map_error(e, ctx, Stage::Connect))?;
        let mut opts = self.fetch_options(ctx);
        remote.download(&[LIST_ONLY_REFSPEC], Some(&mut opts)).map_err(|e| self.map_error(e, ctx, Stage::Connect))?;
        let refs = remote
            .list()
            .map_err(|e| self.map_error(e, ctx, Stage::Connect))?
            .iter()
            .map(|head| (head.name().to_string(), head.oid()))
            .collect();
        let _ = remote.disconnect();
        Ok(refs)
    }

    fn fetch_refspecs(&self, repo: &Repository, ctx: &CallContext, refspecs: &[&str]) -> Result<()> {
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.map_error(e, ctx, Stage::Fetch))?;
        let mut opts = self.fetch_options(ctx);
        remote.fetch(refspecs, Some(&mut opts), None).map_err(|e| self.map_error(e, ctx, Stage::Fetch))
    }

    fn resolve_in(&self, repo: &Repository, ctx: &CallContext) -> Result<Resolved> {
        let url = self.display_url();
        let (refname, label) = match &self.reference {
            GitReference::Commit { sha, branch: None } => {
                let tip = Oid::from_str(sha).ok();
                return Ok(Resolved { refname: None, label: None, commit: Some(sha.clone()), tip });
            }
            GitReference::Branch(b) | GitReference::Commit { branch: Some(b), .. } => (format!("refs/heads/{b}"), b.clone()),
            GitReference::Tag(t) => (format!("refs/tags/{t}"), t.clone()),
            GitReference::Semver(range) => {
                let refs = self.list_remote(repo, ctx)?;
                let tag = highest_matching_tag(range, refs.keys().map(String::as_str))?
                    .ok_or_else(|| GitError::NoSemverMatch { range: range.clone(), url: url.clone() })?;
                return Ok(resolved_from(repo, &refs, format!("refs/tags/{tag}"), tag, &self.reference));
            }
        };
        let refs = self.list_remote(repo, ctx)?;
        if !refs.contains_key(&refname) {
            return Err(match &self.reference {
                GitReference::Tag(tag) => GitError::TagNotFound { tag: tag.clone(), url },
                _ => GitError::BranchNotFound { branch: label, url },
            });
        }
        Ok(resolved_from(repo, &refs, refname, label, &self.reference))
    }

    fn fetch_options<'a>(&'a self, ctx: &'a CallContext) -> FetchOptions<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let auth = self.auth.as_ref();
        // Credential types handed out on this connection: asked again means they were rejected.
        let mut given = CredentialType::empty();
        callbacks.credentials(move |_url, username_from_url, allowed| ctx.credentials(auth, username_from_url, allowed, &mut given));
        callbacks.transfer_progress(move |_| ctx.keep_going());
        callbacks.sideband_progress(move |_| ctx.keep_going());
        let known_hosts = auth.and_then(|a| a.known_hosts.as_deref());
        let port = ssh_port(&self.url);
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let Some(known_hosts) = known_hosts else {
                return Ok(CertificateCheckStatus::CertificateOk);
            };
            let key = hostkey.hostkey().zip(hostkey.hostkey_type());
            let known = key.is_some_and(|(raw, kind)| host_key_known(known_hosts, host, port, kind.name(), raw));
            if known {
                Ok(CertificateCheckStatus::CertificateOk)
            } else {
                ctx.fail(Failure::HostKey(host_label(host, port)));
                Err(git2::Error::from_str("host key rejected"))
            }
        });
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks);
        opts.download_tags(AutotagOption::None);
        opts.update_fetchhead(false);
        if let Some(token) = auth.and_then(|a| a.bearer_token.as_deref()) {
            opts.custom_headers(&[&format!("Authorization: Bearer {token}")]);
        }
        opts
    }

    /// Turn a libgit2 error into ours, scrubbed of secrets.
    fn map_error(&self, e: git2::Error, ctx: &CallContext, stage: Stage) -> GitError {
        let url = self.display_url();
        let detail = self.scrub(e.message());
        match ctx.failure.borrow_mut().take() {
            Some(Failure::Timeout) => return self.timeout_error(),
            // libgit2 tries the user info of the URL itself before asking us.
            Some(Failure::NoCredentials) if url_password(&self.url).is_some() => {
                return GitError::AuthFailed { url, detail: "the server rejected the credentials in the URL".into() };
            }
            Some(Failure::NoCredentials) => {
                return GitError::AuthFailed { url, detail: "the server asks for credentials and none were given".into() };
            }
            Some(Failure::Rejected) => {
                return GitError::AuthFailed { url, detail: "the server rejected the credentials".into() };
            }
            Some(Failure::HostKey(host)) => return GitError::HostKeyRejected { host, url },
            None => {}
        }
        if Instant::now() >= ctx.deadline {
            return self.timeout_error();
        }
        let lower = detail.to_ascii_lowercase();
        let auth_like = e.code() == ErrorCode::Auth
            || lower.contains("status code: 401")
            || lower.contains("status code: 403")
            || lower.contains("authentication")
            || (e.class() == ErrorClass::Ssh && lower.contains("username/publickey"));
        if auth_like {
            return GitError::AuthFailed { url, detail };
        }
        match stage {
            Stage::Connect => GitError::Unreachable { url, detail },
            Stage::Fetch => GitError::Fetch { reference: self.reference.to_string(), url, detail },
        }
    }

    /// Remove every secret (and the raw URL, which may carry a password) from a message.
    fn scrub(&self, message: &str) -> String {
        let mut out = message.replace(&self.url, &self.display_url());
        let url_password = url_password(&self.url);
        for secret in self.auth.iter().flat_map(GitAuth::secrets).chain(url_password.as_deref()) {
            if !secret.is_empty() {
                out = out.replace(secret, "***");
            }
        }
        out
    }

    fn checkout(&self, repo: &Repository, commit: &str) -> Result<tempfile::TempDir> {
        let err = |detail: String| GitError::Checkout { commit: commit.to_string(), url: self.display_url(), detail };
        let dir = tempfile::Builder::new().prefix("driftless-git-").tempdir().map_err(|e| err(e.to_string()))?;
        let oid = Oid::from_str(commit).map_err(|e| err(e.message().to_string()))?;
        let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| err(e.message().to_string()))?;
        write_tree(repo, &tree, dir.path()).map_err(err)?;
        Ok(dir)
    }
}

fn resolved_from(repo: &Repository, refs: &HashMap<String, Oid>, refname: String, label: String, reference: &GitReference) -> Resolved {
    let advertised = refs.get(&refname).copied();
    let peeled = refs.get(&format!("{refname}^{{}}")).copied();
    let tip = match (peeled, advertised) {
        (Some(peeled), _) => Some(peeled),
        // A tag advertised without a peel: a lightweight tag (a commit) or an annotated tag
        // the server did not peel. The cache may know which; if not, the fetch will tell.
        (None, Some(oid)) if matches!(reference, GitReference::Tag(_) | GitReference::Semver(_)) => {
            repo.find_object(oid, None).and_then(|o| o.peel_to_commit()).ok().map(|c| c.id())
        }
        (None, advertised) => advertised,
    };
    let commit = match reference {
        GitReference::Commit { sha, .. } => Some(sha.clone()),
        _ => tip.map(|o| o.to_string()),
    };
    Resolved { refname: Some(refname), label: Some(label), commit, tip }
}

#[derive(Clone, Copy)]
enum Stage {
    Connect,
    Fetch,
}

/// Why a callback stopped libgit2; read when its error comes back.
enum Failure {
    Timeout,
    NoCredentials,
    Rejected,
    HostKey(String),
}

/// State shared by the callbacks of one operation.
struct CallContext {
    deadline: Instant,
    failure: RefCell<Option<Failure>>,
}

impl CallContext {
    fn new(deadline: Instant) -> Self {
        Self { deadline, failure: RefCell::new(None) }
    }

    fn fail(&self, failure: Failure) {
        *self.failure.borrow_mut() = Some(failure);
    }

    fn keep_going(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.fail(Failure::Timeout);
            return false;
        }
        true
    }

    fn credentials(
        &self,
        auth: Option<&GitAuth>,
        username_from_url: Option<&str>,
        allowed: CredentialType,
        given: &mut CredentialType,
    ) -> Result<Cred, git2::Error> {
        if !self.keep_going() {
            return Err(git2::Error::from_str("timed out"));
        }
        let mut once = |kind: CredentialType| -> Result<(), git2::Error> {
            if given.contains(kind) {
                self.fail(Failure::Rejected);
                return Err(git2::Error::from_str("credentials rejected"));
            }
            given.insert(kind);
            Ok(())
        };
        let user = username_from_url.or(auth.and_then(|a| a.username.as_deref())).unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            once(CredentialType::USERNAME)?;
            return Cred::username(user);
        }
        if let Some(identity) = auth.and_then(|a| a.identity.as_deref())
            && allowed.contains(CredentialType::SSH_KEY)
        {
            once(CredentialType::SSH_KEY)?;
            let passphrase = auth.and_then(|a| a.password.as_deref());
            return Cred::ssh_key_from_memory(user, None, identity, passphrase).map_err(|_| {
                self.fail(Failure::Rejected);
                git2::Error::from_str("the identity is not a usable private key")
            });
        }
        if let Some(auth) = auth
            && let (Some(username), Some(password)) = (auth.username.as_deref(), auth.password.as_deref())
            && allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
        {
            once(CredentialType::USER_PASS_PLAINTEXT)?;
            return Cred::userpass_plaintext(username, password);
        }
        if !given.is_empty() || auth.is_some_and(|a| a.bearer_token.is_some()) {
            self.fail(Failure::Rejected);
        } else {
            self.fail(Failure::NoCredentials);
        }
        Err(git2::Error::from_str("no usable credentials"))
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

/// Parse a semver range as Flux (Masterminds semver) writes it into `semver` requirements:
/// `||` alternatives; comparators separated by spaces or commas; `a - b` ranges; a bare
/// version means exactly that version; versions may carry a leading `v`.
pub fn parse_semver_range(range: &str) -> Result<Vec<VersionReq>> {
    let invalid = |reason: String| GitError::InvalidSemver { range: range.to_string(), reason };
    let mut alternatives = Vec::new();
    for alternative in range.split("||") {
        let tokens: Vec<&str> = alternative.split([' ', ',', '\t']).filter(|t| !t.is_empty()).collect();
        if tokens.is_empty() {
            return Err(invalid("empty constraint".into()));
        }
        let mut comparators = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let mut token = tokens[i].to_string();
            if token.chars().all(|c| "=<>~^!".contains(c)) {
                let next = tokens.get(i + 1).ok_or_else(|| invalid(format!("{token:?} without a version")))?;
                token.push_str(next);
                i += 1;
            }
            if tokens.get(i + 1) == Some(&"-") {
                let upper = tokens.get(i + 2).ok_or_else(|| invalid("a range `a - b` without its upper bound".into()))?;
                comparators.push(format!(">={}", strip_v(&token)));
                comparators.push(format!("<={}", strip_v(upper)));
                i += 3;
                continue;
            }
            comparators.push(comparator(&token).map_err(invalid)?);
            i += 1;
        }
        let joined = comparators.join(", ");
        alternatives.push(VersionReq::parse(&joined).map_err(|e| invalid(e.to_string()))?);
    }
    Ok(alternatives)
}

fn strip_v(version: &str) -> &str {
    version.strip_prefix(['v', 'V']).unwrap_or(version)
}

fn comparator(token: &str) -> std::result::Result<String, String> {
    let split = token.find(|c: char| !"=<>~^!".contains(c)).unwrap_or(token.len());
    let (op, version) = token.split_at(split);
    let version = strip_v(version);
    if op == "!=" {
        return Err("`!=` is not supported".into());
    }
    let wildcard = version.split('.').any(|part| matches!(part, "*" | "x" | "X"));
    Ok(if op.is_empty() && !wildcard { format!("={version}") } else { format!("{op}{version}") })
}

/// Parse a tag as a version, leniently as Flux does: a leading `v`, missing minor/patch.
pub fn parse_tag_version(tag: &str) -> Option<Version> {
    let version = strip_v(tag);
    if let Ok(v) = Version::parse(version) {
        return Some(v);
    }
    let core_end = version.find(['-', '+']).unwrap_or(version.len());
    let (core, rest) = version.split_at(core_end);
    let parts = core.split('.').count();
    if !(1..=2).contains(&parts) || !core.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    Version::parse(&padded).ok()
}

/// The highest tag (name without `refs/tags/`) matching `range` among advertised ref names.
pub fn highest_matching_tag<'a>(range: &str, refnames: impl Iterator<Item = &'a str>) -> Result<Option<String>> {
    let reqs = parse_semver_range(range)?;
    let best = refnames
        .filter_map(|name| name.strip_prefix("refs/tags/"))
        .filter(|tag| !tag.ends_with("^{}"))
        .filter_map(|tag| parse_tag_version(tag).map(|v| (v, tag)))
        .filter(|(v, _)| reqs.iter().any(|r| r.matches(v)))
        .max_by(|(va, ta), (vb, tb)| va.cmp(vb).then_with(|| tb.cmp(ta)));
    Ok(best.map(|(_, tag)| tag.to_string()))
}

/// The URL without a password in its user info.
fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}@{rest}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn url_password(url: &str) -> Option<String> {
    let (_, userinfo, _) = split_userinfo(url)?;
    userinfo.split_once(':').map(|(_, p)| p.to_string())
}

/// `scheme://userinfo@rest` → (`scheme://`, userinfo, rest).
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let (scheme, after) = url.split_at(scheme_end);
    let authority_end = after.find('/').unwrap_or(after.len());
    let at = after[..authority_end].rfind('@')?;
    Some((scheme, &after[..at], &after[at + 1..]))
}

/// The port of an `ssh://` URL (22 otherwise).
fn ssh_port(url: &str) -> u16 {
    let Some(after) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("ssh+git://")) else { return 22 };
    let authority = &after[..after.find('/').unwrap_or(after.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.rfind(']') {
        Some(close) => host_port[close + 1..].strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// How known_hosts names a host: `host` on port 22, `[host]:port` otherwise.
fn host_label(host: &str, port: u16) -> String {
    if port == 22 { host.to_string() } else { format!("[{host}]:{port}") }
}

/// Whether `known_hosts` holds a line for this host with this key (and no `@revoked` one).
fn host_key_known(known_hosts: &str, host: &str, port: u16, key_type: &str, raw_key: &[u8]) -> bool {
    let name = host_label(host, port);
    let key = base64_encode(raw_key);
    let mut found = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else { continue };
        let marker = first.strip_prefix('@');
        if marker.is_some() {
            let Some(next) = fields.next() else { continue };
            first = next;
        }
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else { continue };
        if kind != key_type || blob != key || !hosts_match(first, &name) {
            continue;
        }
        match marker {
            Some("revoked") => return false,
            Some(_) => {}
            None => found = true,
        }
    }
    found
}

/// OpenSSH host pattern list: comma-separated, `*`/`?` wildcards, `!` negates.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if wildcard_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard_match(rest, &name[1..]),
        Some((c, rest)) => name.first().is_some_and(|n| n.eq_ignore_ascii_case(c)) && wildcard_match(rest, &name[1..]),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| format!("refs/tags/{n}")).collect()
    }

    fn highest(range: &str, names: &[&str]) -> Option<String> {
        let refs = tags(names);
        highest_matching_tag(range, refs.iter().map(String::as_str)).expect("range")
    }

    #[test]
    fn semver_picks_the_highest_matching_tag_with_or_without_v() {
        let names = ["v1.0.0", "1.2.0", "v1.10.0", "v2.0.0", "v1.11.0-rc.1", "latest", "v1.3"];
        assert_eq!(highest(">=1.0.0 <2.0.0", &names).as_deref(), Some("v1.10.0"));
        assert_eq!(highest(">=1.0.0, <2.0.0", &names).as_deref(), Some("v1.10.0"));
        assert_eq!(highest("~1.2", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest("1.3", &names).as_deref(), Some("v1.3"));
        assert_eq!(highest("^v2", &names).as_deref(), Some("v2.0.0"));
        assert_eq!(highest("1.0 - 1.2", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest("<1.0.0 || >=2.0.0", &names).as_deref(), Some("v2.0.0"));
        assert_eq!(highest("1.2.x", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest(">= 3", &names), None);
        assert_eq!(highest("*", &names).as_deref(), Some("v2.0.0"));
    }

    #[test]
    fn invalid_semver_ranges_are_refused_with_the_range_named() {
        for range in ["", ">=", "!=1.0.0", "foo", "1.0 -"] {
            let err = parse_semver_range(range).expect_err(range);
            assert!(err.to_string().contains(&format!("{range:?}")), "{err}");
        }
    }

    #[test]
    fn ref_precedence_is_commit_semver_tag_branch() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let all =
            GitRepositoryRef { branch: Some("main".into()), tag: Some("v1".into()), semver: Some(">=1".into()), commit: Some(sha.into()) };
        assert_eq!(
            GitReference::from_spec(Some(&all)).expect("ref"),
            GitReference::Commit { sha: sha.into(), branch: Some("main".into()) }
        );
        let no_commit = GitRepositoryRef { commit: None, ..all.clone() };
        assert_eq!(GitReference::from_spec(Some(&no_commit)).expect("ref"), GitReference::Semver(">=1".into()));
        let tag = GitRepositoryRef { semver: None, ..no_commit.clone() };
        assert_eq!(GitReference::from_spec(Some(&tag)).expect("ref"), GitReference::Tag("v1".into()));
        assert_eq!(GitReference::from_spec(None).expect("ref"), GitReference::Branch("master".into()));
        let short = GitRepositoryRef { commit: Some("abc123".into()), ..Default::default() };
        assert!(matches!(GitReference::from_spec(Some(&short)), Err(GitError::InvalidRef(_))));
    }

    #[test]
    fn secret_data_maps_flux_keys_and_refuses_mixtures() {
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let auth = GitAuth::from_secret_data(&data(&[("username", "u"), ("password", "p"), ("other", "x")])).expect("auth");
        assert_eq!(auth.username.as_deref(), Some("u"));
        assert_eq!(auth.password.as_deref(), Some("p"));
        let auth = GitAuth::from_secret_data(&data(&[("bearerToken", "t\n"), ("known_hosts", "h k v")])).expect("auth");
        assert_eq!(auth.bearer_token.as_deref(), Some("t"));
        assert!(GitAuth::from_secret_data(&data(&[("bearerToken", "t"), ("username", "u")])).is_err());
        assert!(GitAuth::from_secret_data(&data(&[("password", "p")])).is_err());
        assert!(GitAuth::from_secret_data(&data(&[("identity", "key"), ("password", "pass")])).is_ok());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let auth = GitAuth {
            username: Some("user".into()),
            password: Some("hunter2".into()),
            bearer_token: Some("tok3n".into()),
            identity: Some("-----BEGIN".into()),
            known_hosts: None,
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok3n") && !shown.contains("BEGIN"), "{shown}");
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(redact_url("https://u:secret@example.com/r.git"), "https://u@example.com/r.git");
        assert_eq!(redact_url("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(url_password("https://u:secret@example.com/r.git").as_deref(), Some("secret"));
        let source = GitSource::new("https://u:secret@example.com/r.git", None, "cache")
            .expect("source")
            .with_auth(Some(GitAuth { username: Some("u".into()), password: Some("pw".into()), ..Default::default() }))
            .expect("auth");
        let scrubbed = source.scrub("failed for https://u:secret@example.com/r.git with pw and secret");
        assert_eq!(scrubbed, "failed for https://u@example.com/r.git with *** and ***");
    }

    #[test]
    fn ssh_ports_and_known_hosts_names() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/repo"), 2222);
        assert_eq!(ssh_port("ssh://git@host/repo"), 22);
        assert_eq!(ssh_port("ssh://git@[::1]:2200/repo"), 2200);
        assert_eq!(ssh_port("git@host:org/repo"), 22);
        assert_eq!(host_label("h", 22), "h");
        assert_eq!(host_label("h", 2222), "[h]:2222");
    }

    #[test]
    fn known_hosts_lines_match_by_host_type_and_key() {
        let raw = b"key bytes";
        let b64 = base64_encode(raw);
        let kh = format!("# comment\n[127.0.0.1]:2222 ssh-ed25519 {b64}\n*.example.com,!bad.example.com ssh-rsa {b64}\n");
        assert!(host_key_known(&kh, "127.0.0.1", 2222, "ssh-ed25519", raw));
        assert!(!host_key_known(&kh, "127.0.0.1", 22, "ssh-ed25519", raw));
        assert!(!host_key_known(&kh, "127.0.0.1", 2222, "ssh-ed25519", b"other"));
        assert!(!host_key_known(&kh, "127.0.0.1", 2222, "ssh-rsa", raw));
        assert!(host_key_known(&kh, "git.example.com", 22, "ssh-rsa", raw));
        assert!(!host_key_known(&kh, "bad.example.com", 22, "ssh-rsa", raw));
        let revoked = format!("{kh}@revoked * ssh-rsa {b64}\n");
        assert!(!host_key_known(&revoked, "git.example.com", 22, "ssh-rsa", raw));
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }
}
