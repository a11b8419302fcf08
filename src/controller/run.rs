//! `driftless controller`: the reconcilers driven by the Kubernetes API.
//!
//! One kube-runtime `Controller` per kind. Each calls the same reconcile function the local
//! store uses; this module adds only what a cluster needs: watches and re-queues,
//! finalizers, backoff, the artifact server, and dependents woken as soon as their
//! dependency becomes Ready (not on their interval).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{Instrument, info, info_span, warn};

use super::leader::{LeaderElector, LeaseTiming};
use super::metrics::Metrics;
use super::probes::Readiness;
use crate::api::{Bucket, Conditions, GitRepository, Kustomization, Terraform, condition_type as ct};
use crate::context::{Context, ReconcileError, Requeue};
use crate::dispatch::{BackendSpec, PodDispatch, PodSettings};
use crate::source::ArtifactStore;
use crate::source::reconcile::Source;
use crate::store::kube::ensure_finalizer;
use crate::store::{EventLog, KubeStore, ObjectStore};

/// Everything `driftless controller` is told on its command line.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Reconciles running at once, per kind.
    pub concurrent: u16,
    pub metrics_addr: SocketAddr,
    pub artifact_addr: SocketAddr,
    /// The artifact server's address as runner pods reach it (its Service).
    pub artifact_url: String,
    /// Artifacts and Git caches (an emptyDir: sources are re-fetched after a restart).
    pub storage_path: PathBuf,
    pub runner: PodSettings,
    pub terraform_path: Option<PathBuf>,
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

/// What every reconcile of this controller shares.
struct Shared {
    ctx: Context<KubeStore, PodDispatch>,
    /// Consecutive failed reconciles per object, for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    terraforms: Store<Terraform>,
    kustomizations: Store<Kustomization>,
    /// Objects to reconcile now (a dependency or source became ready).
    wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<Terraform>>,
    wake_kustomizations: tokio::sync::mpsc::UnboundedSender<ObjectRef<Kustomization>>,
    /// When each object is due again: the queue depth is the count of those overdue.
    due: Mutex<HashMap<String, Instant>>,
    metrics: Metrics,
    /// The controller's own connection, for clients that impersonate a Kustomization's
    /// `serviceAccountName` (`None`: impersonation is refused).
    config: Option<kube::Config>,
}

impl Shared {
    /// The client a Kustomization applies with: the controller's, or its ServiceAccount's.
    fn client_for(&self, object: &Kustomization) -> Result<kube::Client, String> {
        let Some(account) = &object.spec.service_account_name else { return Ok(self.ctx.store.client().clone()) };
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let Some(mut config) = self.config.clone() else {
            return Err(format!("spec.serviceAccountName {account}: this controller cannot impersonate (no kube config)"));
        };
        config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
        config.auth_info.impersonate_groups = None;
        kube::Client::try_from(config).map_err(|e| format!("spec.serviceAccountName {account}: {e}"))
    }
}

impl Shared {
    /// The delay before the next attempt: `after` (the interval) on success; on failure
    /// the retry interval, doubled per consecutive failure up to the larger interval.
    fn next(&self, key: &str, requeue: Requeue, interval: Duration) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let after = if requeue.failing {
            let n = failures.entry(key.to_string()).and_modify(|n| *n += 1).or_insert(1);
            retry_delay(*n, requeue.after, interval)
        } else {
            failures.remove(key);
            requeue.after
        };
        if after != Duration::MAX {
            self.due.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), Instant::now() + after);
        }
        after
    }

    fn started(&self, key: &str) {
        self.due.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Objects of a kind whose time has come but that no worker has taken yet.
    fn overdue(&self, kind: &str) -> usize {
        let now = Instant::now();
        let prefix = format!("{kind}/");
        self.due.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|(k, t)| k.starts_with(&prefix) && **t <= now).count()
    }

    /// Refreshes the gauges the reconciles do not update themselves.
    fn update_gauges(&self) {
        for kind in KINDS {
            self.metrics.set_queue_depth(kind, self.overdue(kind));
        }
        let drifted = self.terraforms.state().iter().filter(|t| t.status.as_ref().is_some_and(|s| s.is_true(ct::DRIFTED))).count();
        self.metrics.set_drifted("Terraform", drifted);
        let drifted = self.kustomizations.state().iter().filter(|k| k.status.as_ref().is_some_and(|s| s.is_true(ct::DRIFTED))).count();
        self.metrics.set_drifted("Kustomization", drifted);
    }

    /// Wakes every object (of both kinds) that reads this source or depends on this object.
    fn wake_dependents(&self, kind: &str, namespace: &str, name: &str) {
        let refers = |own: &str,
                      source: &crate::api::CrossNamespaceSourceReference,
                      deps: &[crate::api::DependencyReference],
                      default_kind: &str| {
            let reads = source.kind == kind && source.name == name && source.namespace.as_deref().unwrap_or(own) == namespace;
            let depends = deps.iter().any(|d| {
                d.kind.as_deref().unwrap_or(default_kind) == kind && d.name == name && d.namespace.as_deref().unwrap_or(own) == namespace
            });
            reads || depends
        };
        for t in self.terraforms.state() {
            if refers(t.metadata.namespace.as_deref().unwrap_or_default(), &t.spec.source_ref, &t.spec.depends_on, "Terraform") {
                let _ = self.wake.send(ObjectRef::from_obj(t.as_ref()));
            }
        }
        for k in self.kustomizations.state() {
            if refers(k.metadata.namespace.as_deref().unwrap_or_default(), &k.spec.source_ref, &k.spec.depends_on, "Kustomization") {
                let _ = self.wake_kustomizations.send(ObjectRef::from_obj(k.as_ref()));
            }
        }
    }
}

