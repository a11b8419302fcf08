//! GitRepository: fetch the wanted revision (branch, tag, semver, commit) into an artifact.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Fetch, FetchResult, secret_data};
use crate::api::{Artifact, ConditionStatus, Conditions, GitRepository, Kind, condition_type as ct, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{ReconcileError, Run};
use crate::source::{ArtifactOutcome, GitAuth, GitError, GitSource, Include, Keyring, Proxy, Verification, VerifyError};
use crate::store::ObjectStore;

impl Fetch for GitRepository {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        _: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        let includes = match includes(run).await? {
            Ok(includes) => includes,
            Err(failure) => return Ok(Err(failure)),
        };
        let included: Vec<Artifact> = includes.iter().map(|i| i.artifact.clone()).collect();
        // A changed included artifact makes the artifact again, at the same revision.
        let same = |a: &[Artifact], b: &[Artifact]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.revision == y.revision && x.digest == y.digest)
        };
        let last = last.filter(|_| same(&included, &run.status.included_artifacts));
        let verification = match verification(run).await? {
            Ok(v) => v,
            Err(message) => {
                run.set(ct::SOURCE_VERIFIED, ConditionStatus::False, reason::VERIFICATION_ERROR, &message);
                return Ok(Err((reason::VERIFICATION_ERROR, message)));
            }
        };
        // A revision not verified yet in the mode asked for is fetched and verified again,
        // even when its artifact exists (Flux's requiresVerification).
        let mode = verification.as_ref().map(|v| v.mode);
        let verified = run.status.is_true(ct::SOURCE_VERIFIED) && run.status.source_verification_mode == mode;
        let last = last.filter(|_| mode.is_none() || verified);
        let result = match fetch(run, last, includes, verification).await? {
            Fetched::Unverified(e) => {
                // No artifact of an unverified revision: the last one stays, as in Flux.
                let message = e.to_string();
                run.set(ct::SOURCE_VERIFIED, ConditionStatus::False, e.reason(), &message);
                Err((e.reason(), message))
            }
            Fetched::Done(Err(failure)) => Err(failure),
            Fetched::Done(Ok(outcome)) => {
                if let ArtifactOutcome::Stored { verified: Some(message), .. } = &outcome {
                    run.set(ct::SOURCE_VERIFIED, ConditionStatus::True, reason::SUCCEEDED, message);
                    run.status.source_verification_mode = mode;
                }
                if mode.is_none() {
                    run.status.remove_condition(ct::SOURCE_VERIFIED);
                    run.status.source_verification_mode = None;
                }
                Ok(outcome)
            }
        };
        if result.is_ok() {
            run.status.included_artifacts = included;
        }
        Ok(result)
    }
}

/// `spec.verify` with the keys of its Secret, or why the Secret gives none.
async fn verification<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, GitRepository, S, D>,
) -> Result<Result<Option<Verification>, String>, ReconcileError> {
    let Some(verify) = &run.object.spec.verification else { return Ok(Ok(None)) };
    let name = &verify.secret_ref.name;
    let data = secret_data(&run.ctx.store, &run.namespace, name, "spec.verify.secretRef").await?;
    Ok(data.and_then(|d| {
        let keyring = Keyring::from_secret_data(&format!("{}/{name}", run.namespace), &d).map_err(|e| e.to_string())?;
        Ok(Some(Verification { mode: verify.mode, keyring }))
    }))
}

/// The artifacts of `spec.include`, in order, or why one is not available yet (Flux's
/// `IncludeUnavailable`: not found, or no artifact), or a cycle of includes (each new
/// artifact would wake the other for ever).
async fn includes<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, GitRepository, S, D>,
) -> Result<Result<Vec<Include>, (&'static str, String)>, ReconcileError> {
    let unavailable = |message: String| Ok(Err((reason::INCLUDE_UNAVAILABLE, message)));
    let mut out = Vec::new();
    for (i, include) in run.object.spec.include.iter().enumerate() {
        let (namespace, name) = (&run.namespace, &include.repository.name);
        let Some(repository) = run.ctx.store.get::<GitRepository>(namespace, name).await? else {
            return unavailable(format!("spec.include[{i}]: GitRepository {namespace}/{name} not found; create it or fix spec.include"));
        };
        if let Some(path) = includes_back(&run.ctx.store, namespace, &repository, &run.name).await? {
            return Ok(Err((
                reason::INVALID_SPEC,
                format!(
                    "spec.include[{i}]: GitRepository {namespace}/{name} includes this one back ({}); includes must not form a cycle",
                    path.join(" -> ")
                ),
            )));
        }
        let status = repository.status.unwrap_or_default();
        let Some(artifact) = status.artifact.filter(|a| run.ctx.artifacts.exists(&a.path)) else {
            let why = status
                .conditions
                .iter()
                .find(|c| c.type_ == crate::api::condition_type::READY)
                .map_or("not fetched yet", |c| c.message.as_str());
            return unavailable(format!("spec.include[{i}]: GitRepository {namespace}/{name} has no artifact yet: {why}"));
        };
        let Some(include) = Include::new(name, artifact, include.from_path.as_deref().unwrap_or_default(), include.to_path()) else {
            return unavailable(format!("spec.include[{i}]: fromPath and toPath must stay inside the artifact"));
        };
        out.push(include);
    }
    Ok(Ok(out))
}

