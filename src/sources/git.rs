//! GitRepository: fetch the wanted revision (branch, tag, semver, commit) into an artifact.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Fetch, FetchResult, secret_data};
use crate::api::{Artifact, GitRepository, Kind, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{ReconcileError, Run};
use crate::source::{GitAuth, GitSource};
use crate::store::ObjectStore;

impl Fetch for GitRepository {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &Run<'_, Self, S, D>,
        last: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        fetch(run, last).await
    }
}

/// The fetch itself, on a blocking thread (libgit2 blocks).
async fn fetch<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, GitRepository, S, D>,
    last: Option<Artifact>,
) -> Result<FetchResult, ReconcileError> {
    let spec = &run.object.spec;
    let auth = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let data = secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.secretRef").await?;
            match data.and_then(|d| GitAuth::from_secret_data(&d).map_err(|e| format!("spec.secretRef: {e}"))) {
                Ok(a) => Some(a),
                Err(m) => return Ok(Err((reason::GIT_OPERATION_FAILED, m))),
            }
        }
    };
    // One cache per object: libgit2 allows one fetch per repository at a time, and two
    // objects may name the same URL.
    let cache = run.ctx.git_cache.join(&run.namespace).join(&run.name).join(&hex::encode(Sha256::digest(spec.url.as_bytes()))[..16]);
    let timeout = spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(60));
    let (url, reference, ignore, sparse) = (spec.url.clone(), spec.reference.clone(), spec.ignore.clone(), spec.sparse_checkout.clone());
    let artifacts = run.ctx.artifacts.clone();
    let (ns, n) = (run.namespace.clone(), run.name.clone());
    let joined = tokio::task::spawn_blocking(move || {
        GitSource::new(url, reference.as_ref(), cache)
            .and_then(|s| s.with_auth(auth))
            .map(|s| s.with_timeout(timeout))
            .and_then(|s| s.with_sparse_checkout(&sparse))
            .and_then(|s| s.fetch_artifact(&artifacts, Kind::GitRepository.as_str(), &ns, &n, ignore.as_deref(), last.as_ref()))
    })
    .await;
    Ok(match joined {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err((e.reason(), e.to_string())),
        Err(e) => Err((reason::GIT_OPERATION_FAILED, format!("git worker failed: {e}"))),
    })
}
