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
//!   its passphrase, the user from the URL (else `username`, else `git`). `known_hosts` is
//!   required, as in Flux: the server's host key must match one of its entries (plain host
//!   patterns, `[host]:port` for ports other than 22, `*`/`?` wildcards and `!` negations,
//!   `@revoked`); hashed host names (`|1|...`) and `@cert-authority` lines are not understood
//!   and never match. Without `known_hosts` the fetch is refused (`NoKnownHosts`).
//! - https certificates are checked by libgit2 against the system's CAs, unless the Secret
//!   has TLS keys (`ca.crt`/`caFile`, `tls.crt` + `tls.key`) or a proxy is given: then the
//!   remote is reached through a loopback [`gateway`] of this fetch, which makes the TLS
//!   connection with rustls (the system's CAs plus `ca.crt`, the client certificate) and
//!   tunnels through the proxy with CONNECT; libgit2 can do neither per remote.
//!
//! # Layout
//! This file holds the public types every part shares ([`GitSource`], [`GitError`],
//! [`Resolved`], [`Checkout`] and the outcomes) and re-exports the rest. `auth` holds the
//! credentials, the scrubbing of secrets and the known_hosts check; `refs` turns a spec's ref
//! into a commit from the remote's listing; `fetch` runs an operation under the timeout and
//! fetches objects into the bare cache; `checkout` writes a commit's tree out and archives it;
//! `submodules` checks submodules out into it, `include` copies other artifacts into it;
//! `tls`, `proxy` and `gateway` reach https remotes with the Secret's TLS keys or a proxy.

mod auth;
mod checkout;
mod fetch;
mod gateway;
mod include;
mod proxy;
mod refs;
mod sparse;
mod submodules;
mod tls;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::Oid;

use super::artifact::{ArtifactError, StoredArtifact};
use crate::api::GitRepositoryRef;

pub use auth::GitAuth;
pub use include::Include;
pub use proxy::Proxy;
pub use refs::{GitReference, highest_matching_tag};
pub use verify::{Keyring, SignedObject, Signer, Verification, VerifyError};

/// Flux's default timeout of one Git operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Flux's default branch when no ref is given.
pub const DEFAULT_BRANCH: &str = "master";

/// Errors of the Git source. Messages name the URL and the ref, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid ref: {0}")]
    InvalidRef(String),
    #[error("invalid git credentials: {0}")]
    InvalidAuth(String),
    #[error("spec.proxySecretRef: {0}")]
    InvalidProxy(String),
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("branch {branch:?} not found in {url}")]
    BranchNotFound { branch: String, url: String },
    #[error("tag {tag:?} not found in {url}")]
    TagNotFound { tag: String, url: String },
    #[error("{0}")]
    InvalidSparseCheckout(String),
    #[error("spec.include: {0}")]
    Include(String),
    #[error("submodule {path} of {url}: {detail}")]
    Submodule { path: String, url: String, detail: String },
    #[error("reference {name:?} not found in {url}")]
    RefNotFound { name: String, url: String },
    #[error(transparent)]
    InvalidSemver(#[from] crate::source::semver::InvalidRange),
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
    #[error(
        "the host key of {host} cannot be checked: spec.secretRef has no known_hosts; add the server's key (e.g. the output of `ssh-keyscan {host}`) as known_hosts, as Flux requires, before fetching {url}"
    )]
    NoKnownHosts { host: String, url: String },
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("fetching {reference} from {url} timed out after {}", humantime::format_duration(*.after))]
    Timeout { reference: String, url: String, after: Duration },
    #[error("fetching {reference} from {url} failed: {detail}")]
    Fetch { reference: String, url: String, detail: String },
    #[error("git cache {}: {detail}", .path.display())]
    Cache { path: PathBuf, detail: String },
    #[error(
        "fetching {url} received more than the limit of {limit} bytes; raise the controller's --max-artifact-size or make the repository smaller"
    )]
    TooLarge { url: String, limit: u64 },
    #[error("checking out {commit} of {url}: {detail}")]
    Checkout { commit: String, url: String, detail: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// `verify`: the revision's signatures are not verified; nothing was checked out.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl GitError {
    /// The condition reason this error maps to (Flux's vocabulary).
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::InvalidRef(_) | GitError::InvalidSemver(_) | GitError::InvalidSparseCheckout(_) => "InvalidSpec",
            GitError::InvalidAuth(_)
            | GitError::InvalidProxy(_)
            | GitError::AuthFailed { .. }
            | GitError::HostKeyRejected { .. }
            | GitError::NoKnownHosts { .. } => "AuthenticationFailed",
            GitError::Cache { .. } | GitError::Artifact(_) | GitError::Include(_) => "StorageOperationFailed",
            GitError::Verify(e) => e.reason(),
            _ => "GitOperationFailed",
        }
    }
}

pub type Result<T, E = GitError> = std::result::Result<T, E>;

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

