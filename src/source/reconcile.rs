//! The GitRepository reconciler: resolve the wanted revision, fetch only when it moved, and
//! publish a content-addressed artifact in status.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::{ArtifactOutcome, GitAuth, GitSource};
use crate::api::{
    Artifact, ConditionStatus, Conditions, GitRepository, GitRepositoryStatus, Validate, annotation, condition_type as ct, reason,
};
use crate::context::{Context, ReconcileError, Requeue};
use crate::dispatch::RunnerDispatch;
use crate::store::{Event, ObjectStore, Severity};
use crate::terraform::secret_strings;

pub const KIND: &str = "GitRepository";

/// Reconciles one GitRepository. `forced` fetches even when the interval has not passed.
#[instrument(skip(ctx), fields(kind = KIND))]
pub async fn reconcile<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    let Some(repo) = ctx.store.get::<GitRepository>(namespace, name).await? else {
        return Ok(Requeue { after: Duration::MAX, became_ready: false });
    };
    let interval = repo.spec.interval.as_std();
    if repo.spec.suspend && !forced {
        return Ok(Requeue { after: interval, became_ready: false });
    }
    let mut status = repo.status.clone().unwrap_or_default();
    let was_ready = status.is_true(ct::READY);
    let generation = repo.metadata.generation;
    let now = jiff::Timestamp::now().to_string();
    if let Some(requested) = repo.metadata.annotations.as_ref().and_then(|a| a.get(annotation::RECONCILE_REQUESTED_AT)) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    let outcome = fetch(ctx, &repo, namespace, name, &status).await?;
    match outcome {
        Ok(ArtifactOutcome::Unchanged { revision }) => {
            status.set_condition(
                ct::READY,
                ConditionStatus::True,
                reason::SUCCEEDED,
                &format!("stored artifact for revision {revision}"),
                generation,
                &now,
            );
        }
        Ok(ArtifactOutcome::Stored { revision, artifact, .. }) => {
            let url = ctx.artifacts.file_url(&artifact.path).unwrap_or_default();
            let previous = status.artifact.take();
            let keep: Vec<&str> =
                [Some(artifact.digest.as_str()), previous.as_ref().map(|a| a.digest.as_str())].into_iter().flatten().collect();
            if let Err(e) = ctx.artifacts.gc(KIND, namespace, name, &keep) {
                tracing::warn!("artifact garbage collection failed: {e}");
            }
            let message = format!("stored artifact for revision {revision}");
            if previous.as_ref().map(|a| &a.revision) != Some(&revision) {
                ctx.events.emit(&Event {
                    time: now.clone(),
                    kind: KIND.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                    reason: "NewArtifact".into(),
                    severity: Severity::Info,
                    message: message.clone(),
                    revision: Some(revision.clone()),
                    plan_id: None,
                    drift_id: None,
                });
            }
            status.artifact = Some(Artifact {
                path: artifact.path,
                url,
                revision,
                digest: artifact.digest,
                last_update_time: now.clone(),
                size: artifact.size,
            });
            status.set_condition(ct::ARTIFACT_IN_STORAGE, ConditionStatus::True, reason::SUCCEEDED, &message, generation, &now);
            status.set_condition(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message, generation, &now);
        }
        Err((why, message)) => {
            if why == reason::INVALID_SPEC {
                status.set_condition(ct::STALLED, ConditionStatus::True, why, &message, generation, &now);
            }
            status.set_condition(ct::READY, ConditionStatus::False, why, &message, generation, &now);
            ctx.events.emit(&Event {
                time: now.clone(),
                kind: KIND.into(),
                namespace: namespace.into(),
                name: name.into(),
                reason: "ReconciliationFailed".into(),
                severity: Severity::Error,
                message,
                revision: None,
                plan_id: None,
                drift_id: None,
            });
        }
    }
    if status.is_true(ct::READY) {
        status.remove_condition(ct::STALLED);
    }
    status.observed_generation = generation;
    let became_ready = !was_ready && status.is_true(ct::READY);
    let saved = status.clone();
    ctx.store.update::<GitRepository>(namespace, name, move |r| r.status = Some(saved)).await?;
    Ok(Requeue { after: interval, became_ready })
}

/// The fetch itself, on a blocking thread; errors come back as (reason, message).
async fn fetch<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    repo: &GitRepository,
    namespace: &str,
    name: &str,
    status: &GitRepositoryStatus,
) -> Result<Result<ArtifactOutcome, (&'static str, String)>, ReconcileError> {
    if let Err(e) = repo.validate() {
        return Ok(Err((reason::INVALID_SPEC, e.to_string())));
    }
    let auth = match &repo.spec.secret_ref {
        None => None,
        Some(r) => match ctx.store.get::<Secret>(namespace, &r.name).await? {
            None => return Ok(Err((reason::GIT_OPERATION_FAILED, format!("spec.secretRef: Secret {namespace}/{} not found", r.name)))),
            Some(secret) => {
                let data = secret_strings(&secret).map_err(|key| format!("spec.secretRef: Secret {} key {key:?} is not text", r.name));
                match data.and_then(|d| GitAuth::from_secret_data(&d).map_err(|e| format!("spec.secretRef: {e}"))) {
                    Ok(a) => Some(a),
                    Err(m) => return Ok(Err((reason::GIT_OPERATION_FAILED, m))),
                }
            }
        },
    };
    // One cache per object: libgit2 allows one fetch per repository at a time, and two
    // objects may name the same URL.
    let cache = ctx.git_cache.join(namespace).join(name).join(&hex::encode(Sha256::digest(repo.spec.url.as_bytes()))[..16]);
    let timeout = repo.spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(60));
    // A spec change (ref, ignore) must rebuild the artifact even at the same commit.
    let last = status.artifact.clone().filter(|_| status.observed_generation == repo.metadata.generation);
    let (url, reference, ignore) = (repo.spec.url.clone(), repo.spec.reference.clone(), repo.spec.ignore.clone());
    let artifacts = ctx.artifacts.clone();
    let (ns, n) = (namespace.to_string(), name.to_string());
    let joined = tokio::task::spawn_blocking(move || {
        GitSource::new(url, reference.as_ref(), cache)
            .and_then(|s| s.with_auth(auth))
            .map(|s| s.with_timeout(timeout))
            .and_then(|s| s.fetch_artifact(&artifacts, KIND, &ns, &n, ignore.as_deref(), last.as_ref()))
    })
    .await;
    Ok(match joined {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err((e.reason(), e.to_string())),
        Err(e) => Err((reason::GIT_OPERATION_FAILED, format!("git worker failed: {e}"))),
    })
}
