//! The local store's context, and `run` (the reconcile loop honoring intervals).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CliError, Result};
use crate::api::{Bucket, Conditions, GitRepository, Terraform, condition_type as ct};
use crate::context::Context;
use crate::dispatch::{BackendSpec, ProcessDispatch};
use crate::source::ArtifactStore;
use crate::store::{EventLog, LocalStore, ObjectStore};

pub type LocalContext = Context<LocalStore, ProcessDispatch>;

/// The embedded default: objects, artifacts, state and plans under one directory, runs as
/// local processes.
pub fn local_context(dir: &Path, terraform: Option<PathBuf>, create: bool) -> Result<LocalContext> {
    let store = if create { LocalStore::open(dir)? } else { LocalStore::open_existing(dir)? };
    let root =
        std::fs::canonicalize(store.root()).map_err(|e| CliError::File { path: dir.display().to_string(), reason: e.to_string() })?;
    let store = LocalStore::open(&root)?;
    let terraform = match terraform {
        Some(t) => Some(
            std::fs::canonicalize(&t)
                .map_err(|e| CliError::File { path: t.display().to_string(), reason: format!("terraform binary: {e}") })?,
        ),
        None => None,
    };
    Ok(Context {
        backend: BackendSpec::Local { root: store.backend_dir() },
        artifacts: ArtifactStore::new(store.artifacts_dir()),
        git_cache: store.cache_dir().join("git"),
        events: local_events(&store),
        dispatch: ProcessDispatch::locate()?,
        terraform_path: terraform,
        identity: format!("driftless@{}/{}", hostname(), std::process::id()),
        run_timeout: Duration::from_secs(30 * 60),
        store,
    })
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

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Key {
    /// `GitRepository`, `Bucket` or `Terraform`.
    kind: &'static str,
    namespace: String,
    name: String,
}

impl Key {
    fn of<K: kube::Resource>(kind: &'static str, o: &K) -> Self {
        Key { kind, namespace: ns(o), name: o.meta().name.clone().unwrap_or_default() }
    }

    fn is_source(&self) -> bool {
        matches!(self.kind, "GitRepository" | "Bucket")
    }
}

/// What makes an object due at once when a user changes it.
fn fingerprint<K: kube::Resource>(o: &K) -> String {
    let m = o.meta();
    format!("{:?}|{:?}|{:?}", m.generation, m.annotations, m.deletion_timestamp)
}

/// The reconcile loop of the local store. Sources first, then Terraforms; an object that
/// becomes Ready makes its dependents due immediately.
pub async fn run_loop(ctx: &LocalContext, once: bool, receiver_addr: Option<std::net::SocketAddr>) -> Result<()> {
    if let Some(addr) = receiver_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Usage(format!("--receiver-addr {addr}: cannot listen: {e}")))?;
        let router = crate::notify::receiver::router(ctx.store.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("receiver server: {e}");
            }
        });
        eprintln!("receiver webhooks on http://{addr}/hook/...");
    }
    let mut due: HashMap<Key, Instant> = HashMap::new();
    let mut seen: HashMap<Key, String> = HashMap::new();
    let mut passes = 0u32;
    loop {
        let now = Instant::now();
        if passes.is_multiple_of(10)
            && let Err(e) = crate::notify::objects::refresh(&ctx.store).await
        {
            tracing::warn!("cannot refresh the status of Providers, Alerts and Receivers: {e}");
        }
        let repos = ctx.store.list::<GitRepository>().await?;
        let buckets = ctx.store.list::<Bucket>().await?;
        let tfs = ctx.store.list::<Terraform>().await?;
        let kss = ctx.store.list::<crate::api::Kustomization>().await?;
        let mut live = Vec::new();
        for (key, fp) in repos
            .iter()
            .map(|r| (Key::of("GitRepository", r), fingerprint(r) + &r.spec.suspend.to_string()))
            .chain(buckets.iter().map(|b| (Key::of("Bucket", b), fingerprint(b) + &b.spec.suspend.to_string())))
            .chain(tfs.iter().map(|t| (Key::of("Terraform", t), fingerprint(t) + &t.spec.suspend.to_string())))
            .chain(kss.iter().map(|k| (Key::of("Kustomization", k), fingerprint(k) + &k.spec.suspend.to_string())))
        {
            if seen.get(&key) != Some(&fp) {
                due.insert(key.clone(), now);
                seen.insert(key.clone(), fp);
            }
            live.push(key);
        }
        due.retain(|k, _| live.contains(k));
        seen.retain(|k, _| live.contains(k));

        let mut ready_now: Vec<Key> = due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        // Sources before the objects that read them.
        ready_now.sort_by_key(|k| (!k.is_source(), k.kind, k.namespace.clone(), k.name.clone()));
        for key in &ready_now {
            let outcome = match key.kind {
                "GitRepository" => crate::source::reconcile::reconcile(ctx, &key.namespace, &key.name, false).await,
                "Bucket" => crate::source::reconcile::reconcile_bucket(ctx, &key.namespace, &key.name, false).await,
                "Kustomization" => match kube_client().await {
                    Ok(client) => crate::kustomization::reconcile(ctx, &client, &key.namespace, &key.name, false).await,
                    // Said on the object (and the loop goes on with the other objects).
                    Err(e) => no_cluster(ctx, &key.namespace, &key.name, &e.to_string()).await,
                },
                _ => crate::terraform::reconcile(ctx, &key.namespace, &key.name, false).await,
            };
            let requeue = match outcome {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(namespace = %key.namespace, name = %key.name, "reconcile failed: {e}");
                    crate::context::Requeue { after: Duration::from_secs(30), became_ready: false, failing: true }
                }
            };
            due.insert(key.clone(), Instant::now() + requeue.after.min(Duration::from_secs(24 * 3600)));
            // A new artifact or a newly Ready dependency: the objects that wait on it go now.
            if key.is_source() || requeue.became_ready {
                for t in &tfs {
                    let watches = if key.is_source() {
                        t.spec.source_ref.kind == key.kind
                            && t.spec.source_ref.name == key.name
                            && t.spec.source_ref.namespace.clone().unwrap_or_else(|| ns(t)) == key.namespace
                    } else {
                        t.spec
                            .depends_on
                            .iter()
                            .any(|d| d.name == key.name && d.namespace.clone().unwrap_or_else(|| ns(t)) == key.namespace)
                    };
                    if watches {
                        due.insert(Key::of("Terraform", t), Instant::now());
                    }
                }
                for k in &kss {
                    let own = k.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                    let watches = if key.is_source() {
                        k.spec.source_ref.kind == key.kind
                            && k.spec.source_ref.name == key.name
                            && k.spec.source_ref.namespace.clone().unwrap_or_else(|| own.clone()) == key.namespace
                    } else {
                        k.spec.depends_on.iter().any(|d| {
                            d.kind.as_deref().unwrap_or("Kustomization") == key.kind
                                && d.name == key.name
                                && d.namespace.clone().unwrap_or_else(|| own.clone()) == key.namespace
                        })
                    };
                    if watches {
                        due.insert(Key::of("Kustomization", k), Instant::now());
                    }
                }
            }
        }
        passes += 1;
        let next = due.values().min().copied();
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

