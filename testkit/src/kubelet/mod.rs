//! A fake kubelet: one Node that registers itself, keeps its Lease fresh, binds pending
//! pods to itself (there is no scheduler) and runs their containers as local processes.
//!
//! What it does: Node with Ready/pressure conditions and capacity; Lease heartbeats;
//! binding; volumes (Secret, ConfigMap, downward API, projected service-account token,
//! emptyDir, hostPath) materialized in a temp dir; env, envFrom and `$(VAR)` expansion;
//! workingDir; termination message path and `FallbackToLogsOnError`; init containers;
//! restart policies with a short back-off; `activeDeadlineSeconds`; graceful deletion
//! (SIGTERM, then SIGKILL after the grace period, then the final delete); status through
//! the status subresource. A container whose command cannot be run here (no `command`, or
//! not found on this machine) is simulated: running and ready until the pod is deleted.
//!
//! What it does not do: images, isolation (containers are plain processes of the test
//! user; container paths are remapped into the pod's temp dir by rewriting arguments and
//! environment values), probes (a running container is ready), resource limits, logs/exec/
//! port-forward through the API, networking (every pod IP is 127.0.0.1), volume updates
//! after start.
//!
//! Faults are injected per pod with annotations, see [`FAULT_ANNOTATION`].

mod expand;
mod mount;
mod pod;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{ClusterAccess, KUBELET};
use crate::process::{ProcessError, Watchdog};

pub use expand::{PathMap, expand as expand_references};

/// Pod annotation selecting a fault: `oom`, `evict`, `image-pull` or `never-start`.
///
/// - `oom`: each container (or the one named by [`FAULT_CONTAINER_ANNOTATION`]) is killed
///   after [`FAULT_AFTER_ANNOTATION`] and reported `OOMKilled`, exit code 137; the restart
///   policy then applies as on a real node.
/// - `evict`: after the delay, the pod is evicted by the node: containers killed, phase
///   `Failed`, reason `Evicted`, a `DisruptionTarget` condition; the object stays.
/// - `image-pull`: containers wait with `ErrImagePull`, then `ImagePullBackOff`; the pod
///   stays `Pending`.
/// - `never-start`: containers wait in `ContainerCreating` forever.
pub const FAULT_ANNOTATION: &str = "testkit.driftless.dev/fault";
/// Pod annotation: delay (humantime, e.g. `500ms`, `2s`) from container start to the
/// `oom` or `evict` fault. Default: immediately.
pub const FAULT_AFTER_ANNOTATION: &str = "testkit.driftless.dev/fault-after";
/// Pod annotation: the container the fault applies to (default: every main container).
pub const FAULT_CONTAINER_ANNOTATION: &str = "testkit.driftless.dev/fault-container";
/// Pod annotation: `"true"` simulates every container even when its command exists here.
pub const SIMULATE_ANNOTATION: &str = "testkit.driftless.dev/simulate";

/// A fault injected through [`FAULT_ANNOTATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Killed for memory: `OOMKilled`, 137.
    Oom,
    /// Evicted by the node.
    Evict,
    /// The image cannot be pulled.
    ImagePull,
    /// The container never starts.
    NeverStart,
}

impl Fault {
    /// Parses an annotation value.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "oom" | "OOMKilled" => Some(Self::Oom),
            "evict" | "eviction" => Some(Self::Evict),
            "image-pull" | "ErrImagePull" => Some(Self::ImagePull),
            "never-start" => Some(Self::NeverStart),
            _ => None,
        }
    }
}

/// Errors of the fake kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The API refused the node registration or lease.
    #[error("{what}: {source}")]
    Api {
        /// What was attempted.
        what: &'static str,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The working dir could not be created.
    #[error("creating the kubelet's dir: {0}")]
    Io(#[source] std::io::Error),
    /// The client for the kubelet identity could not be built.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The watchdog could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The object could not be built.
    #[error("building the Node object: {0}")]
    Serde(#[from] serde_json::Error),
}

/// Options for [`FakeKubelet::start`].
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// The Node's name.
    pub node_name: String,
    /// How often the Lease is renewed and the Node's conditions refreshed.
    pub heartbeat_interval: Duration,
    /// Bind pending pods (of the default scheduler) to this node.
    pub bind_pending_pods: bool,
    /// Cap on a deleted pod's grace period, so tests do not wait 30s for a process that
    /// ignores SIGTERM.
    pub max_grace_period: Duration,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        Self {
            node_name: "testkit-node".into(),
            heartbeat_interval: Duration::from_secs(2),
            bind_pending_pods: true,
            max_grace_period: Duration::from_secs(5),
        }
    }
}

/// What a pod worker hears from the pod watch.
pub(crate) enum PodUpdate {
    Present(Box<Pod>),
    Removed,
}

/// State shared by the kubelet's tasks.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) node_name: String,
    pub(crate) options: KubeletOptions,
    pub(crate) access: ClusterAccess,
    pub(crate) watchdog: Arc<Watchdog>,
    pub(crate) root: PathBuf,
    connected: watch::Sender<bool>,
}

