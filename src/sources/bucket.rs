//! Bucket: list an S3-compatible bucket (or a prefix of it) and download it into an
//! artifact when the listing changed.

use super::{Fetch, FetchResult, secret_data};
use crate::api::{Artifact, Bucket, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{ReconcileError, Run};
use crate::source::BucketSource;
use crate::store::ObjectStore;

impl Fetch for Bucket {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        _: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        fetch(run, last).await
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
    // Never the controller's own cloud identity for a tenant's Bucket, unless the cluster
    // owner allows it: without a secretRef the bucket is read anonymously.
    let anonymous = credentials.is_none() && !run.ctx.tenancy.ambient_credentials;
    let source = BucketSource::connect(spec, credentials, anonymous).await;
    Ok(source
        .fetch_artifact(&run.ctx.artifacts, &run.namespace, &run.name, spec.ignore.as_deref(), last.as_ref())
        .await
        .map_err(|e| (e.reason(), e.to_string())))
}