const KINDS: [&str; 4] = ["Terraform", "Kustomization", "GitRepository", "Bucket"];

/// The wait before retry number `failures` (1 = first): the retry interval doubled per
/// consecutive failure, never more than the larger of the two intervals.
fn retry_delay(failures: u32, retry: Duration, interval: Duration) -> Duration {
    let cap = interval.max(retry);
    retry.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(cap)
}

fn key_of(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

fn requeue_action(after: Duration) -> Action {
    if after == Duration::MAX { Action::await_change() } else { Action::requeue(after) }
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

async fn reconcile_terraform(object: Arc<Terraform>, shared: Arc<Shared>) -> Result<Action, ReconcileError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let key = key_of("Terraform", &namespace, &name);
    shared.started(&key);
    let timer = shared.metrics.reconcile_started("Terraform");
    let result = async {
        ensure_finalizer(&shared.ctx.store, object.as_ref()).await?;
        let requeue = crate::terraform::reconcile(&shared.ctx, &namespace, &name, false).await?;
        if requeue.became_ready {
            shared.wake_dependents("Terraform", &namespace, &name);
        }
        let interval = object.spec.interval.as_std();
        Ok(requeue_action(shared.next(&key, requeue, interval)))
    }
    .instrument(info_span!("reconcile", kind = "Terraform", namespace = %namespace, name = %name))
    .await;
    timer.finish(&result);
    result
}

async fn reconcile_kustomization(object: Arc<Kustomization>, shared: Arc<Shared>) -> Result<Action, ReconcileError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let key = key_of("Kustomization", &namespace, &name);
    shared.started(&key);
    let timer = shared.metrics.reconcile_started("Kustomization");
    let result = async {
        ensure_finalizer(&shared.ctx.store, object.as_ref()).await?;
        let client = match shared.client_for(&object) {
            Ok(c) => c,
            // Never fall back to the controller's own rights.
            Err(message) => {
                warn!("{message}");
                let generation = object.metadata.generation;
                let now = jiff::Timestamp::now().to_string();
                shared
                    .ctx
                    .store
                    .update::<Kustomization>(&namespace, &name, |k| {
                        let status = k.status.get_or_insert_with(Default::default);
                        status.set_condition(
                            ct::READY,
                            crate::api::ConditionStatus::False,
                            crate::api::reason::INVALID_SPEC,
                            &message,
                            generation,
                            &now,
                        );
                    })
                    .await?;
                return Ok(Action::requeue(
                    object.spec.retry_interval.as_ref().map(|d| d.as_std()).unwrap_or(object.spec.interval.as_std()),
                ));
            }
        };
        let requeue = crate::kustomization::reconcile(&shared.ctx, &client, &namespace, &name, false).await?;
        if requeue.became_ready {
            shared.wake_dependents("Kustomization", &namespace, &name);
        }
        Ok(requeue_action(shared.next(&key, requeue, object.spec.interval.as_std())))
    }
    .instrument(info_span!("reconcile", kind = "Kustomization", namespace = %namespace, name = %name))
    .await;
    timer.finish(&result);
    result
}

async fn reconcile_source<K: Source + std::fmt::Debug>(object: Arc<K>, shared: Arc<Shared>) -> Result<Action, ReconcileError> {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    let key = key_of(K::KIND, &namespace, &name);
    shared.started(&key);
    let timer = shared.metrics.reconcile_started(K::KIND);
    let result = async {
        if object.meta().deletion_timestamp.is_some() {
            if let Err(e) = shared.ctx.artifacts.remove_object(K::KIND, &namespace, &name) {
                warn!("cannot remove the artifacts of a deleted source: {e}");
            }
            shared.ctx.store.delete::<K>(&namespace, &name).await?;
            return Ok(Action::await_change());
        }
        ensure_finalizer(&shared.ctx.store, object.as_ref()).await?;
        let before = object.source_status().and_then(|s| s.artifact.as_ref()).map(|a| a.digest.clone());
        let requeue = crate::source::reconcile::reconcile_source::<K, _, _>(&shared.ctx, &namespace, &name, false).await?;
        let after = shared.ctx.store.get::<K>(&namespace, &name).await?;
        let artifact = after.as_ref().and_then(|o| o.source_status()).and_then(|s| s.artifact.as_ref()).map(|a| a.digest.clone());
        if requeue.became_ready || artifact != before {
            shared.wake_dependents(K::KIND, &namespace, &name);
        }
        Ok(requeue_action(shared.next(&key, requeue, object.interval())))
    }
    .instrument(info_span!("reconcile", kind = K::KIND, namespace = %namespace, name = %name))
    .await;
    timer.finish(&result);
    result
}

