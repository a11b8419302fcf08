//! The local store's context, and `run` (the reconcile loop honoring intervals).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::{CliError, Result};
use crate::api::{Conditions, Kind, Reconciled, Terraform, condition_type as ct};
use crate::dispatch::{BackendSpec, ProcessDispatch};
use crate::reconcile::schedule::dependents;
use crate::reconcile::{Clusters, Context, Refs, Requeue, Schedule};
use crate::source::ArtifactStore;
use crate::store::{EventLog, LocalStore, ObjectStore};

pub type LocalContext = Context<LocalStore, ProcessDispatch>;

/// Where a local store's Kustomizations apply: the global `--kubeconfig` and `--context`
/// (each unset: kube's defaults, as for every cluster command).
#[derive(Debug, Clone, Default)]
pub struct KubeContext {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The embedded default: objects, artifacts, state and plans under one directory, runs as
/// local processes.
pub fn local_context(
    dir: &Path,
    terraform: Option<PathBuf>,
    tofu: Option<PathBuf>,
    create: bool,
    kube: KubeContext,
) -> Result<LocalContext> {
    let store = if create { LocalStore::open(dir)? } else { LocalStore::open_existing(dir)? };
    let root =
        std::fs::canonicalize(store.root()).map_err(|e| CliError::File { path: dir.display().to_string(), reason: e.to_string() })?;
    let store = LocalStore::open(&root)?;
    let terraform = terraform.map(|t| engine_binary(&t, "terraform")).transpose()?;
    let tofu = tofu.map(|t| engine_binary(&t, "tofu")).transpose()?;
    Ok(Context {
        backend: BackendSpec::Local { root: store.backend_dir() },
        artifacts: ArtifactStore::new(store.artifacts_dir()),
        // Runners read artifacts from the store's disk (file:// URLs): nothing to sign.
        artifact_access: crate::source::ArtifactAccess::unsigned(),
        git_cache: store.cache_dir().join("git"),
        events: local_events(&store),
        dispatch: ProcessDispatch::locate_when_needed(),
        terraform_path: terraform,
        tofu_path: tofu,
        identity: format!("driftless@{}/{}", hostname(), std::process::id()),
        run_timeout: Duration::from_secs(30 * 60),
        // Kustomizations apply to the chosen (else the current) kube context, found when
        // first needed.
        clusters: Clusters::lazy(move || {
            let kube = kube.clone();
            async move { super::cluster::config(kube.kubeconfig.as_deref(), kube.context.as_deref()).await.map_err(|e| e.to_string()) }
        }),
        // One user's store: every reference and URL allowed.
        tenancy: crate::api::Tenancy::LOCAL,
        store,
    })
}

/// An engine binary named on the command line, as an absolute path: runners start in
/// workspaces of their own, where a relative path means nothing.
fn engine_binary(path: &Path, engine: &str) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| CliError::File { path: path.display().to_string(), reason: format!("{engine} binary: {e}") })
}

/// The store's event log; every event also goes to the Alerts, when a runtime is there to
/// deliver them (every CLI command has one).
fn local_events(store: &LocalStore) -> EventLog {
    let log = EventLog::new(store.events_path());
    if tokio::runtime::Handle::try_current().is_err() {
        return log;
    }
    let settings = crate::notify::NotifierSettings {
        review_url: std::env::var("DRIFTLESS_REVIEW_URL").ok().filter(|u| !u.is_empty()).and_then(|u| match super::parse_review_url(&u) {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!("DRIFTLESS_REVIEW_URL is ignored, alerts carry no review link: {e}");
                None
            }
        }),
        ..Default::default()
    };
    log.with_tap(std::sync::Arc::new(crate::notify::Notifier::start(store.clone(), settings)))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// What the loop needs of each object: whom its changes wake, what a user changed, and its
/// interval.
struct Listed {
    refs: Refs,
    fingerprint: String,
    interval: Duration,
}

