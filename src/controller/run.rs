//! `driftless controller`: the reconcilers driven by the Kubernetes API.
//!
//! One kube-runtime `Controller` per kind. Each calls the same reconcile function the local
//! store uses; this module adds only what a cluster needs: watches and re-queues,
//! finalizers, backoff, the artifact server, and dependents woken as soon as their
//! dependency becomes Ready (not on their interval).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef as KubeRef};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use super::leader::{LeaderElector, LeaseTiming};
use super::metrics::Metrics;
use super::probes::Readiness;
use crate::api::{Conditions, Kind, ObjectRef, Receiver, condition_type as ct};
use crate::dispatch::{BackendSpec, PodDispatch, PodSettings};
use crate::notify::receiver::Receivers;
use crate::reconcile::schedule::dependents;
use crate::reconcile::{Clusters, Context, Reconcile, ReconcileError, Refs, Schedule};
use crate::source::ArtifactStore;
use crate::store::{EventLog, KubeStore};

/// Everything `driftless controller` is told on its command line.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Reconciles running at once, per kind.
    pub concurrent: u16,
    pub metrics_addr: SocketAddr,
    pub artifact_addr: SocketAddr,
    /// The artifact server's address as runner pods reach it (its Service).
    pub artifact_url: String,
    /// Signs the artifact URLs runner pods get, and checks them when they download.
    pub artifact_access: crate::source::ArtifactAccess,
    /// Artifacts and Git caches (an emptyDir: sources are re-fetched after a restart).
    pub storage_path: PathBuf,
    /// The most bytes one source may bring (`--max-artifact-size`).
    pub max_artifact_size: u64,
    pub runner: PodSettings,
    pub terraform_path: Option<PathBuf>,
    /// tofu binary in the runner image (`--tofu`); `None`: the runner searches PATH.
    pub tofu_path: Option<PathBuf>,
    /// This instance (the pod name): lock holder, event reporter, leader identity.
    pub identity: String,
    /// The namespace of the leader election Lease; `None` runs without election.
    pub leader_election_namespace: Option<String>,
    pub run_timeout: Duration,
    /// Watch only this namespace (Flux's `--watch-all-namespaces=false`); `None`: all.
    pub watch_namespace: Option<String>,
    /// Where Receivers' webhooks are served; `None`: not served.
    pub receiver_addr: Option<SocketAddr>,
    /// The review page's external URL, linked from every alert.
    pub review_url: Option<String>,
    /// What objects may refer to and use (the lockdown flags).
    pub tenancy: crate::api::Tenancy,
    /// The ServiceAccount a Kustomization without `serviceAccountName` applies as.
    pub default_service_account: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("leader election: {0}")]
    Leader(#[from] super::leader::LeaderError),
    #[error("lost the leader election Lease; stopped so that only the new leader reconciles")]
    LeadershipLost,
}

/// The leader election Lease: one per controller namespace.
const LEASE_NAME: &str = "driftless-controller-leader";

/// What the controller sees of one reconciled kind, whatever its type: the objects' references
/// (for waking dependents), how many drift, and the channel that wakes one.
struct KindView {
    kind: Kind,
    refs: Box<dyn Fn() -> Vec<Refs> + Send + Sync>,
    drifted: Box<dyn Fn() -> usize + Send + Sync>,
    wake: tokio::sync::mpsc::UnboundedSender<(String, String)>,
}

/// What every reconcile of this controller shares.
struct Shared {
    ctx: Context<KubeStore, PodDispatch>,
    /// Due times and failure counts: the one scheduler's backoff, and the queue depth.
    schedule: Mutex<Schedule>,
    views: Vec<KindView>,
    metrics: Metrics,
}

impl Shared {
    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes the gauges the reconciles do not update themselves.
    fn update_gauges(&self) {
        let now = Instant::now();
        for view in &self.views {
            self.metrics.set_queue_depth(view.kind.as_str(), self.schedule().overdue(view.kind, now));
            if view.kind.is_planned() {
                self.metrics.set_drifted(view.kind.as_str(), (view.drifted)());
            }
        }
    }