/// A reconcile that could not record its outcome (the API failed): retried with backoff.
fn error_policy<K>(_object: Arc<K>, error: &ReconcileError, _shared: Arc<Shared>) -> Action {
    warn!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
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
    for kind in KINDS {
        metrics.init_kind(kind);
    }
    let readiness = Readiness::new();
    let probe_listener = tokio::net::TcpListener::bind(options.metrics_addr)
        .await
        .map_err(|source| ControllerError::Listen { addr: options.metrics_addr, source })?;
    let store = KubeStore::new(client.clone());
    let artifacts = ArtifactStore::new(options.storage_path.join("artifacts")).with_base_url(&options.artifact_url);
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
    let server = tokio::spawn(crate::source::server::serve(listener, artifacts.clone(), store.clone(), stopped(servers_stop_rx.clone())));
    info!(addr = %options.artifact_addr, url = %options.artifact_url, "artifact server listening");
    let probes = tokio::spawn(super::probes::serve(probe_listener, metrics.clone(), readiness.clone(), stopped(servers_stop_rx.clone())));
    info!(addr = %options.metrics_addr, "metrics and probes listening");
    if let Some(addr) = options.receiver_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ControllerError::Listen { addr, source })?;
        let router = crate::notify::receiver::router(store.clone());
        let stop = stopped(servers_stop_rx);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
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
    let notification_status = tokio::spawn(notification_status_loop(store.clone(), stopped(stop_rx.clone())));

    let ctx = Context {
        store: store.clone(),
        dispatch: PodDispatch::new(client.clone(), options.runner.clone()).with_observer(Arc::new(metrics.clone())),
        backend,
        artifacts,
        git_cache: options.storage_path.join("git"),
        events: EventLog::kubernetes(client.clone(), "driftless-controller", &options.identity, options.review_url.clone()).with_tap(
            Arc::new(crate::notify::Notifier::start(
                store.clone(),
                crate::notify::NotifierSettings { review_url: options.review_url.clone(), ..Default::default() },
            )),
        ),
        terraform_path: options.terraform_path.clone(),
        identity: options.identity.clone(),
        run_timeout: options.run_timeout,
    };
    let config = ControllerConfig::default().concurrency(options.concurrent);
    fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = options.watch_namespace.as_deref();
    let (tf_reader, tf_writer) = reflector::store();
    let (ks_reader, ks_writer) = reflector::store();
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let (wake_ks_tx, wake_ks_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        ctx,
        failures: Mutex::default(),
        terraforms: tf_reader.clone(),
        kustomizations: ks_reader.clone(),
        wake: wake_tx,
        wake_kustomizations: wake_ks_tx,
        due: Mutex::default(),
        metrics,
        config: kube_config,
    });
    let kustomizations = Controller::for_stream(watch_stream(api::<Kustomization>(&client, ns), ks_writer), ks_reader)
        .with_config(config.clone())
        .reconcile_on(tokio_stream_of(wake_ks_rx))
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_kustomization, error_policy, shared.clone())
        .for_each(|_| async {});

    let terraforms = Controller::for_stream(watch_stream(api::<Terraform>(&client, ns), tf_writer), tf_reader)
        .with_config(config.clone())
        .reconcile_on(tokio_stream_of(wake_rx))
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_terraform, error_policy, shared.clone())
        .for_each(|_| async {});
    let (git_reader, git_writer) = reflector::store();
    let gits = Controller::for_stream(watch_stream(api::<GitRepository>(&client, ns), git_writer), git_reader)
        .with_config(config.clone())
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_source::<GitRepository>, error_policy, shared.clone())
        .for_each(|_| async {});
    let (bucket_reader, bucket_writer) = reflector::store();
    let buckets = Controller::for_stream(watch_stream(api::<Bucket>(&client, ns), bucket_writer), bucket_reader)
        .with_config(config)
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(reconcile_source::<Bucket>, error_policy, shared.clone())
        .for_each(|_| async {});

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
    tokio::join!(terraforms, kustomizations, gits, buckets, stopper, gauges);
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

/// How often the notification kinds' status is refreshed.
const NOTIFICATION_STATUS_PERIOD: Duration = Duration::from_secs(10);

async fn notification_status_loop(store: KubeStore, stop: impl std::future::Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        if let Err(e) = crate::notify::objects::refresh(&store).await {
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
    fn retries_back_off_exponentially_up_to_the_interval() {
        let (retry, interval) = (Duration::from_secs(30), Duration::from_secs(600));
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, retry, interval).as_secs()).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(retry_delay(1000, retry, interval), interval, "no overflow after many failures");
        assert_eq!(retry_delay(3, Duration::from_secs(900), Duration::from_secs(60)), Duration::from_secs(900), "retry above interval");
    }

    #[test]
    fn status_writes_do_not_trigger_reconciles_but_user_changes_do() {
        let mut t: Terraform = serde_json::from_value(serde_json::json!({
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
