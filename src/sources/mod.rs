//! The source kinds (GitRepository, Bucket, OCIRepository, HelmRepository, HelmChart) as
//! reconciled kinds: each asks its fetcher in [`crate::source`] for the wanted revision,
//! which stores an artifact only when the revision moved, and publishes it in status.
//! Their other steps are the reconcile core's (a HelmChart's source artifact included).

mod bucket;
mod git;
mod helm;
mod oci;

use k8s_openapi::api::core::v1::Secret;

use crate::api::{Artifact, ConditionStatus, Conditions, Reconciled, SourceStatus, condition_type as ct, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{Done, Reconcile, ReconcileError, Run};
use crate::source::ArtifactOutcome;
use crate::store::{ObjectStore, Severity};

/// What a fetch returns: the outcome, or the condition reason and message of its failure.
pub type FetchResult = Result<ArtifactOutcome, (&'static str, String)>;

/// What a source kind does itself: fetch its wanted revision. Storing only a changed
/// revision is the fetcher's job; `last` is the artifact it may keep. It may record what
/// shaped the artifact in status (a GitRepository's included artifacts).
/// `source` is the artifact of the kind's own `sourceRef` (a HelmChart's), read by the
/// reconcile core.
pub trait Fetch: Reconciled<Status = SourceStatus> {
    fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        source: Option<Artifact>,
    ) -> impl std::future::Future<Output = Result<FetchResult, ReconcileError>> + Send;
}

/// Every source kind reconciles alike: fetch, publish the artifact, and take its artifacts
/// with it when deleted.
impl<K: Fetch> Reconcile for K {
    async fn work<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        source: Option<Artifact>,
        _: bool,
    ) -> Result<Done, ReconcileError> {
        let last = reusable(run);
        let outcome = K::fetch(run, last, source).await?;
        Ok(record(run, outcome))
    }

    async fn finalize<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
    ) -> Result<Option<std::time::Duration>, ReconcileError> {
        remove_artifacts(run);
        Ok(None)
    }
}

/// The artifact a fetch may keep: the current one while the spec is unchanged (a changed ref,
/// prefix or ignore must rebuild it even at the same revision).
fn reusable<K: Reconciled<Status = SourceStatus>, S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, K, S, D>) -> Option<Artifact> {
    run.status.artifact.clone().filter(|_| run.status.observed_generation == run.generation())
}

/// Folds a fetch into the source's status: a new artifact is published (and the previous
/// one kept until the next, for runs still reading it), a failure reported.
fn record<K: Reconciled<Status = SourceStatus>, S: ObjectStore, D: RunnerDispatch>(
    run: &mut Run<'_, K, S, D>,
    outcome: FetchResult,
) -> Done {
    let now = jiff::Timestamp::now().to_string();
    let mut new_artifact = false;
    match outcome {
        Ok(ArtifactOutcome::Unchanged { revision }) => {
            run.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &format!("stored artifact for revision {revision}"));
        }
        Ok(ArtifactOutcome::Stored { revision, artifact, .. }) => {
            let url = run.ctx.artifacts.url(&artifact.path).unwrap_or_default();
            let previous = run.status.artifact.take();
            let keep: Vec<&str> =
                [Some(artifact.digest.as_str()), previous.as_ref().map(|a| a.digest.as_str())].into_iter().flatten().collect();
            if let Err(e) = run.ctx.artifacts.gc(K::KIND.as_str(), &run.namespace, &run.name, &keep) {
                tracing::warn!("artifact garbage collection failed: {e}");
            }
            new_artifact = previous.as_ref().map(|a| &a.digest) != Some(&artifact.digest);
            let message = format!("stored artifact for revision {revision}");
            let moved = previous.as_ref().map(|a| &a.revision) != Some(&revision);
            run.status.artifact =
                Some(Artifact { path: artifact.path, url, revision, digest: artifact.digest, last_update_time: now, size: artifact.size });
            if moved {
                run.event(reason::NEW_ARTIFACT, Severity::Info, message.clone(), None, None);
            }
            run.set(ct::ARTIFACT_IN_STORAGE, ConditionStatus::True, reason::SUCCEEDED, &message);
            run.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
        }
        Ok(ArtifactOutcome::Static { message }) => {
            if run.status.artifact.take().is_some() {
                remove_artifacts(run);
            }
            run.status.remove_condition(ct::ARTIFACT_IN_STORAGE);
            run.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
        }
        Err((why, message)) => run.report_failure(why, &message),
    }
    if run.status.is_true(ct::READY) {
        run.status.remove_condition(ct::STALLED);
    }
    Done { after: run.interval(), new_artifact }
}

/// A deleted source takes its artifacts with it.
fn remove_artifacts<K: Reconciled, S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, K, S, D>) {
    if let Err(e) = run.ctx.artifacts.remove_object(K::KIND.as_str(), &run.namespace, &run.name) {
        tracing::warn!("cannot remove the artifacts of a deleted source: {e}");
    }
}

/// The text values of the Secret a source's `secretRef` names, or the failure to report.
pub(crate) async fn secret_data<S: ObjectStore>(
    store: &S,
    namespace: &str,
    name: &str,
    field: &str,
) -> Result<Result<std::collections::BTreeMap<String, String>, String>, ReconcileError> {
    Ok(match store.get::<Secret>(namespace, name).await? {
        None => Err(format!("{field}: Secret {namespace}/{name} not found")),
        Some(secret) => {
            driftless_core::secret::secret_strings(&secret).map_err(|key| format!("{field}: Secret {name} key {key:?} is not text"))
        }
    })
}
