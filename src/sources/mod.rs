//! The source reconciler, one for every source kind (GitRepository, Bucket): ask the kind's
//! fetcher for the wanted revision, which stores an artifact only when the revision moved,
//! and publish it in status.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::{ArtifactOutcome, GitAuth, GitSource};
use crate::api::{
    Artifact, Bucket, ConditionStatus, Conditions, GitRepository, SourceStatus, Validate, annotation, condition_type as ct, reason,
};
use crate::context::{Context, ReconcileError, Requeue};
use crate::dispatch::RunnerDispatch;
use crate::store::{Event, ObjectStore, Severity, StoredObject};
use crate::terraform::secret_strings;

pub const KIND: &str = "GitRepository";

/// What a fetch returns: the outcome, or the condition reason and message of its failure.
pub type FetchResult = Result<ArtifactOutcome, (&'static str, String)>;

/// A kind the source reconciler serves: its schedule, its status, and how to fetch it.
pub trait Source: StoredObject + Validate {
    const KIND: &'static str;
    fn interval(&self) -> Duration;
    fn suspended(&self) -> bool;
    fn source_status(&self) -> Option<&SourceStatus>;
    fn set_source_status(&mut self, status: SourceStatus);
    /// Fetches the wanted revision; stores an artifact only when it differs from `last`
    /// (the current artifact while the spec is unchanged).
    fn fetch<S: ObjectStore, D: RunnerDispatch>(
        &self,
        ctx: &Context<S, D>,
        namespace: &str,
        name: &str,
        last: Option<Artifact>,
    ) -> impl Future<Output = Result<FetchResult, ReconcileError>> + Send;
}

/// Reconciles one GitRepository. `forced` fetches even when the object is suspended.
pub async fn reconcile<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    reconcile_source::<GitRepository, S, D>(ctx, namespace, name, forced).await
}

/// Reconciles one source object of kind `K`.
#[instrument(skip(ctx), fields(kind = K::KIND))]
pub async fn reconcile_source<K: Source, S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    let Some(source) = ctx.store.get::<K>(namespace, name).await? else {
        return Ok(Requeue { after: Duration::MAX, became_ready: false, failing: false });
    };
    let interval = source.interval();
    if source.suspended() && !forced {
        return Ok(Requeue { after: interval, became_ready: false, failing: false });
    }
    let kind = K::KIND;
    let mut status = source.source_status().cloned().unwrap_or_default();
    let was_ready = status.is_true(ct::READY);
    let generation = source.meta().generation;
    let now = jiff::Timestamp::now().to_string();
    if let Some(requested) = source.meta().annotations.as_ref().and_then(|a| a.get(annotation::RECONCILE_REQUESTED_AT)) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    let outcome = match source.validate() {
        Err(e) => Err((reason::INVALID_SPEC, e.to_string())),
        // A spec change (ref, prefix, ignore) must rebuild the artifact even at the same revision.
        Ok(()) => {
            let last = status.artifact.clone().filter(|_| status.observed_generation == generation);
            source.fetch(ctx, namespace, name, last).await?
        }
    };
    let event = |reason: &str, severity: Severity, message: String, revision: Option<String>| {
        ctx.events.emit(&Event {
            time: now.clone(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            reason: reason.into(),
            severity,
            message,
            revision,
            plan_id: None,
            drift_id: None,
        });
    };
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
            let url = ctx.artifacts.url(&artifact.path).unwrap_or_default();
            let previous = status.artifact.take();
            let keep: Vec<&str> =
                [Some(artifact.digest.as_str()), previous.as_ref().map(|a| a.digest.as_str())].into_iter().flatten().collect();
            if let Err(e) = ctx.artifacts.gc(kind, namespace, name, &keep) {
                tracing::warn!("artifact garbage collection failed: {e}");
            }
            let message = format!("stored artifact for revision {revision}");
            if previous.as_ref().map(|a| &a.revision) != Some(&revision) {
                event("NewArtifact", Severity::Info, message.clone(), Some(revision.clone()));
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
            event("ReconciliationFailed", Severity::Error, message, None);
        }
    }
    if status.is_true(ct::READY) {
        status.remove_condition(ct::STALLED);
    }
    status.observed_generation = generation;
    let became_ready = !was_ready && status.is_true(ct::READY);
    let failing = !status.is_true(ct::READY);
    ctx.store.update::<K>(namespace, name, move |r| r.set_source_status(status.clone())).await?;
    Ok(Requeue { after: interval, became_ready, failing })
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
        Some(secret) => secret_strings(&secret).map_err(|key| format!("{field}: Secret {name} key {key:?} is not text")),
    })
}

