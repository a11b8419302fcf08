//! HelmRepository and HelmChart: an HTTP repository's index into an artifact; a chart from
//! that index, from an OCI repository, or packaged from a Git or Bucket artifact. The
//! HelmChart reads its HelmRepository's URL and credentials as Flux's does.

use super::{Fetch, FetchResult, secret_data};
use crate::api::{Artifact, HelmChart, HelmRepository, HelmRepositoryType, Kind, reason};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{ReconcileError, Run};
use crate::source::ArtifactOutcome;
use crate::source::helm::{self, BasicAuth, ChartRepositoryClient, ChartRequest, HelmError};
use crate::source::oci::{Credentials, Registry, Repository, credentials_from_secret};
use crate::store::ObjectStore;

impl Fetch for HelmRepository {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        _: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        let repository = run.object.clone();
        let access = match Access::of(&run.ctx.store, &run.namespace, &repository).await? {
            Ok(a) => a,
            Err(failure) => return Ok(Err(failure)),
        };
        let spec = &repository.spec;
        if spec.repository_type == HelmRepositoryType::Oci {
            return Ok(match Repository::parse(&spec.url) {
                Err(e) => Err((reason::URL_INVALID, format!("spec.url: {e}"))),
                Ok(_) => Ok(ArtifactOutcome::Static {
                    message: format!("Helm repository is ready: the HelmCharts naming it pull their charts from {}", spec.url),
                }),
            });
        }
        let client = access.http_client(&repository);
        Ok(helm::fetch_index(&client, &spec.url, &run.ctx.artifacts, &run.namespace, &run.name, last.as_ref())
            .await
            .map_err(|e| (e.repository_reason(), e.to_string())))
    }
}

impl Fetch for HelmChart {
    async fn fetch<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        last: Option<Artifact>,
        source: Option<Artifact>,
    ) -> Result<FetchResult, ReconcileError> {
        let spec = run.object.spec.clone();
        let request = ChartRequest {
            object: format!("{}/{}", run.namespace, run.name),
            chart: spec.chart.clone(),
            version: spec.version.clone(),
            values_files: spec.values_files.clone(),
            ignore_missing_values_files: spec.ignore_missing_values_files,
            strategy: spec.reconcile_strategy,
            generation: run.generation().unwrap_or_default(),
        };
        let (store, artifacts) = (&run.ctx.store, &run.ctx.artifacts);
        let outcome = match Kind::from_api(&spec.source_ref.kind) {
            Some(Kind::HelmRepository) => {
                let Some(repository) = store.get::<HelmRepository>(&run.namespace, &spec.source_ref.name).await? else {
                    return Ok(Err((
                        reason::SOURCE_NOT_READY,
                        format!("HelmRepository {}/{} not found", run.namespace, spec.source_ref.name),
                    )));
                };
                let access = match Access::of(store, &run.namespace, &repository).await? {
                    Ok(a) => a,
                    Err(failure) => return Ok(Err(failure)),
                };
                match repository.spec.repository_type {
                    HelmRepositoryType::Oci => {
                        let base = match Repository::parse(&repository.spec.url) {
                            Ok(b) => b,
                            Err(e) => {
                                return Ok(Err((reason::URL_INVALID, format!("HelmRepository {}: spec.url: {e}", spec.source_ref.name))));
                            }
                        };
                        let registry = access.registry(&repository, &base);
                        helm::chart_from_oci(&registry, &base, &request, artifacts, &run.namespace, last.as_ref()).await
                    }
                    HelmRepositoryType::Default => {
                        let Some(index) = source else {
                            return Ok(Err((
                                reason::NO_SOURCE_ARTIFACT,
                                format!("HelmRepository {} has no index yet", spec.source_ref.name),
                            )));
                        };
                        let client = access.http_client(&repository);
                        let (store, url) = (artifacts.clone(), repository.spec.url.clone());
                        match tokio::task::spawn_blocking(move || helm::read_index(&store, &index)).await {
                            Ok(Ok(index)) => {
                                helm::chart_from_index(&client, &url, &index, &request, artifacts, &run.namespace, last.as_ref()).await
                            }
                            Ok(Err(e)) => Err(e),
                            Err(e) => Err(HelmError::Io { path: "the index".into(), source: std::io::Error::other(e) }),
                        }
                    }
                }
            }
            Some(Kind::GitRepository | Kind::Bucket) => {
                let Some(source) = source else {
                    return Ok(Err((
                        reason::NO_SOURCE_ARTIFACT,
                        format!("{} {} has no artifact yet", spec.source_ref.kind, spec.source_ref.name),
                    )));
                };
                let (store, namespace) = (artifacts.clone(), run.namespace.clone());
                tokio::task::spawn_blocking(move || -> Result<ArtifactOutcome, HelmError> {
                    let tree = tempfile::Builder::new()
                        .prefix("driftless-chart-source-")
                        .tempdir()
                        .map_err(|source| HelmError::Io { path: "a temporary directory".into(), source })?;
                    store.unpack(&source.path, &source.digest, tree.path())?;
                    helm::chart_from_tree(tree.path(), &source.revision, &request, &store, &namespace, last.as_ref())
                })
                .await
                .unwrap_or_else(|e| Err(HelmError::Io { path: "the chart".into(), source: std::io::Error::other(e) }))
            }
            _ => return Ok(Err((reason::INVALID_SPEC, format!("spec.sourceRef.kind: use {}", Kind::list(&Kind::CHART_SOURCES))))),
        };
        Ok(outcome.map_err(|e| (e.chart_reason(), e.to_string())))
    }
}

