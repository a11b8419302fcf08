//! Bucket: list an S3-compatible bucket (or a prefix of it) and download it into an
//! artifact when the listing changed.

use std::time::Duration;

use super::{FetchResult, record, remove_artifacts, reusable, secret_data};
use crate::api::{Artifact, Bucket, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{Done, Reconcile, ReconcileError, Run};
use crate::source::BucketSource;
use crate::store::ObjectStore;

impl Reconcile for Bucket {
    async fn work<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        _: Option<Artifact>,
        _: bool,
    ) -> Result<Done, ReconcileError> {
        let last = reusable(run);
        let outcome = fetch(run, last).await?;
        Ok(record(run, outcome))
    }

    async fn finalize<S: ObjectStore, D: RunnerDispatch>(run: &mut Run<'_, Self, S, D>) -> Result<Option<Duration>, ReconcileError> {
        remove_artifacts(run);
        Ok(None)
    }
}

async fn fetch<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, Bucket, S, D>,
    last: Option<Artifact>,
) -> Result<FetchResult, ReconcileError> {
    let spec = &run.object.spec;
    let credentials = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let data = secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.secretRef").await?;
            match data.and_then(|d| {
                crate::backend::S3Credentials::from_secret_data(&d).map_err(|e| format!("spec.secretRef: Secret {}: {e}", r.name))
            }) {
                Ok(c) => Some(c),
                Err(m) => return Ok(Err((reason::AUTHENTICATION_FAILED, m))),
            }
        }
    };
    let source = BucketSource::connect(spec, credentials).await;
    Ok(source
        .fetch_artifact(&run.ctx.artifacts, &run.namespace, &run.name, spec.ignore.as_deref(), last.as_ref())
        .await
        .map_err(|e| (e.reason(), e.to_string())))
}
