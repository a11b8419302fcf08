//! Where the CLI's verbs act: a local store (`--store DIR`) or a cluster (the kube context).
//!
//! The object verbs (get, apply, suspend/resume, approve, drift, plan show, unlock) are
//! written once, generic over [`Target`], because on both they only read and write objects
//! through an [`ObjectStore`]. What truly differs lives in the two implementations: on a
//! local store this process runs the reconcilers (`reconcile`, `delete`, `run`) and reads the
//! event log; on a cluster the controller reconciles, so the CLI asks it through annotations
//! and waits, and reads Kubernetes Events.

use std::time::Duration;

use kube::Client;

use super::run::LocalContext;
use super::{CliError, Result};
use crate::api::Terraform;
use crate::backend::{LocalBackend, S3Backend, SecretBackend};
use crate::dispatch::BackendSpec;
use crate::store::{Event, KubeStore, LocalStore, ObjectStore};

/// How long locks this process would take are valid. The CLI takes none (`unlock` only
/// reads and breaks them), but a backend wants a value.
const LOCK_TTL: Duration = Duration::from_secs(30 * 60);

/// A place objects live in, and how the verbs that are not plain object reads and writes
/// are done there.
pub(crate) trait Target {
    type Store: ObjectStore;

    fn store(&self) -> &Self::Store;
    /// The namespace of commands without `-n`: the kube context's on a cluster (as kubectl),
    /// `default` on a local store.
    fn namespace(&self) -> &str;
    /// The backend of objects without `spec.backendConfig`.
    fn default_backend(&self) -> &BackendSpec;
    /// The client a Kubernetes backend is reached with: the CLI's own on a cluster, so
    /// `--kubeconfig`/`--context` are honored for Secrets and Leases too.
    fn client(&self) -> Option<&Client>;
    /// What happens after `approve`, for its message.
    fn after_approval(&self, kind: crate::api::Kind, name: &str) -> String;

    /// One complete reconcile now, waiting for its outcome (at most `timeout` for a cluster's
    /// controller to report it).
    async fn reconcile(&self, kind: crate::api::Kind, namespace: &str, name: &str, with_source: bool, timeout: Duration) -> Result<()>;
    /// Deletes an object after its cleanup (a Terraform destroys its resources first when
    /// asked to), waiting at most `timeout` for a cluster's controller.
    async fn delete(&self, kind: super::CliKind, namespace: &str, name: &str, timeout: Duration) -> Result<()>;
    /// The events about driftless objects, of one namespace or (`None`) of all.
    async fn events(&self, namespace: Option<&str>) -> Result<Vec<Event>>;
    /// The reconcile loop honoring intervals.
    async fn run_loop(&self, once: bool, receiver_addr: Option<std::net::SocketAddr>) -> Result<()>;
}

impl Target for LocalContext {
    type Store = LocalStore;

    fn store(&self) -> &LocalStore {
        &self.store
    }

    fn namespace(&self) -> &str {
        "default"
    }

    fn default_backend(&self) -> &BackendSpec {
        &self.backend
    }

    fn client(&self) -> Option<&Client> {
        None
    }

    fn after_approval(&self, kind: crate::api::Kind, name: &str) -> String {
        format!("it is applied on the next reconcile (`driftless reconcile {} {name}` or a running `driftless run`)", kind.segment())
    }

    async fn reconcile(&self, kind: crate::api::Kind, namespace: &str, name: &str, with_source: bool, _: Duration) -> Result<()> {
        super::reconcile::here(self, kind, namespace, name, with_source).await
    }

    async fn delete(&self, kind: super::CliKind, namespace: &str, name: &str, _: Duration) -> Result<()> {
        super::objects::delete_here(self, kind, namespace, name).await
    }

    async fn events(&self, namespace: Option<&str>) -> Result<Vec<Event>> {
        let mut events = self.events.read();
        events.retain(|e| namespace.is_none_or(|ns| e.namespace == ns));
        Ok(events)
    }

    async fn run_loop(&self, once: bool, receiver_addr: Option<std::net::SocketAddr>) -> Result<()> {
        super::run::run_loop(self, once, receiver_addr).await
    }
}

/// A cluster, reached with the CLI's kube context.
pub(crate) struct ClusterTarget {
    store: KubeStore,
    client: Client,
    /// The cluster's default: Secrets and Leases in each object's own namespace.
    backend: BackendSpec,
}

impl ClusterTarget {
    pub fn new(client: Client) -> Self {
        let backend = BackendSpec::Kubernetes { namespace: client.default_namespace().to_string(), labels: Default::default() };
        Self { store: KubeStore::new(client.clone()), client, backend }
    }
}

impl Target for ClusterTarget {
    type Store = KubeStore;

    fn store(&self) -> &KubeStore {
        &self.store
    }

    fn namespace(&self) -> &str {
        self.client.default_namespace()
    }

    fn default_backend(&self) -> &BackendSpec {
        &self.backend
    }

    fn client(&self) -> Option<&Client> {
        Some(&self.client)
    }

    fn after_approval(&self, kind: crate::api::Kind, name: &str) -> String {
        format!("the controller applies it now; follow it with `driftless get {} {name}`", kind.segment())
    }

    async fn reconcile(&self, kind: crate::api::Kind, namespace: &str, name: &str, with_source: bool, timeout: Duration) -> Result<()> {
        super::reconcile::on_cluster(&self.store, kind, namespace, name, with_source, timeout).await
    }

    async fn delete(&self, kind: super::CliKind, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
        super::objects::delete_on_cluster(&self.store, kind, namespace, name, timeout).await
    }

    async fn events(&self, namespace: Option<&str>) -> Result<Vec<Event>> {
        super::events::on_cluster(&self.client, namespace).await
    }

    async fn run_loop(&self, _: bool, _: Option<std::net::SocketAddr>) -> Result<()> {
        Err(CliError::Usage(
            "`driftless run` is the reconcile loop of a local store (--store DIR); on a cluster the controller reconciles: \
             start it with `driftless controller` or install it with `driftless install`"
                .into(),
        ))
    }
}

/// A Terraform's backend, connected (for `unlock` and `plan show`): its
/// `spec.backendConfig.s3`, else the target's own.
pub enum ObjectBackend {
    Local(LocalBackend),
    S3(S3Backend),
    Kubernetes(SecretBackend),
}

/// Resolves and connects the backend of `object` as the reconciler would.
///
/// # Errors
/// When its backend Secret cannot be read or the Kubernetes client cannot be configured.
pub async fn object_backend<T: Target>(target: &T, object: &Terraform) -> Result<ObjectBackend> {
    let spec = crate::terraform::resolve_backend(target.store(), object, target.default_backend()).await.map_err(|e| match e {
        crate::terraform::InputError::Store(e) => CliError::Store(e),
        other => CliError::Usage(other.to_string()),
    })?;
    Ok(match spec {
        BackendSpec::Local { root } => ObjectBackend::Local(LocalBackend::new(root)),
        BackendSpec::S3(location) => ObjectBackend::S3(S3Backend::connect(&location, LOCK_TTL).await),
        BackendSpec::Kubernetes { namespace, .. } => ObjectBackend::Kubernetes(match target.client() {
            Some(client) => SecretBackend::new(client.clone(), namespace, LOCK_TTL),
            None => SecretBackend::connect(namespace, LOCK_TTL).await?,
        }),
    })
}