/// Flux v1's revision of `commit`: `<label>@sha1:<commit>`, or `sha1:<commit>` without a label.
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
    /// With `verify`: what was verified, by which key (the `SourceVerified` message).
    pub verified: Option<String>,
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
    Unchanged {
        revision: String,
    },
    Stored {
        revision: String,
        commit: String,
        artifact: StoredArtifact,
        /// With `verify`: what was verified before the artifact was made, by which key.
        verified: Option<String>,
    },
    /// Ready with no artifact of its own: an OCI HelmRepository, whose HelmCharts pull
    /// from the registry themselves.
    Static {
        message: String,
    },
}

/// One Git repository to fetch: URL, ref, credentials, timeout and its object cache.
///
/// Its operations are spread over this module's files: [`resolve`](Self::resolve) in `refs`,
/// [`fetch`](Self::fetch) in `fetch`, [`fetch_artifact`](Self::fetch_artifact) in `checkout`.
#[derive(Debug, Clone)]
pub struct GitSource {
    url: String,
    reference: GitReference,
    auth: Option<GitAuth>,
    timeout: Duration,
    cache_dir: PathBuf,
    /// The most bytes a fetch may receive and a checkout may write.
    max_size: u64,
    /// Flux's `sparseCheckout`: only these directories (cleaned) go into the artifact.
    sparse: Vec<String>,
    /// Flux's `proxySecretRef`: http(s) remotes are reached through it.
    proxy: Option<Proxy>,
    /// Flux's `include`: artifacts copied into the checkout before it is archived.
    includes: Vec<Include>,
    /// Flux's `recurseSubmodules`: submodules are checked out into the tree.
    recurse_submodules: bool,
    /// Flux's `verify`: signatures checked before a checkout.
    verification: Option<Verification>,
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
            max_size: super::artifact::DEFAULT_MAX_SIZE,
            sparse: Vec::new(),
            proxy: None,
            includes: Vec::new(),
            recurse_submodules: false,
            verification: None,
        })
    }

    /// Verify the signatures `verification` asks for (Flux's `verify`) before every checkout:
    /// a revision that fails is not checked out ([`GitError::Verify`]). An
    /// [`Unchanged`](FetchOutcome::Unchanged) revision is not verified again: pass no last
    /// revision to have it verified.
    pub fn with_verification(mut self, verification: Option<Verification>) -> Self {
        self.verification = verification;
        self
    }

    /// Check submodules out too (Flux's `recurseSubmodules`), recursively.
    pub fn with_recurse_submodules(mut self, recurse: bool) -> Self {
        self.recurse_submodules = recurse;
        self
    }

    /// Copy these artifacts into every checkout before archiving it (Flux's `include`).
    /// [`fetch_artifact`](Self::fetch_artifact) does not see them change: when they did,
    /// pass it no `last` artifact.
    pub fn with_includes(mut self, includes: Vec<Include>) -> Self {
        self.includes = includes;
        self
    }

    /// Reach the remote through `proxy` (Flux's `proxySecretRef`); http(s) remotes only.
    pub fn with_proxy(mut self, proxy: Option<Proxy>) -> Result<Self> {
        if proxy.is_some() && !self.is_http() {
            return Err(GitError::InvalidProxy(format!(
                "a proxy is used for http(s) URLs only, and {} is not one; remove spec.proxySecretRef",
                self.display_url()
            )));
        }
        self.proxy = proxy;
        Ok(self)
    }

    fn is_http(&self) -> bool {
        self.url.starts_with("https://") || self.url.starts_with("http://")
    }

    /// Whether the remote is reached through the loopback gateway (TLS keys or a proxy)
    /// instead of libgit2's own http transport.
    fn needs_gateway(&self) -> bool {
        self.proxy.is_some() || (self.url.starts_with("https://") && self.auth.as_ref().is_some_and(GitAuth::has_tls))
    }

    /// Only `dirs` of the tree go into the artifact (Flux's `sparseCheckout`); each must be a
    /// directory inside the repository, and must exist at the revision fetched.
    pub fn with_sparse_checkout(mut self, dirs: &[String]) -> Result<Self> {
        self.sparse = sparse::directories(dirs).map_err(|e| GitError::InvalidSparseCheckout(e.to_string()))?;
        Ok(self)
    }

    pub fn with_auth(mut self, auth: Option<GitAuth>) -> Result<Self> {
        if let Some(auth) = &auth {
            auth.validate()?;
            if auth.has_tls() && !self.url.starts_with("https://") {
                return Err(GitError::InvalidAuth(format!(
                    "ca.crt, caFile, tls.crt and tls.key apply to https URLs only, and {} is not one; remove them from the Secret or use an https URL",
                    self.display_url()
                )));
            }
        }
        self.auth = auth;
        Ok(self)
    }

    /// At most `bytes` received by a fetch and written by a checkout (the artifact store's
    /// limit: [`super::ArtifactStore::max_size`]).
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
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
        auth::redact_url(&self.url)
    }
}