    /// Wakes every object, of every kind, that reads this source or depends on this object.
    fn wake_dependents(&self, changed: &ObjectRef) {
        let all: Vec<Refs> = self.views.iter().flat_map(|v| (v.refs)()).collect();
        for d in dependents(changed, &all) {
            if let Some(view) = self.views.iter().find(|v| v.kind == d.kind) {
                let _ = view.wake.send((d.namespace, d.name));
            }
        }
    }
}

fn requeue_action(after: Option<Duration>) -> Action {
    after.map_or_else(Action::await_change, Action::requeue)
}

/// Reconciles are triggered by what a user changes (generation: spec; annotations: approve,
/// reconcile-requested-at; finalizers and deletion), not by the status this controller
/// writes, which would make every reconcile trigger one more.
fn user_change<K: kube::Resource>(object: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = object.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    Some(h.finish())
}

/// One reconcile of a `K` object: the reconcile core's sequence, then the scheduler's
/// delay, and dependents woken when it became Ready or has a new artifact.
async fn reconcile_object<K: Reconcile>(object: Arc<K>, shared: Arc<Shared>) -> Result<Action, ReconcileError> {
    let key = object.reference();
    shared.schedule().started(&key);
    let timer = shared.metrics.reconcile_started(K::KIND.as_str());
    let result = async {
        let requeue = crate::reconcile::object::<K, _, _>(&shared.ctx, &key.namespace, &key.name, false).await?;
        if requeue.wake_dependents {
            shared.wake_dependents(&key);
        }
        Ok(requeue_action(shared.schedule().finished(&key, &requeue, object.interval(), Instant::now())))
    }
    .instrument(info_span!("reconcile", kind = %K::KIND, namespace = %key.namespace, name = %key.name))
    .await;
    timer.finish(&result);
    result
}

/// A reconcile that could not record its outcome (the API failed): retried with backoff.
fn error_policy<K>(_object: Arc<K>, error: &ReconcileError, _shared: Arc<Shared>) -> Action {
    warn!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

type Starter = Box<dyn FnOnce(Arc<Shared>) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// The controller of kind `K`: its view for the others, and what starts it once every
/// kind's view exists (dependents of one kind are objects of another).
fn controller_for<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    config: ControllerConfig,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> (KindView, Starter)
where
    K: Reconcile + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store::<K>();
    let (wake, wake_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let (refs_reader, drift_reader) = (reader.clone(), reader.clone());
    let view = KindView {
        kind: K::KIND,
        refs: Box::new(move || refs_reader.state().iter().map(|o| Refs::of(o.as_ref())).collect()),
        drifted: Box::new(move || drift_reader.state().iter().filter(|o| o.status().is_some_and(|s| s.is_true(ct::DRIFTED))).count()),
        wake,
    };
    let starter: Starter = Box::new(move |shared: Arc<Shared>| {
        let wakes = tokio_stream_of(wake_rx).map(|(ns, name)| KubeRef::<K>::new(&name).within(&ns));
        Box::pin(
            Controller::for_stream(watch_stream(api, writer), reader)
                .with_config(config)
                .reconcile_on(wakes)
                .graceful_shutdown_on(stop)
                .run(reconcile_object::<K>, error_policy, shared)
                .for_each(|_| async {}),
        )
    });
    (view, starter)
}

fn watch_stream<K>(api: Api<K>, writer: reflector::store::Writer<K>) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(user_change::<K>, Default::default())
}