/// The chain of includes from `start` back to `own`, if there is one (at most 64
/// GitRepositories are looked at).
async fn includes_back<S: ObjectStore>(
    store: &S,
    namespace: &str,
    start: &GitRepository,
    own: &str,
) -> Result<Option<Vec<String>>, ReconcileError> {
    let start_name = start.metadata.name.clone().unwrap_or_default();
    let mut queue = std::collections::VecDeque::from([(start.clone(), vec![start_name.clone()])]);
    let mut seen = std::collections::HashSet::from([start_name]);
    while let Some((repository, path)) = queue.pop_front() {
        for include in &repository.spec.include {
            let next = &include.repository.name;
            let mut chain = path.clone();
            chain.push(next.clone());
            if next == own {
                return Ok(Some(chain));
            }
            if seen.len() < 64
                && seen.insert(next.clone())
                && let Some(found) = store.get::<GitRepository>(namespace, next).await?
            {
                queue.push_back((found, chain));
            }
        }
    }
    Ok(None)
}

/// How the fetch ended: its outcome or failure, or a revision `verify` refused.
enum Fetched {
    Done(FetchResult),
    Unverified(VerifyError),
}

/// The fetch itself, on a blocking thread (libgit2 blocks).
async fn fetch<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, GitRepository, S, D>,
    last: Option<Artifact>,
    includes: Vec<Include>,
    verification: Option<Verification>,
) -> Result<Fetched, ReconcileError> {
    let spec = &run.object.spec;
    let auth = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let data = secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.secretRef").await?;
            match data.and_then(|d| GitAuth::from_secret_data(&d).map_err(|e| format!("spec.secretRef: {e}"))) {
                Ok(a) => Some(a),
                Err(m) => return Ok(Fetched::Done(Err((reason::GIT_OPERATION_FAILED, m)))),
            }
        }
    };
    let proxy = match &spec.proxy_secret_ref {
        None => None,
        Some(r) => {
            let data = secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.proxySecretRef").await?;
            let invalid = |e: crate::source::GitError| match e {
                crate::source::GitError::InvalidProxy(m) => format!("spec.proxySecretRef: Secret {}: {m}", r.name),
                other => other.to_string(),
            };
            match data.and_then(|d| Proxy::from_secret_data(&d).map_err(invalid)) {
                Ok(p) => Some(p),
                Err(m) => return Ok(Fetched::Done(Err((reason::AUTHENTICATION_FAILED, m)))),
            }
        }
    };
    // One cache per object: libgit2 allows one fetch per repository at a time, and two
    // objects may name the same URL.
    let cache = run.ctx.git_cache.join(&run.namespace).join(&run.name).join(&hex::encode(Sha256::digest(spec.url.as_bytes()))[..16]);
    let timeout = spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(60));
    let (url, reference, ignore, sparse) = (spec.url.clone(), spec.reference.clone(), spec.ignore.clone(), spec.sparse_checkout.clone());
    let recurse = spec.recurse_submodules;
    let artifacts = run.ctx.artifacts.clone();
    let (ns, n) = (run.namespace.clone(), run.name.clone());
    let joined = tokio::task::spawn_blocking(move || {
        GitSource::new(url, reference.as_ref(), cache)
            .and_then(|s| s.with_auth(auth))
            .map(|s| s.with_timeout(timeout))
            .and_then(|s| s.with_sparse_checkout(&sparse))
            .map(|s| s.with_includes(includes).with_recurse_submodules(recurse).with_verification(verification))
            .and_then(|s| s.with_proxy(proxy))
            .and_then(|s| s.fetch_artifact(&artifacts, Kind::GitRepository.as_str(), &ns, &n, ignore.as_deref(), last.as_ref()))
    })
    .await;
    Ok(match joined {
        Ok(Ok(outcome)) => Fetched::Done(Ok(outcome)),
        Ok(Err(GitError::Verify(e))) => Fetched::Unverified(e),
        Ok(Err(e)) => Fetched::Done(Err((e.reason(), e.to_string()))),
        Err(e) => Fetched::Done(Err((reason::GIT_OPERATION_FAILED, format!("git worker failed: {e}")))),
    })
}
