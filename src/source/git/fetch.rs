//! Fetching into the bare cache: [`GitSource::fetch`] decides whether anything changed and
//! downloads only what it must, with every libgit2 call bounded by the timeout.
//!
//! The timeout is kept two ways, because libgit2 offers no deadline of its own: the
//! callbacks of one operation share a [`CallContext`] that cancels from inside libgit2 once
//! the deadline passes, and [`GitSource::with_deadline`] runs the operation on its own thread
//! so a server that goes silent (no callback fires) is abandoned all the same. libgit2's
//! errors come back through [`GitSource::map_error`], which reads why a callback stopped
//! and scrubs the message of secrets.

use std::cell::RefCell;
use std::fs;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use git2::{AutotagOption, CredentialType, ErrorClass, ErrorCode, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::auth::{ssh_port, url_password};
use super::gateway::{Gateway, split_url};
use super::{Checkout, FetchOutcome, GitAuth, GitError, GitReference, GitSource, Resolved, Result, revision};

/// How long past the timeout a silent server is waited for before the fetch is abandoned.
const HARD_STOP_GRACE: Duration = Duration::from_millis(500);

impl GitSource {
    /// Fetch the wanted revision and check it out, unless it is `last_revision` and the
    /// caller says that revision's artifact still exists.
    ///
    /// `Unchanged` only says the commit is the same; if anything else that shapes the artifact
    /// changed (the ignore patterns), pass `artifact_exists = false`.
    pub fn fetch(&self, last_revision: Option<&str>, artifact_exists: bool) -> Result<FetchOutcome> {
        let last = last_revision.filter(|_| artifact_exists).map(str::to_string);
        self.with_deadline(move |this, deadline| this.fetch_in(last.as_deref(), deadline))
    }

    /// Run `work` on its own thread and give up on it when the timeout (plus a grace) is over.
    pub(super) fn with_deadline<T: Send + 'static>(
        &self,
        work: impl FnOnce(&GitSource, Instant) -> Result<T> + Send + 'static,
    ) -> Result<T> {
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

    pub(super) fn fetch_in(&self, last: Option<&str>, deadline: Instant) -> Result<FetchOutcome> {
        let repo = self.open_cache()?;
        let ctx = self.call_context(deadline)?.with_max_bytes(self.max_size);
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
        let verified = match &self.verification {
            None => None,
            Some(verification) => {
                let oid = Oid::from_str(&commit).map_err(|e| self.fetch_error(e.message().to_string()))?;
                let reference = self.reference.to_string();
                Some(verification.check(&repo, resolved.refname.as_deref(), &reference, oid, &self.display_url())?)
            }
        };
        let dir = self.checkout(&repo, &commit, deadline)?;
        tracing::debug!(url = %self.display_url(), %revision, "git revision fetched");
        Ok(FetchOutcome::Fetched(Checkout { revision, commit, verified, dir }))
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

    /// Open the bare cache, creating it when missing and recreating it when unreadable.
    pub(super) fn open_cache(&self) -> Result<Repository> {
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

    fn fetch_refspecs(&self, repo: &Repository, ctx: &CallContext, refspecs: &[&str]) -> Result<()> {
        let mut remote = repo.remote_anonymous(&ctx.remote_url).map_err(|e| self.map_error(e, ctx, Stage::Fetch))?;
        let mut opts = self.fetch_options(ctx);
        remote.fetch(refspecs, Some(&mut opts), None).map_err(|e| self.map_error(e, ctx, Stage::Fetch))
    }

    /// The options of every remote operation: credentials, host key check, cancellation at
    /// the deadline, the bearer token header; no tags or FETCH_HEAD beyond the refspecs.
    pub(super) fn fetch_options<'a>(&'a self, ctx: &'a CallContext) -> FetchOptions<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let auth = self.auth.as_ref();
        // Credential types handed out on this connection: asked again means they were rejected.
        let mut given = CredentialType::empty();
        callbacks.credentials(move |_url, username_from_url, allowed| ctx.credentials(auth, username_from_url, allowed, &mut given));
        callbacks.transfer_progress(move |progress| ctx.keep_going() && ctx.within_size(progress.received_bytes()));
        callbacks.sideband_progress(move |_| ctx.keep_going());
        let known_hosts = auth.and_then(|a| a.known_hosts.as_deref());
        let port = ssh_port(&self.url);
        callbacks.certificate_check(move |cert, host| ctx.check_certificate(known_hosts, port, cert, host));
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks);
        opts.download_tags(AutotagOption::None);
        opts.update_fetchhead(false);
        if let Some(token) = auth.and_then(|a| a.bearer_token.as_deref()) {
            opts.custom_headers(&[&format!("Authorization: Bearer {token}")]);
        }
        opts
    }

    /// The context of one operation: with a loopback gateway when the remote needs one
    /// (TLS keys, a proxy), whose URL libgit2 is then given.
    pub(super) fn call_context(&self, deadline: Instant) -> Result<CallContext> {
        let mut ctx = CallContext::new(deadline, self.url.clone());
        if !self.needs_gateway() {
            return Ok(ctx);
        }
        let Some((scheme, _, authority, _)) = split_url(&self.url) else {
            return Err(GitError::InvalidAuth(format!("{} is not a URL", self.display_url())));
        };
        let host = authority.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(authority, |(h, _)| h);
        let tls = super::tls::client_config(self.auth.as_ref().unwrap_or(&GitAuth::default()))?;
        let gateway = Gateway::start(&format!("{scheme}://{authority}"), host, tls, self.proxy.as_ref(), deadline)
            .map_err(|detail| GitError::Connect { url: self.display_url(), detail })?;
        ctx.remote_url = gateway.local_url(&self.url);
        ctx.gateway = Some(gateway);
        Ok(ctx)
    }

    /// Turn a libgit2 error into ours, scrubbed of secrets.
    pub(super) fn map_error(&self, e: git2::Error, ctx: &CallContext, stage: Stage) -> GitError {
        let url = self.display_url();
        let message = ctx.gateway.as_ref().map_or_else(|| e.message().to_string(), |g| g.unmap(e.message()));
        let detail = self.scrub(&message);
        if let Some(why) = ctx.gateway.as_ref().and_then(Gateway::failure) {
            return GitError::Connect { url, detail: self.scrub(&why) };
        }
        match ctx.failure.borrow_mut().take() {
            Some(Failure::Timeout) => return self.timeout_error(),
            Some(Failure::TooLarge) => return GitError::TooLarge { url, limit: ctx.max_bytes },
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
            Some(Failure::NoKnownHosts(host)) => return GitError::NoKnownHosts { host, url },
            None => {}
        }
        if Instant::now() >= ctx.deadline {
            return self.timeout_error();
        }
        let lower = detail.to_ascii_lowercase();
        // libgit2 reports an untrusted certificate as an Ssl-class error (its code is lost
        // when the certificate callback passes the decision back to it).
        if self.url.starts_with("https://")
            && (e.code() == ErrorCode::Certificate || (e.class() == ErrorClass::Ssl && lower.contains("certificate")))
        {
            return GitError::Connect {
                url,
                detail: format!(
                    "{detail}: the server's certificate is not trusted by the system's CAs; if a private CA signed it, put that CA's certificate (PEM) in ca.crt of spec.secretRef"
                ),
            };
        }
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
}

/// Which step of talking to the remote failed: connecting (listing refs) or fetching.
#[derive(Clone, Copy)]
pub(super) enum Stage {
    Connect,
    Fetch,
}

/// Why a callback stopped libgit2; read when its error comes back.
pub(super) enum Failure {
    Timeout,
    /// More bytes received than the size limit allows.
    TooLarge,
    NoCredentials,
    Rejected,
    HostKey(String),
    /// An ssh server's host key with no known_hosts to check it against.
    NoKnownHosts(String),
}

/// State shared by the callbacks of one operation.
pub(super) struct CallContext {
    deadline: Instant,
    max_bytes: u64,
    failure: RefCell<Option<Failure>>,
    /// The URL libgit2 is given: the remote's, or the gateway's in its place.
    pub(super) remote_url: String,
    /// The loopback gateway of this operation, when the remote needs one.
    gateway: Option<Gateway>,
}

impl CallContext {
    pub(super) fn new(deadline: Instant, remote_url: String) -> Self {
        Self { deadline, max_bytes: u64::MAX, failure: RefCell::new(None), remote_url, gateway: None }
    }

    pub(super) fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// `false` (stop the transfer) once more than the limit has arrived.
    pub(super) fn within_size(&self, received: usize) -> bool {
        if received as u64 > self.max_bytes {
            self.fail(Failure::TooLarge);
            return false;
        }
        true
    }

    pub(super) fn fail(&self, failure: Failure) {
        *self.failure.borrow_mut() = Some(failure);
    }

    pub(super) fn keep_going(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.fail(Failure::Timeout);
            return false;
        }
        true
    }
}