/// What a HelmRepository's Secrets give its clients.
struct Access {
    auth: Option<BasicAuth>,
    /// For `type: oci`: the registry credentials (a docker config's entry, or the user and
    /// password).
    registry_credentials: Option<Credentials>,
    tls: rustls::ClientConfig,
}

impl Access {
    /// Reads `secretRef` (`username` and `password`, or a docker config for `oci`) and the
    /// TLS keys of `certSecretRef` (else, as Flux still does, of `secretRef`).
    async fn of<S: ObjectStore>(
        store: &S,
        namespace: &str,
        repository: &HelmRepository,
    ) -> Result<Result<Access, (&'static str, String)>, ReconcileError> {
        let name = kube::ResourceExt::name_any(repository);
        let spec = &repository.spec;
        let denied = |m: String| Err((reason::AUTHENTICATION_FAILED, format!("HelmRepository {name}: {m}")));
        let secret = match &spec.secret_ref {
            None => None,
            Some(r) => match secret_data(store, namespace, &r.name, "spec.secretRef").await? {
                Ok(d) => Some(d),
                Err(m) => return Ok(denied(m)),
            },
        };
        let (mut auth, mut registry_credentials) = (None, None);
        if let Some(data) = &secret {
            match (data.get("username"), data.get("password")) {
                (Some(u), Some(p)) => {
                    auth = Some(BasicAuth { username: u.clone(), password: p.clone() });
                    registry_credentials = Some(Credentials { username: u.clone(), password: p.clone() });
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Ok(denied("spec.secretRef: the Secret must hold both username and password".into()));
                }
                (None, None) if spec.repository_type == HelmRepositoryType::Oci => {
                    let host = Repository::parse(&spec.url).map(|r| r.registry).unwrap_or_default();
                    match credentials_from_secret(data, &host) {
                        Ok(c) => registry_credentials = c,
                        Err(m) => return Ok(denied(format!("spec.secretRef: {m}"))),
                    }
                }
                (None, None) => {}
            }
        }
        let tls_data = match &spec.cert_secret_ref {
            Some(r) => match secret_data(store, namespace, &r.name, "spec.certSecretRef").await? {
                Ok(d) => Some(("spec.certSecretRef", d)),
                Err(m) => return Ok(denied(m)),
            },
            None => secret.clone().map(|d| ("spec.secretRef", d)),
        };
        let keys = |d: &std::collections::BTreeMap<String, String>, new: &str, old: &str| d.get(new).or_else(|| d.get(old)).cloned();
        let tls = match &tls_data {
            None => crate::tls::client_config(crate::tls::TlsKeys::default()),
            Some((field, d)) => {
                let (ca, cert, key) = (keys(d, "ca.crt", "caFile"), keys(d, "tls.crt", "certFile"), keys(d, "tls.key", "keyFile"));
                crate::tls::client_config(crate::tls::TlsKeys {
                    ca_cert: ca.as_deref(),
                    client_cert: cert.as_deref(),
                    client_key: key.as_deref(),
                })
                .map_err(|e| format!("{field}: {e}"))
            }
        };
        Ok(match tls {
            Ok(tls) => Ok(Access { auth, registry_credentials, tls }),
            Err(m) => denied(m),
        })
    }

    fn timeout(repository: &HelmRepository) -> std::time::Duration {
        repository.spec.timeout.as_ref().map_or(helm::DEFAULT_TIMEOUT, |t| t.as_std())
    }

    fn http_client(&self, repository: &HelmRepository) -> ChartRepositoryClient {
        ChartRepositoryClient::new(
            &repository.spec.url,
            self.tls.clone(),
            self.auth.clone(),
            repository.spec.pass_credentials,
            Self::timeout(repository),
        )
    }

    fn registry(&self, repository: &HelmRepository, base: &Repository) -> Registry {
        Registry::new(
            &base.registry,
            repository.spec.insecure,
            self.tls.clone(),
            self.registry_credentials.clone(),
            Self::timeout(repository),
        )
    }
}
