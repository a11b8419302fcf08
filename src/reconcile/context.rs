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

    /// The client of another cluster, from a kubeconfig (Flux's `kubeConfig`): as its
    /// current context's user, or, when the object names a ServiceAccount (or the default
    /// account applies), impersonating that account of `namespace` on that cluster, as Flux
    /// does. `source` names where the kubeconfig came from, for messages.
    pub async fn client_for_kubeconfig(
        &self,
        kubeconfig: &str,
        source: &str,
        namespace: &str,
        account: Option<&str>,
    ) -> Result<(kube::Client, String), NoClient> {
        let invalid = |message: String| NoClient { reason: crate::api::reason::INVALID_SPEC, message };
        let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| invalid(format!("{source}: not a kubeconfig: {e}")))?;
        if let Some(why) = remote::refusal(&parsed) {
            return Err(invalid(format!("{source}: {why}")));
        }
        let mut config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| invalid(format!("{source}: {e}")))?;
        let mut identity = format!("the user of {source}");
        if let Some(account) = account.or(self.default_account.as_deref()) {
            config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
            config.auth_info.impersonate_groups = None;
            identity = format!("ServiceAccount {namespace}/{account} on the cluster of {source}");
        }
        let client = kube::Client::try_from(config).map_err(|e| NoClient {
            reason: crate::api::reason::CLUSTER_UNAVAILABLE,
            message: format!("cannot connect to the cluster of {source}: {e}"),
        })?;
        Ok((client, identity))
    }
}

/// What a kubeconfig from a Secret may hold. It comes from a tenant, and the controller uses
/// it: nothing in it may make the controller run a program (`exec`, `auth-provider`), read
/// its own files (paths of certificates, keys or tokens) or trust any server
/// (`insecure-skip-tls-verify`). Flux refuses the first and the last by default too.
pub mod remote {
    use kube::config::Kubeconfig;

    /// Why `config` is refused, if it is.
    pub fn refusal(config: &Kubeconfig) -> Option<String> {
        for named in &config.auth_infos {
            let Some(user) = &named.auth_info else { continue };
            let user_field = |field: &str| format!("user {:?} sets {field}", named.name);
            if user.exec.is_some() {
                return Some(format!(
                    "{}: a kubeconfig from a Secret may not run programs; use a token or a client certificate",
                    user_field("exec")
                ));
            }
            if user.auth_provider.is_some() {
                return Some(format!("{}: use a token or a client certificate", user_field("auth-provider")));
            }
            let files = [
                ("tokenFile", "token", &user.token_file),
                ("client-certificate", "client-certificate-data", &user.client_certificate),
                ("client-key", "client-key-data", &user.client_key),
            ];
            if let Some((field, inline, _)) = files.iter().find(|(_, _, set)| set.is_some()) {
                return Some(format!("{}, a file of the controller's: give it inline as {inline}", user_field(field)));
            }
        }
        for named in &config.clusters {
            let Some(cluster) = &named.cluster else { continue };
            if cluster.insecure_skip_tls_verify == Some(true) {
                return Some(format!(
                    "cluster {:?} sets insecure-skip-tls-verify: give its CA as certificate-authority-data instead",
                    named.name
                ));
            }
            if cluster.certificate_authority.is_some() {
                return Some(format!(
                    "cluster {:?} sets certificate-authority, a file of the controller's: inline it as certificate-authority-data",
                    named.name
                ));
            }
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn config(user: &str, cluster: &str) -> Kubeconfig {
            let yaml = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster}users:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
            );
            Kubeconfig::from_yaml(&yaml).unwrap()
        }

        #[test]
        fn only_inline_credentials_and_verified_servers_are_accepted() {
            assert_eq!(refusal(&config("    token: abc\n", "    certificate-authority-data: Zm9v\n")), None);
            let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n";
            assert!(refusal(&config(exec, "")).unwrap().contains("user \"u\" sets exec"));
            assert!(refusal(&config("    tokenFile: /var/run/secrets/token\n", "")).unwrap().contains("tokenFile"));
            assert!(refusal(&config("    client-certificate: /etc/c.pem\n", "")).unwrap().contains("client-certificate-data"));
            let insecure = refusal(&config("    token: abc\n", "    insecure-skip-tls-verify: true\n")).unwrap();
            assert!(insecure.contains("insecure-skip-tls-verify"), "{insecure}");
            let ca_file = refusal(&config("    token: abc\n", "    certificate-authority: /etc/ca.pem\n")).unwrap();
            assert!(ca_file.contains("certificate-authority-data"), "{ca_file}");
        }
    }
}