impl Shared {
    /// Returns once the node is connected (not in a simulated node loss).
    pub(crate) async fn wait_connected(&self) {
        let mut rx = self.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Host and port of the apiserver, for `KUBERNETES_SERVICE_*`.
    pub(crate) fn api_host_port(&self) -> (String, u16) {
        let uri: Option<http::Uri> = self.access.server().parse().ok();
        let host = uri.as_ref().and_then(|u| u.host().map(str::to_owned)).unwrap_or_else(|| "127.0.0.1".into());
        let port = uri.as_ref().and_then(http::Uri::port_u16).unwrap_or(443);
        (host, port)
    }
}

struct Worker {
    tx: watch::Sender<PodUpdate>,
    task: JoinHandle<()>,
}

type Workers = Arc<Mutex<HashMap<String, Worker>>>;

/// A running fake kubelet. Dropping it stops its tasks and kills its containers.
pub struct FakeKubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    workers: Workers,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for FakeKubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKubelet").field("node", &self.shared.node_name).finish_non_exhaustive()
    }
}

/// A simulated node loss: heartbeats (Lease and Node status) stop, and the kubelet
/// neither reports pod status, binds pods nor confirms deletions, as if the node were
/// cut off. Its processes keep running, as on a partitioned node. The controller-manager's
/// node lifecycle then marks the node `Unknown`, taints it, and evicts its pods.
#[derive(Debug)]
#[must_use = "call restore() to bring the node back"]
pub struct NodeLoss {
    shared: Arc<Shared>,
}

impl NodeLoss {
    /// Reconnects the node: heartbeats and pod handling resume.
    pub fn restore(self) {
        self.shared.connected.send_replace(true);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("node_name", &self.node_name).finish_non_exhaustive()
    }
}

impl FakeKubelet {
    /// Registers the node and starts heartbeats and the pod loop. Returns once the Node
    /// exists and its Lease was written once.
    pub async fn start(access: &ClusterAccess, options: KubeletOptions) -> Result<Self, KubeletError> {
        let client = access.client_for(KUBELET)?;
        let dir = tempfile::Builder::new().prefix("testkit-kubelet-").tempdir().map_err(KubeletError::Io)?;
        let watchdog = Watchdog::spawn()?;
        watchdog.guard_dir(dir.path());
        let (connected, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            client,
            node_name: options.node_name.clone(),
            options,
            access: access.clone(),
            watchdog,
            root: dir.path().to_path_buf(),
            connected,
        });
        register_node(&shared).await?;
        renew_lease(&shared).await?;
        let workers: Workers = Arc::new(Mutex::new(HashMap::new()));
        let tasks =
            vec![tokio::spawn(heartbeat_loop(Arc::clone(&shared))), tokio::spawn(pod_loop(Arc::clone(&shared), Arc::clone(&workers)))];
        tracing::info!(node = %shared.node_name, "fake kubelet started");
        Ok(Self { shared, tasks, workers, _dir: dir })
    }

    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.node_name
    }

    /// Cuts the node off until [`NodeLoss::restore`].
    pub fn lose_node(&self) -> NodeLoss {
        self.shared.connected.send_replace(false);
        NodeLoss { shared: Arc::clone(&self.shared) }
    }

    /// Whether the node is connected.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Ok(mut workers) = self.workers.lock() {
            for (_, worker) in workers.drain() {
                // Dropping the worker's future drops its processes, which kills them.
                worker.task.abort();
            }
        }
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn node_conditions(ready: bool) -> serde_json::Value {
    let t = serde_json::to_value(Time(now())).unwrap_or_default();
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": t, "lastTransitionTime": t,
        })
    };
    serde_json::json!([
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        if ready {
            c("Ready", "True", "KubeletReady", "kubelet is posting ready status (testkit fake kubelet)")
        } else {
            c("Ready", "False", "KubeletNotReady", "testkit fake kubelet not ready")
        },
    ])
}

fn node_status() -> serde_json::Value {
    let resources = serde_json::json!({ "cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi" });
    serde_json::json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": node_conditions(true),
        "addresses": [
            { "type": "InternalIP", "address": "127.0.0.1" },
            { "type": "Hostname", "address": "localhost" },
        ],
        "nodeInfo": {
            "machineID": "testkit", "systemUUID": "testkit", "bootID": "testkit",
            "kernelVersion": "testkit", "osImage": "testkit fake kubelet",
            "containerRuntimeVersion": "testkit://0", "kubeletVersion": "v0.0.0-testkit",
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
        },
        "daemonEndpoints": { "kubeletEndpoint": { "Port": 0 } },
    })
}

async fn register_node(shared: &Shared) -> Result<(), KubeletError> {
    let api: Api<Node> = Api::all(shared.client.clone());
    let name = &shared.node_name;
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "testkit.driftless.dev/fake-kubelet": "true",
            },
        },
        "status": node_status(),
    }))?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => return Err(KubeletError::Api { what: "registering the Node", source }),
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": node_status() })))
        .await
        .map_err(|source| KubeletError::Api { what: "writing the Node status", source })?;
    Ok(())
}