fn ns<K: kube::Resource>(o: &K) -> String {
    o.meta().namespace.clone().unwrap_or_else(|| "default".into())
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
    super::objects::get(&ctx.store, "terraform", None, None, "table").await?;
    if failed.is_empty() { Ok(()) } else { Err(CliError::Usage(failed.join("\n"))) }
}

async fn no_cluster(
    ctx: &LocalContext,
    namespace: &str,
    name: &str,
    message: &str,
) -> Result<crate::context::Requeue, crate::context::ReconcileError> {
    use crate::api::Conditions;
    let now = jiff::Timestamp::now().to_string();
    ctx.store
        .update::<crate::api::Kustomization>(namespace, name, |k| {
            let generation = k.metadata.generation;
            let status = k.status.get_or_insert_with(Default::default);
            status.set_condition(
                crate::api::condition_type::READY,
                crate::api::ConditionStatus::False,
                "ClusterUnavailable",
                message,
                generation,
                &now,
            );
        })
        .await?;
    Ok(crate::context::Requeue { after: Duration::from_secs(30), became_ready: false, failing: true })
}

/// The cluster a local store's Kustomizations are applied to: the current kube context.
pub(crate) async fn kube_client() -> Result<kube::Client> {
    super::cluster::client(None, None)
        .await
        .map_err(|e| CliError::Usage(format!("a Kustomization applies manifests to a cluster, and there is none to use: {e}")))
}