/// Runs the controllers until `shutdown` resolves; reconciles in flight finish first.
pub async fn run(
    client: kube::Client,
    kube_config: Option<kube::Config>,
    options: ControllerOptions,
    backend: BackendSpec,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), ControllerError> {
    let metrics = Metrics::new();
    for kind in Kind::RECONCILED {
        metrics.init_kind(kind.as_str());
    }
    let readiness = Readiness::new();
    let probe_listener = tokio::net::TcpListener::bind(options.metrics_addr)
        .await
        .map_err(|source| ControllerError::Listen { addr: options.metrics_addr, source })?;
    let store = KubeStore::new(client.clone());
    let artifacts = ArtifactStore::new(options.storage_path.join("artifacts"))
        .with_base_url(&options.artifact_url)
        .with_max_size(options.max_artifact_size);
    let listener = tokio::net::TcpListener::bind(options.artifact_addr)
        .await
        .map_err(|source| ControllerError::Listen { addr: options.artifact_addr, source })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The servers stop last: runs still in flight when shutdown begins download their
    // artifact from this server, and probes must answer until the process ends.
    let (servers_stop_tx, servers_stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(crate::source::server::serve(
        listener,
        artifacts.clone(),
        store.clone(),
        options.artifact_access.clone(),
        stopped(servers_stop_rx.clone()),
    ));
    info!(addr = %options.artifact_addr, url = %options.artifact_url, "artifact server listening");
    let probes = tokio::spawn(super::probes::serve(probe_listener, metrics.clone(), readiness.clone(), stopped(servers_stop_rx.clone())));
    info!(addr = %options.metrics_addr, "metrics and probes listening");
    if let Some(addr) = options.receiver_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ControllerError::Listen { addr, source })?;
        let receivers = watch_receivers(&client, stopped(servers_stop_rx.clone()));
        let router = crate::notify::receiver::router(store.clone(), Receivers::Watched(receivers), options.tenancy.clone());
        let stop = stopped(servers_stop_rx);
        tokio::spawn(async move {
            if let Err(e) = crate::notify::receiver::serve(listener, router, stop).await {
                tracing::error!("receiver server: {e}");
            }
        });
        info!(%addr, "receiver webhooks listening");
    }

    // A standby stays not-ready: the artifact Service then routes runners to the leader,
    // the only replica with artifacts.
    let mut shutdown = Box::pin(shutdown);
    let leadership = match &options.leader_election_namespace {
        None => None,
        Some(namespace) => {
            readiness.set_not_ready("waiting for leadership");
            let elector = LeaderElector::new(client.clone(), namespace, LEASE_NAME, options.identity.clone(), LeaseTiming::default());
            info!(lease = %format!("{namespace}/{LEASE_NAME}"), "waiting for leadership");
            tokio::select! {
                acquired = elector.acquire() => Some(acquired?),
                _ = &mut shutdown => {
                    let _ = servers_stop_tx.send(true);
                    let _ = tokio::join!(server, probes);
                    return Ok(());
                }
            }
        }
    };
    if leadership.is_some() {
        info!(identity = %options.identity, "leading");
    }
    let lost = leadership.as_ref().map(|l| l.lost());
    // Providers, Alerts and Receivers have no reconcile of their own: their status (and a
    // Receiver's webhook path) is brought up to date on a short period, by the leader only.
    let notification_status = tokio::spawn(notification_status_loop(store.clone(), options.tenancy.clone(), stopped(stop_rx.clone())));

    let ctx = Context {
        store: store.clone(),
        dispatch: PodDispatch::new(client.clone(), options.runner.clone()).with_observer(Arc::new(metrics.clone())),
        backend,
        artifacts,
        artifact_access: options.artifact_access.clone(),
        git_cache: options.storage_path.join("git"),
        events: EventLog::kubernetes(client.clone(), "driftless-controller", &options.identity, options.review_url.clone()).with_tap(
            Arc::new(crate::notify::Notifier::start(
                store.clone(),
                crate::notify::NotifierSettings {
                    review_url: options.review_url.clone(),
                    no_cross_namespace_refs: !options.tenancy.cross_namespace_refs,
                    ..Default::default()
                },
            )),
        ),
        terraform_path: options.terraform_path.clone(),
        tofu_path: options.tofu_path.clone(),
        identity: options.identity.clone(),
        run_timeout: options.run_timeout,
        clusters: Clusters::connected(client.clone(), kube_config).with_default_account(options.default_service_account.clone()),
        tenancy: options.tenancy,
    };
    let config = ControllerConfig::default().concurrency(options.concurrent);
    let ns = options.watch_namespace.as_deref();
    let mut views = Vec::new();
    let mut starters = Vec::new();
    for kind in Kind::RECONCILED {
        crate::with_reconciled_kind!(kind, K => {
            let (view, starter) = controller_for::<K>(&client, ns, config.clone(), stopped(stop_rx.clone()));
            views.push(view);
            starters.push(starter);
        }, _ => {});
    }
    let shared = Arc::new(Shared { ctx, schedule: Mutex::default(), views, metrics });
    let controllers = futures::future::join_all(starters.into_iter().map(|start| start(shared.clone())));

    let gauges = {
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        async move {
            loop {
                shared.update_gauges();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    };
    let was_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = {
        let was_lost = was_lost.clone();
        async move {
            let lost = async {
                match lost {
                    Some(l) => l.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => info!("shutting down: no new reconciles; waiting for those in flight"),
                _ = lost => {
                    warn!("leadership lost: stopping");
                    was_lost.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let _ = stop_tx.send(true);
        }
    };
    readiness.set_ready();
    tokio::join!(controllers, stopper, gauges);
    // Alerts of the last reconciles go out before the process does.
    shared.ctx.events.flush(Duration::from_secs(10)).await;
    let _ = notification_status.await;
    // Runner pods in flight keep running and release their own state locks; the next
    // leader adopts them. Handing the Lease over now spares it the expiry wait.
    if let Some(leadership) = leadership
        && !was_lost.load(std::sync::atomic::Ordering::SeqCst)
        && let Err(e) = leadership.release().await
    {
        warn!("cannot release the leader Lease: {e}");
    }
    let _ = servers_stop_tx.send(true);
    let _ = tokio::join!(server, probes);
    info!("controller stopped");
    if was_lost.load(std::sync::atomic::Ordering::SeqCst) { Err(ControllerError::LeadershipLost) } else { Ok(()) }
}

/// Every Receiver, kept by a watch until `stop`: the webhook server finds a call's Receiver
/// there instead of listing them from the API per call (calls are unauthenticated until
/// verified). Every replica keeps one, since every replica serves webhooks.
fn watch_receivers(client: &kube::Client, stop: impl std::future::Future<Output = ()> + Send + 'static) -> reflector::Store<Receiver> {
    let (reader, writer) = reflector::store::<Receiver>();
    let events =
        watcher(Api::<Receiver>::all(client.clone()), watcher::Config::default()).default_backoff().reflect(writer).for_each(|event| {
            if let Err(e) = event {
                warn!("watching Receivers: {e}");
            }
            std::future::ready(())
        });
    tokio::spawn(async move {
        tokio::select! {
            _ = events => {}
            _ = stop => {}
        }
    });
    reader
}

/// How often the notification kinds' status is refreshed.
const NOTIFICATION_STATUS_PERIOD: Duration = Duration::from_secs(10);

async fn notification_status_loop(store: KubeStore, tenancy: crate::api::Tenancy, stop: impl std::future::Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        if let Err(e) = crate::notify::objects::refresh(&store, &tenancy).await {
            tracing::warn!("cannot refresh the status of Providers, Alerts and Receivers: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(NOTIFICATION_STATUS_PERIOD) => {}
            _ = &mut stop => return,
        }
    }
}

/// The wake-up channel as the stream `reconcile_on` takes.
fn tokio_stream_of<T: Send + 'static>(mut rx: tokio::sync::mpsc::UnboundedReceiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_writes_do_not_trigger_reconciles_but_user_changes_do() {
        let mut t: crate::api::Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "a", "namespace": "n", "generation": 1 },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "s" }, "interval": "1h" }
        }))
        .expect("object");
        let before = user_change(&t);
        t.status = Some(Default::default());
        assert_eq!(user_change(&t), before, "status");
        t.metadata.annotations = Some([(crate::api::annotation::APPROVE_PLAN.to_string(), "plan-x".to_string())].into());
        assert_ne!(user_change(&t), before, "approval annotation");
        let annotated = user_change(&t);
        t.metadata.generation = Some(2);
        assert_ne!(user_change(&t), annotated, "spec change");
    }
}
