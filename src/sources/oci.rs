//! OCIRepository: resolve the ref to a manifest digest and pull the selected layer into an
//! artifact when the digest moved.

use super::{Fetch, FetchResult, secret_data};
use crate::api::{Artifact, OciRepository, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{ReconcileError, Run};
use crate::source::oci::{OciSource, Repository, Selector, credentials_from_secret};
use crate::store::ObjectStore;

impl Fetch for OciRepository {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        _: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        fetch(run, last).await
    }
}

async fn fetch<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, OciRepository, S, D>,
    last: Option<Artifact>,
) -> Result<FetchResult, ReconcileError> {
    let spec = &run.object.spec;
    // Validation has read both already; a failure here is reported, never a panic.
    let repository = match Repository::parse(&spec.url) {
        Ok(r) => r,
        Err(e) => return Ok(Err((e.reason(), e.to_string()))),
    };
    let selector = match Selector::from_spec(spec.reference.as_ref()) {
        Ok(s) => s,
        Err(e) => return Ok(Err((e.reason(), format!("spec.{e}")))),
    };
    let credentials = match &spec.secret_ref {
        None => None,
        Some(r) => {
            let data = secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.secretRef").await?;
            match data.and_then(|d| {
                credentials_from_secret(&d, &repository.registry).map_err(|e| format!("spec.secretRef: Secret {}: {e}", r.name))
            }) {
                Ok(c) => c,
                Err(m) => return Ok(Err((reason::AUTHENTICATION_FAILED, m))),
            }
        }
    };
    let tls = match &spec.cert_secret_ref {
        None => crate::tls::client_config(crate::tls::TlsKeys::default()),
        Some(r) => match secret_data(&run.ctx.store, &run.namespace, &r.name, "spec.certSecretRef").await? {
            Err(m) => Err(m),
            Ok(d) => crate::tls::client_config(crate::tls::TlsKeys {
                ca_cert: d.get("ca.crt").map(String::as_str),
                client_cert: d.get("tls.crt").map(String::as_str),
                client_key: d.get("tls.key").map(String::as_str),
            })
            .map_err(|e| format!("spec.certSecretRef: Secret {}: {e}", r.name)),
        },
    };
    let tls = match tls {
        Ok(t) => t,
        Err(m) => return Ok(Err((reason::AUTHENTICATION_FAILED, m))),
    };
    let timeout = spec.timeout.as_ref().map(|t| t.as_std());
    let source = OciSource::new(repository, selector, spec.layer_selector.clone(), spec.insecure, tls, credentials, timeout);
    Ok(source
        .fetch_artifact(&run.ctx.artifacts, &run.namespace, &run.name, spec.ignore.as_deref(), last.as_ref())
        .await
        .map_err(|e| (e.reason(), e.to_string())))
}