/// What makes an object due at once when a user changes it (the local loop's watch).
fn fingerprint<K: Reconciled>(o: &K) -> String {
    let m = o.meta();
    format!("{:?}|{:?}|{:?}|{}", m.generation, m.annotations, m.deletion_timestamp, o.suspended())
}

/// Every reconciled object of the store.
async fn list_all(ctx: &LocalContext) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for kind in Kind::RECONCILED {
        crate::with_reconciled_kind!(kind, K => {
            for o in ctx.store.list::<K>().await? {
                out.push(Listed { refs: Refs::of(&o), fingerprint: fingerprint(&o), interval: o.interval() });
            }
        }, _ => {});
    }
    Ok(out)
}

/// The reconcile loop of the local store: a thin driver of the one scheduler. Sources run
/// before the objects that read them; an object that becomes Ready (or a source with a new
/// artifact) makes its dependents due at once; failures back off as on a cluster.
pub async fn run_loop(ctx: &LocalContext, once: bool, receiver_addr: Option<std::net::SocketAddr>) -> Result<()> {
    if let Some(addr) = receiver_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Usage(format!("--receiver-addr {addr}: cannot listen: {e}")))?;
        let router = crate::notify::receiver::router(ctx.store.clone(), crate::notify::receiver::Receivers::Listed, ctx.tenancy.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::notify::receiver::serve(listener, router, std::future::pending()).await {
                tracing::error!("receiver server: {e}");
            }
        });
        eprintln!("receiver webhooks on http://{addr}/hook/...");
    }
    let mut schedule = Schedule::default();
    let mut passes = 0u32;
    loop {
        let now = Instant::now();
        if passes.is_multiple_of(10)
            && let Err(e) = crate::notify::objects::refresh(&ctx.store, &ctx.tenancy).await
        {
            tracing::warn!("cannot refresh the status of Providers, Alerts and Receivers: {e}");
        }
        let objects = list_all(ctx).await?;
        for o in &objects {
            schedule.observe(&o.refs.object, o.fingerprint.clone(), now);
        }
        schedule.retain(|key| objects.iter().any(|o| &o.refs.object == key));
        for key in schedule.due(now) {
            schedule.started(&key);
            let requeue = match crate::reconcile::reconcile(ctx, key.kind, &key.namespace, &key.name, false).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(kind = %key.kind, namespace = %key.namespace, name = %key.name, "reconcile failed: {e}");
                    Requeue { after: Some(Duration::from_secs(30)), wake_dependents: false, failing: true }
                }
            };
            let interval = objects.iter().find(|o| o.refs.object == key).map_or(Duration::from_secs(60), |o| o.interval);
            schedule.finished(&key, &requeue, interval, Instant::now());
            if requeue.wake_dependents {
                for d in dependents(&key, objects.iter().map(|o| &o.refs)) {
                    schedule.wake(&d, Instant::now());
                }
            }
        }
        passes += 1;
        let next = schedule.next();
        if once {
            let pending_now = next.is_some_and(|n| n <= Instant::now());
            if !pending_now || passes > 50 {
                return summary(ctx).await;
            }
            continue;
        }
        let wait = next.map(|n| n.saturating_duration_since(Instant::now())).unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted; no run was left half-done");
                return Ok(());
            }
        }
    }
}

async fn summary(ctx: &LocalContext) -> Result<()> {
    let mut failed = Vec::new();
    for t in ctx.store.list::<Terraform>().await? {
        if let Some(c) = t.status.as_ref().and_then(|s| s.condition(ct::READY))
            && !super::reconcile::is_waiting(&c.reason)
        {
            failed.push(format!("terraform/{}: {}: {}", t.metadata.name.unwrap_or_default(), c.reason, c.message));
        }
    }
    super::objects::get(&ctx.store, "terraform", None, None, "table", None).await?;
    if failed.is_empty() { Ok(()) } else { Err(CliError::Usage(failed.join("\n"))) }
}
