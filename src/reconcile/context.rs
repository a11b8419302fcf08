//! What every reconcile shares: where objects live, how runs execute, where state and plans
//! go, where events are sent, and which cluster manifests are applied to.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::dispatch::BackendSpec;
use crate::source::ArtifactStore;
use crate::store::EventLog;

pub struct Context<S, D> {
    pub store: S,
    pub dispatch: D,
    /// The default backend for objects without `spec.backendConfig`.
    pub backend: BackendSpec,
    pub artifacts: ArtifactStore,
    /// Signs the artifact URL each run gets (a cluster's artifact server checks it).
    pub artifact_access: crate::source::ArtifactAccess,
    /// Bare-repository caches of Git sources.
    pub git_cache: PathBuf,
    pub events: EventLog,
    /// terraform binary handed to runners; `None` lets the runner search PATH.
    pub terraform_path: Option<PathBuf>,
    /// tofu binary handed to runners; `None` lets the runner search PATH.
    pub tofu_path: Option<PathBuf>,
    /// Recorded as lock holder and in events.
    pub identity: String,
    /// Deadline of one runner.
    pub run_timeout: Duration,
    /// The cluster Kustomizations apply to.
    pub clusters: Clusters,
    /// What the cluster owner allows objects to refer to and use.
    pub tenancy: crate::api::Tenancy,
}

type LoadConfig = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<kube::Config, String>> + Send>> + Send + Sync>;

/// The cluster manifests are applied to, and with whose rights: the controller's own
/// cluster, or (local store) the current kube context, connected on first use so that a
/// local store without Kustomizations needs no cluster at all.
pub struct Clusters {
    load: LoadConfig,
    /// The ServiceAccount an object that names none applies as (`--default-service-account`).
    default_account: Option<String>,
    /// Who the cluster's own client is, for messages.
    own_identity: &'static str,
    config: tokio::sync::OnceCell<kube::Config>,
    client: tokio::sync::OnceCell<kube::Client>,
}

/// Why no client could be had for an object: the condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoClient {
    pub reason: &'static str,
    pub message: String,
}

impl Clusters {
    /// A cluster already connected (the controller): `config` is what impersonation starts
    /// from; without it a ServiceAccount cannot be impersonated.
    pub fn connected(client: kube::Client, config: Option<kube::Config>) -> Self {
        let loaded = config.clone();
        let clusters = Self {
            load: Box::new(move || {
                let config = loaded.clone();
                Box::pin(async move { config.ok_or_else(|| "this controller has no kube config to impersonate with".to_string()) })
            }),
            config: tokio::sync::OnceCell::new(),
            client: tokio::sync::OnceCell::new_with(Some(client)),
            default_account: None,
            own_identity: "the controller's own identity",
        };
        if let Some(config) = config {
            let _ = clusters.config.set(config);
        }
        clusters
    }

    /// A cluster found when first needed, by `load` (the kube context of a local store).
    /// A failure is not kept: the next reconcile tries again.
    pub fn lazy<F, Fut>(load: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<kube::Config, String>> + Send + 'static,
    {
        Self {
            load: Box::new(move || Box::pin(load())),
            config: tokio::sync::OnceCell::new(),
            client: tokio::sync::OnceCell::new(),
            default_account: None,
            own_identity: "the user of the current kube context",
        }
    }

    /// Objects that name no ServiceAccount apply as `account` of their own namespace, not
    /// with this cluster's own rights (Flux's `--default-service-account`).
    pub fn with_default_account(mut self, account: Option<String>) -> Self {
        self.default_account = account;
        self
    }

    async fn config(&self) -> Result<&kube::Config, NoClient> {
        self.config.get_or_try_init(|| (self.load)()).await.map_err(|message| NoClient {
            reason: crate::api::reason::CLUSTER_UNAVAILABLE,
            message: format!("a Kustomization applies manifests to a cluster, and there is none to use: {message}"),
        })
    }

    /// The client an object in `namespace` applies with, and who that is: its
    /// `serviceAccountName` (else the default account) impersonated, or the cluster's own.
    /// Never the cluster's own rights when an account is named and cannot be impersonated.
    pub async fn client_for(&self, namespace: &str, account: Option<&str>) -> Result<(kube::Client, String), NoClient> {
        let Some(account) = account.or(self.default_account.as_deref()) else {
            let identity = self.own_identity.to_string();
            if let Some(client) = self.client.get() {
                return Ok((client.clone(), identity));
            }
            let config = self.config().await?.clone();
            let client = kube::Client::try_from(config).map_err(|e| NoClient {
                reason: crate::api::reason::CLUSTER_UNAVAILABLE,
                message: format!("cannot connect to the cluster of the kube context: {e}"),
            })?;
            return Ok((self.client.get_or_init(|| async { client }).await.clone(), identity));
        };
        let invalid = |message: String| NoClient { reason: crate::api::reason::INVALID_SPEC, message };
        let mut config = self.config().await.map_err(|e| invalid(format!("spec.serviceAccountName {account}: {}", e.message)))?.clone();
        config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
        config.auth_info.impersonate_groups = None;
        let client = kube::Client::try_from(config).map_err(|e| invalid(format!("spec.serviceAccountName {account}: {e}")))?;
        Ok((client, format!("ServiceAccount {namespace}/{account}")))
    }
}