impl Source for GitRepository {
    const KIND: &'static str = KIND;

    fn interval(&self) -> Duration {
        self.spec.interval.as_std()
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn source_status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }

    fn set_source_status(&mut self, status: SourceStatus) {
        self.status = Some(status);
    }

    /// The fetch itself, on a blocking thread.
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        &self,
        ctx: &Context<S, D>,
        namespace: &str,
        name: &str,
        last: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        let auth = match &self.spec.secret_ref {
            None => None,
            Some(r) => {
                let data = secret_data(&ctx.store, namespace, &r.name, "spec.secretRef").await?;
                match data.and_then(|d| GitAuth::from_secret_data(&d).map_err(|e| format!("spec.secretRef: {e}"))) {
                    Ok(a) => Some(a),
                    Err(m) => return Ok(Err((reason::GIT_OPERATION_FAILED, m))),
                }
            }
        };
        // One cache per object: libgit2 allows one fetch per repository at a time, and two
        // objects may name the same URL.
        let cache = ctx.git_cache.join(namespace).join(name).join(&hex::encode(Sha256::digest(self.spec.url.as_bytes()))[..16]);
        let timeout = self.spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(60));
        let (url, reference, ignore) = (self.spec.url.clone(), self.spec.reference.clone(), self.spec.ignore.clone());
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
}

impl Source for Bucket {
    const KIND: &'static str = super::bucket::KIND;

    fn interval(&self) -> Duration {
        self.spec.interval.as_std()
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn source_status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }

    fn set_source_status(&mut self, status: SourceStatus) {
        self.status = Some(status);
    }

    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        &self,
        ctx: &Context<S, D>,
        namespace: &str,
        name: &str,
        last: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        let credentials = match &self.spec.secret_ref {
            None => None,
            Some(r) => {
                let data = secret_data(&ctx.store, namespace, &r.name, "spec.secretRef").await?;
                match data.and_then(|d| {
                    crate::backend::S3Credentials::from_secret_data(&d).map_err(|e| format!("spec.secretRef: Secret {}: {e}", r.name))
                }) {
                    Ok(c) => Some(c),
                    Err(m) => return Ok(Err((reason::AUTHENTICATION_FAILED, m))),
                }
            }
        };
        let source = super::bucket::BucketSource::connect(&self.spec, credentials).await;
        Ok(source
            .fetch_artifact(&ctx.artifacts, namespace, name, self.spec.ignore.as_deref(), last.as_ref())
            .await
            .map_err(|e| (e.reason(), e.to_string())))
    }
}

/// Reconciles one Bucket.
pub async fn reconcile_bucket<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    reconcile_source::<Bucket, S, D>(ctx, namespace, name, forced).await
}

/// The artifact of the source a Terraform (or later a Kustomization) reads, or why there is
/// none: the same answer for every source kind.
pub async fn source_artifact<S: ObjectStore>(
    store: &S,
    kind: &str,
    namespace: &str,
    name: &str,
    artifact_exists: impl Fn(&Artifact) -> bool,
) -> Result<Result<Artifact, String>, ReconcileError> {
    async fn status_of<K: Source, S: ObjectStore>(store: &S, namespace: &str, name: &str) -> Result<Option<SourceStatus>, ReconcileError> {
        Ok(store.get::<K>(namespace, name).await?.map(|o| o.source_status().cloned().unwrap_or_default()))
    }
    let status = match kind {
        "GitRepository" => status_of::<GitRepository, S>(store, namespace, name).await?,
        "Bucket" => status_of::<Bucket, S>(store, namespace, name).await?,
        other => return Ok(Err(format!("{other} is not a source kind; use GitRepository or Bucket"))),
    };
    let Some(status) = status else {
        return Ok(Err(format!("{kind} {namespace}/{name} not found; create it or fix spec.sourceRef")));
    };
    match status.artifact.clone() {
        Some(a) if status.is_true(ct::READY) || artifact_exists(&a) => Ok(Ok(a)),
        _ => {
            let why = status.condition(ct::READY).map(|c| c.message.clone()).unwrap_or_else(|| "not fetched yet".into());
            Ok(Err(format!("{kind} {namespace}/{name} has no artifact: {why}")))
        }
    }
}
