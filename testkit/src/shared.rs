//! One cluster shared by every test of a test binary, with a namespace per test.
//!
//! Why: a control plane takes seconds to start; tests that only need their own namespace
//! can share one. The cluster and its fake kubelet run on a dedicated thread with its own
//! tokio runtime, because each `#[tokio::test]` has a runtime that ends with the test,
//! and clients or tasks bound to an ended runtime stop working. Tests get clients built on
//! their own runtime from [`ClusterAccess`]. The cluster lives until the test process
//! exits; its watchdogs then stop the processes and remove the temp dirs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::OnceCell;

use crate::cluster::{ClusterAccess, ClusterError, TestCluster, wait_for_default_service_account};
use crate::kubelet::{FakeKubelet, KubeletOptions};
use crate::tools::skip_or_fail;

/// Why the shared cluster is not available (cloneable: the first failure is kept and
/// reported to every test).
#[derive(Clone, Debug, thiserror::Error)]
pub enum SharedError {
    /// The control-plane binaries are missing.
    #[error("{0}")]
    MissingTools(String),
    /// Startup failed.
    #[error("shared test cluster failed to start: {0}")]
    Failed(String),
    /// A namespace could not be created.
    #[error("creating namespace {name}: {message}")]
    Namespace {
        /// The namespace.
        name: String,
        /// Why.
        message: String,
    },
}

/// The shared cluster: access data, and the node its fake kubelet registered.
#[derive(Debug)]
pub struct SharedCluster {
    access: ClusterAccess,
    ca: std::sync::Arc<crate::certs::Ca>,
    node_name: String,
    startup: Duration,
}

/// A namespace of one test in the shared cluster, with an admin client bound to the
/// test's runtime. Namespaces are left behind: the cluster is thrown away at exit.
#[derive(Clone)]
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    /// An admin client.
    pub client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// A typed API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

static SHARED: OnceCell<Result<SharedCluster, SharedError>> = OnceCell::const_new();

/// The shared cluster, started on first use.
pub async fn shared_cluster() -> Result<&'static SharedCluster, SharedError> {
    SHARED.get_or_init(start_shared).await.as_ref().map_err(Clone::clone)
}

/// The shared cluster, or `None` when its binaries are missing on a developer machine
/// (a reason is printed; the test should return). In CI, and on any other failure, the
/// test fails.
///
/// # Panics
/// When the cluster cannot start for another reason than missing binaries, or in CI.
pub async fn shared_cluster_or_skip() -> Option<&'static SharedCluster> {
    match shared_cluster().await {
        Ok(cluster) => Some(cluster),
        Err(SharedError::MissingTools(reason)) => {
            skip_or_fail(&reason);
            None
        }
        Err(err) => panic!("{err}"),
    }
}

/// Starts a dedicated cluster (not shared), or `None` when its binaries are missing on a
/// developer machine. Same rules as [`shared_cluster_or_skip`].
///
/// # Panics
/// When the cluster cannot start for another reason than missing binaries, or in CI.
pub async fn start_cluster_or_skip(options: crate::ClusterOptions) -> Option<TestCluster> {
    match TestCluster::start_with(options).await {
        Ok(cluster) => Some(cluster),
        Err(ClusterError::Tools(err)) => {
            skip_or_fail(&err);
            None
        }
        Err(err) => panic!("test cluster failed to start: {err}"),
    }
}

async fn start_shared() -> Result<SharedCluster, SharedError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("testkit-shared-cluster".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(err) => {
                let _ = tx.send(Err(SharedError::Failed(format!("building its runtime: {err}"))));
                return;
            }
        };
        runtime.block_on(async move {
            let cluster = match TestCluster::start().await {
                Ok(cluster) => cluster,
                Err(ClusterError::Tools(err)) => {
                    let _ = tx.send(Err(SharedError::MissingTools(err.to_string())));
                    return;
                }
                Err(err) => {
                    let _ = tx.send(Err(SharedError::Failed(err.to_string())));
                    return;
                }
            };
            let kubelet = match FakeKubelet::start(cluster.access(), KubeletOptions::default()).await {
                Ok(kubelet) => kubelet,
                Err(err) => {
                    let _ = tx.send(Err(SharedError::Failed(format!("fake kubelet: {err}"))));
                    return;
                }
            };
            eprintln!("testkit: shared cluster ready in {:.1?} at {}", cluster.startup_time(), cluster.server());
            let _ = tx.send(Ok(SharedCluster {
                access: cluster.access().clone(),
                ca: std::sync::Arc::clone(cluster.ca()),
                node_name: kubelet.node_name().to_owned(),
                startup: cluster.startup_time(),
            }));
            // Keep both alive until the process exits.
            std::future::pending::<()>().await;
            drop((kubelet, cluster));
        });
    });
    if let Err(err) = spawned {
        return Err(SharedError::Failed(format!("spawning its thread: {err}")));
    }
    rx.await.unwrap_or_else(|_| Err(SharedError::Failed("its thread ended".into())))
}

impl SharedCluster {
    /// Server URL, CA and tokens.
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// The cluster's CA (to start a [`crate::FaultProxy`] in front of it).
    pub fn ca(&self) -> &crate::certs::Ca {
        &self.ca
    }

    /// The fake kubelet's node.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// How long the cluster took to start.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// An admin client on the current runtime.
    pub fn admin_client(&self) -> Result<Client, ClusterError> {
        self.access.admin_client()
    }

    /// A client for `user` on the current runtime.
    pub fn client_for(&self, user: &str) -> Result<Client, ClusterError> {
        self.access.client_for(user)
    }

    /// Creates a fresh namespace named after `prefix` (plus a random suffix) and waits
    /// for its `default` ServiceAccount, so pods can be created in it at once.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace, SharedError> {
        let client = self.admin_client().map_err(|e| SharedError::Failed(e.to_string()))?;
        create_namespace(&client, prefix).await
    }
}

/// Creates a namespace `<prefix>-<random>` and waits for its default ServiceAccount.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<TestNamespace, SharedError> {
    let mut base: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    base.truncate(48);
    let base = base.trim_matches('-');
    let suffix = crate::cluster::random_hex(3).map_err(|e| SharedError::Failed(e.to_string()))?;
    let name = if base.is_empty() { format!("test-{suffix}") } else { format!("{base}-{suffix}") };
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
    api.create(&PostParams::default(), &ns).await.map_err(|e| SharedError::Namespace { name: name.clone(), message: e.to_string() })?;
    wait_for_default_service_account(client, &name, Duration::from_secs(60))
        .await
        .map_err(|message| SharedError::Namespace { name: name.clone(), message })?;
    Ok(TestNamespace { name, client: client.clone() })
}