async fn renew_lease(shared: &Shared) -> Result<(), KubeletError> {
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), "kube-node-lease");
    let name = &shared.node_name;
    let duration = i32::try_from(shared.options.heartbeat_interval.as_secs().max(1) * 20).unwrap_or(40);
    let spec = LeaseSpec {
        holder_identity: Some(name.clone()),
        lease_duration_seconds: Some(duration),
        renew_time: Some(MicroTime(now())),
        ..LeaseSpec::default()
    };
    let patch = serde_json::json!({ "spec": spec });
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: None,
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(source) => Err(KubeletError::Api { what: "creating the node Lease", source }),
            }
        }
        Err(source) => Err(KubeletError::Api { what: "renewing the node Lease", source }),
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let api: Api<Node> = Api::all(shared.client.clone());
    loop {
        tokio::time::sleep(shared.options.heartbeat_interval).await;
        shared.wait_connected().await;
        if let Err(err) = renew_lease(&shared).await {
            tracing::warn!(%err, "lease renewal failed");
        }
        // The Ready condition carries a heartbeat time too; and after a node loss the
        // node-lifecycle controller set it to Unknown, which the kubelet overwrites.
        let patch = serde_json::json!({ "status": { "conditions": node_conditions(true) } });
        if let Err(err) = api.patch_status(&shared.node_name, &PatchParams::default(), &Patch::Strategic(patch)).await {
            tracing::warn!(%err, "node status update failed");
        }
    }
}

async fn pod_loop(shared: Arc<Shared>, workers: Workers) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    tokio::pin!(stream);
    let mut listing: Option<HashSet<String>> = None;
    let binding: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    while let Some(event) = stream.next().await {
        shared.wait_connected().await;
        match event {
            Ok(watcher::Event::Init) => listing = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(seen) = &mut listing {
                    seen.insert(pod.uid().unwrap_or_default());
                }
                handle_pod(&shared, &workers, &binding, pod);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = listing.take()
                    && let Ok(mut workers) = workers.lock()
                {
                    workers.retain(|uid, worker| {
                        let keep = seen.contains(uid);
                        if !keep {
                            worker.tx.send_replace(PodUpdate::Removed);
                        }
                        keep
                    });
                }
            }
            Ok(watcher::Event::Apply(pod)) => handle_pod(&shared, &workers, &binding, pod),
            Ok(watcher::Event::Delete(pod)) => {
                let uid = pod.uid().unwrap_or_default();
                if let Ok(mut workers) = workers.lock()
                    && let Some(worker) = workers.remove(&uid)
                {
                    worker.tx.send_replace(PodUpdate::Removed);
                }
            }
            Err(err) => tracing::debug!(%err, "pod watch error (retrying)"),
        }
    }
}

fn handle_pod(shared: &Arc<Shared>, workers: &Workers, binding: &Arc<Mutex<HashSet<String>>>, pod: Pod) {
    let uid = pod.uid().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
    if node.is_empty() {
        let scheduler = spec.and_then(|s| s.scheduler_name.clone()).unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let bindable = shared.options.bind_pending_pods
            && (scheduler.is_empty() || scheduler == "default-scheduler")
            && pod.metadata.deletion_timestamp.is_none()
            && (phase.is_empty() || phase == "Pending");
        let first = binding.lock().is_ok_and(|mut b| b.insert(uid.clone()));
        if bindable && first {
            let shared = Arc::clone(shared);
            let binding = Arc::clone(binding);
            tokio::spawn(async move {
                bind(&shared, &pod).await;
                if let Ok(mut b) = binding.lock() {
                    b.remove(&uid);
                }
            });
        }
        return;
    }
    if node != shared.node_name {
        return;
    }
    let Ok(mut workers) = workers.lock() else { return };
    match workers.get(&uid) {
        Some(worker) => {
            worker.tx.send_replace(PodUpdate::Present(Box::new(pod)));
        }
        None => {
            let (tx, rx) = watch::channel(PodUpdate::Present(Box::new(pod.clone())));
            let worker = pod::PodWorker::new(Arc::clone(shared), rx, pod);
            let task = tokio::spawn(worker.run());
            workers.insert(uid, Worker { tx, task });
        }
    }
}

/// Binds a pod to this node, as the scheduler would (`pods/binding`).
async fn bind(shared: &Shared, pod: &Pod) {
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta { name: Some(pod.name_any()), namespace: Some(namespace.clone()), ..ObjectMeta::default() },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(shared.node_name.clone()),
            ..ObjectReference::default()
        },
    };
    let result: Result<serde_json::Value, _> = api.create_subresource("binding", &pod.name_any(), &PostParams::default(), &binding).await;
    match result {
        Ok(_) => tracing::debug!(pod = %pod.name_any(), %namespace, "bound"),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {}
        Err(err) => tracing::warn!(pod = %pod.name_any(), %err, "binding failed"),
    }
}
