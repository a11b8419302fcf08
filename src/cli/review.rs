//! What a reviewer runs: plan show, approve, drift list/show, unlock, and the review page's
//! two hosts (a local store, a cluster). The same on a local store and on a cluster: each
//! reads the object's status, and its backend where the plan or the lock lives. Approving
//! only sets `driftless.dev/approve-plan`; whoever reconciles (`driftless run`, `reconcile`,
//! the controller) applies the plan.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::objects::print_table;
use super::run::LocalContext;
use super::target::{ClusterTarget, ObjectBackend, Target, object_backend};
use super::{CliError, Result};
use crate::api::{Kind, Reconciled};
use crate::api::{Terraform, annotation};
use crate::backend::{PlanStore, StateKey, StateStore};
use crate::dispatch::ObjectKey;
use crate::reconcile::approval::{self, Refusal};
use crate::review::PlanRendering;
use crate::store::{ObjectStore, annotate};
use crate::terraform::{KIND, secret_suffix, state_name};

async fn terraform<S: ObjectStore>(store: &S, namespace: &str, name: &str) -> Result<Terraform> {
    store.get::<Terraform>(namespace, name).await?.ok_or_else(|| CliError::Usage(format!("Terraform {namespace}/{name} not found")))
}

fn object_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: KIND.into(), namespace: namespace.into(), name: name.into() }
}

/// The readable rendering of plan `plan_id` of an object, as its reconciler stored it: a
/// Terraform's from its backend (beside the saved plan), a Kustomization's from the
/// `<name>-plan` Secret. The one reader of renderings, for `plan show` and the review page.
///
/// # Errors
/// When the object is missing or its backend cannot be connected; a backend that connects
/// but fails to read is [`PlanRendering::Unreadable`], so the caller can still show the rest.
pub(crate) async fn plan_rendering<T: Target>(target: &T, kind: Kind, namespace: &str, name: &str, plan_id: &str) -> Result<PlanRendering> {
    // A Terraform's plan lives in its state backend; every other kind keeps its rendering in
    // the `<name>-plan` Secret beside it.
    match kind {
        Kind::Terraform => {
            let tf = terraform(target.store(), namespace, name).await?;
            let key = object_key(namespace, name);
            let meta = match object_backend(target, &tf).await? {
                ObjectBackend::Local(b) => b.plan_meta(&key, plan_id).await,
                ObjectBackend::S3(b) => b.plan_meta(&key, plan_id).await,
                ObjectBackend::Kubernetes(b) => b.plan_meta(&key, plan_id).await,
            };
            Ok(match meta {
                Ok(Some(m)) => PlanRendering::Text(m.rendering),
                Ok(None) => PlanRendering::Missing,
                Err(e) => PlanRendering::Unreadable(e.to_string()),
            })
        }
        _ => {
            let secret_name = crate::kustomization::plan::plan_secret_name(name);
            let secret = target.store().get::<k8s_openapi::api::core::v1::Secret>(namespace, &secret_name).await?;
            let rendering = secret.and_then(|s| crate::kustomization::plan::rendering_of(s, plan_id));
            Ok(rendering.map_or(PlanRendering::Missing, PlanRendering::Text))
        }
    }
}

/// The object of a planned kind with that name, the first kind first (a Terraform, else a
/// Kustomization: the reviewer's verbs take a bare name), with its status.
async fn reviewed<S: ObjectStore>(store: &S, namespace: &str, name: &str) -> Result<(Kind, crate::api::ObjectStatus)> {
    for kind in Kind::PLANNED {
        let found = crate::with_reconciled_kind!(kind, K => store.get::<K>(namespace, name).await?.map(|o| o.common_status()), _ => None);
        if let Some(status) = found {
            return Ok((kind, status));
        }
    }
    let kinds: Vec<&str> = Kind::PLANNED.iter().map(|k| k.as_str()).collect();
    Err(CliError::Usage(format!("no {} named {namespace}/{name}", kinds.join(" or "))))
}

/// Sets annotations on the planned object `kind namespace/name`.
async fn annotate_planned<S: ObjectStore>(
    store: &S,
    kind: Kind,
    namespace: &str,
    name: &str,
    changes: &[(&str, Option<&str>)],
) -> Result<()> {
    crate::with_reconciled_kind!(kind, K => annotate::<K, _>(store, namespace, name, changes).await.map(drop)?, _ => ());
    Ok(())
}

pub async fn plan_show<T: Target>(target: &T, name: &str, namespace: &str) -> Result<()> {
    let (kind, status) = reviewed(target.store(), namespace, name).await?;
    let shown = kind.segment();
    let plan =
        status.plan.ok_or_else(|| CliError::Usage(format!("{shown}/{name} has no plan yet; run `driftless reconcile {shown} {name}`")))?;
    let rendering = plan_rendering(target, kind, namespace, name, &plan.id).await?;
    let state = if plan.pending {
        "pending approval"
    } else if plan.applied_at.is_some() {
        "applied"
    } else {
        "superseded"
    };
    println!("Plan {} ({state})", plan.id);
    println!("  revision: {}", plan.source_revision);
    println!("  created:  {}", plan.created_at);
    if kind == Kind::Terraform {
        if let Some(d) = &plan.digest {
            println!("  digest:   {d}");
        }
        if plan.corrects_drift {
            println!("  corrects drift");
        }
    }
    println!();
    match rendering {
        PlanRendering::Text(text) => print!("{text}"),
        PlanRendering::Missing if kind == Kind::Kustomization => println!("Plan: {}.", plan.summary),
        PlanRendering::Missing => println!("(the saved plan is no longer in the backend)\n\nPlan: {}.", plan.summary),
        PlanRendering::Unreadable(e) => println!("(the saved plan cannot be read: {e})\n\nPlan: {}.", plan.summary),
    }
    if plan.pending {
        println!("\nApprove with: driftless approve {name} {}", plan.id);
    }
    Ok(())
}

pub async fn approve<T: Target>(target: &T, name: &str, plan_id: Option<&str>, namespace: &str) -> Result<()> {
    let (kind, status) = reviewed(target.store(), namespace, name).await?;
    let shown = kind.segment();
    // The one approval rule: the pending plan, else the correction of the drift detected now,
    // bound to the stored plan's digest as it is now (what `plan show` showed).
    let id = match approval::approve(&status, plan_id) {
        Ok(id) => id.to_string(),
        Err(Refusal::NothingToApprove) => return Err(CliError::Usage(format!("{shown}/{name} has no plan waiting for approval"))),
        Err(Refusal::NotCurrent { asked, current }) => {
            return Err(CliError::Usage(format!(
                "{asked} is not the plan of {shown}/{name} waiting for approval; that is {current} ({}); review it with `driftless plan show {name}`",
                waiting_summary(&status, &current)
            )));
        }
    };
    // Who approved, for the object's history; a stale name from an earlier approval is removed.
    let by = actor(target).await;
    let digest = approval::approvable_with_digest(&status).and_then(|(_, d)| d);
    let value = approval::annotation_value(&id, digest);
    let changes = [(annotation::APPROVE_PLAN, Some(value.as_str())), (annotation::ACTED_BY, by.as_deref())];
    annotate_planned(target.store(), kind, namespace, name, &changes).await?;
    let bound = digest.map(|d| format!(", stored plan {d}")).unwrap_or_default();
    println!("approved plan {id} of {shown}/{name} ({}{bound}); {}", waiting_summary(&status, &id), target.after_approval(kind, name));
    Ok(())
}

/// What the plan `id` waiting for approval changes: the pending plan's counts, or the
/// summary of the drift it corrects.
fn waiting_summary(status: &crate::api::ObjectStatus, id: &str) -> String {
    match (&status.plan, &status.drift) {
        (Some(p), _) if p.pending && p.id == id => p.summary.to_string(),
        (_, Some(d)) if d.plan_id.as_deref() == Some(id) => format!("corrects drift: {}", d.summary),
        _ => String::new(),
    }
}

/// Who this CLI acts as: the cluster's name for its credentials (a SelfSubjectReview), or
/// the login name on a local store. `None` when the cluster will not say.
async fn actor<T: Target>(target: &T) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let Some(client) = target.client() else {
        return std::env::var("USER").ok().filter(|u| !u.is_empty());
    };
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    match api.create(&kube::api::PostParams::default(), &SelfSubjectReview::default()).await {
        Ok(review) => review.status.and_then(|s| s.user_info).and_then(|u| u.username).filter(|u| !u.is_empty()),
        Err(e) => {
            tracing::debug!("SelfSubjectReview failed, approving without a name: {}", crate::store::kube::describe(&e));
            None
        }
    }
}

/// `drift ack NAME [DRIFT_ID]`: acknowledges the current drift of a Terraform or a
/// Kustomization (the exact id; defaults to the current one). Its alerts stop; a drift that
/// changes gets a new id and alerts again.
pub async fn drift_ack<T: Target>(target: &T, name: &str, drift_id: Option<&str>, namespace: &str) -> Result<()> {
    let (kind, status) = reviewed(target.store(), namespace, name).await?;
    let shown = kind.segment();
    let current = status.drift.filter(|d| d.detected).and_then(|d| d.id.map(|id| (id, d.summary)));
    let Some((current, summary)) = current else {
        return Err(CliError::Usage(format!("{shown}/{name} has no drift to acknowledge")));
    };
    let id = drift_id.unwrap_or(&current);
    if id != current {
        return Err(CliError::Usage(format!(
            "{id} is not the current drift of {shown}/{name}; the current drift is {current} ({summary}); see `driftless drift show {name}`"
        )));
    }
    let by = actor(target).await;
    let changes = [(annotation::ACKNOWLEDGE_DRIFT, Some(id)), (annotation::ACTED_BY, by.as_deref())];
    annotate_planned(target.store(), kind, namespace, name, &changes).await?;
    println!("acknowledged drift {id} of {shown}/{name} ({summary}); its alerts stop, a changed drift alerts again");
    Ok(())
}

/// The drift state of every object that drifts (Terraforms, Kustomizations) in `namespace`
/// (`None`: in all namespaces).
pub async fn drift_list<S: ObjectStore>(store: &S, namespace: Option<&str>) -> Result<()> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for kind in Kind::PLANNED {
        let listed: Vec<(String, String, crate::api::ObjectStatus)> = crate::with_reconciled_kind!(kind, K => {
            let objects = match namespace {
                Some(ns) => store.list_in::<K>(ns).await?,
                None => store.list::<K>().await?,
            };
            objects.into_iter().map(|o| (o.namespace_or_default(), o.name_or_empty(), o.common_status())).collect()
        }, _ => Vec::new());
        for (ns, name, status) in listed {
            let d = status.drift.unwrap_or_default();
            let state = if d.detected {
                "Drifted"
            } else if d.last_checked_at.is_some() {
                "Checked"
            } else {
                "Unchecked"
            };
            rows.push(vec![
                kind.as_str().to_string(),
                ns,
                name,
                state.to_string(),
                d.last_checked_at.unwrap_or_default(),
                d.plan_id.unwrap_or_default(),
                d.summary,
            ]);
        }
    }
    print_table(&["KIND", "NAMESPACE", "NAME", "DRIFT", "LAST CHECK", "CORRECTION PLAN", "SUMMARY"], &rows);
    Ok(())
}

pub async fn drift_show<S: ObjectStore>(store: &S, name: &str, namespace: &str) -> Result<()> {
    let (kind, status) = reviewed(store, namespace, name).await?;
    let shown = format!("{}/{name}", kind.segment());
    let d = status.drift.unwrap_or_default();
    if !d.detected {
        match d.last_checked_at {
            Some(at) => println!("{shown}: no drift (last checked {at}); {}", d.summary),
            None => println!("{shown}: not checked for drift yet"),
        }
        return Ok(());
    }
    println!("{shown}: drift {} detected {}", d.id.unwrap_or_default(), d.detected_at.unwrap_or_default());
    println!("  {}", d.summary);
    for o in &d.objects {
        let fields = if o.fields.is_empty() { String::new() } else { format!(": {}", o.fields.join(", ")) };
        println!("  {} {} ({}){fields}", o.action, o.name, o.kind);
    }
    if let Some(p) = d.plan_id {
        println!("\nCorrection: plan {p}; review with `driftless plan show {name}`, approve with `driftless approve {name} {p}`");
    }
    Ok(())
}

pub async fn unlock<T: Target>(target: &T, name: &str, namespace: &str, yes: bool) -> Result<()> {
    let tf = terraform(target.store(), namespace, name).await?;
    let key = StateKey { object: object_key(namespace, name), state_name: state_name(&tf), secret_suffix: secret_suffix(&tf) };
    let broken = match object_backend(target, &tf).await? {
        ObjectBackend::Local(b) => break_lock(&b, &key, name, yes).await?,
        ObjectBackend::S3(b) => break_lock(&b, &key, name, yes).await?,
        ObjectBackend::Kubernetes(b) => break_lock(&b, &key, name, yes).await?,
    };
    let Some(held) = broken else { return Ok(()) };
    target
        .store()
        .update::<Terraform>(namespace, name, |t| {
            if let Some(s) = t.status.as_mut() {
                s.lock = None;
                s.common.conditions.retain(|c| c.type_ != crate::api::condition_type::STATE_LOCKED);
            }
        })
        .await?;
    println!("lock {} broken; the next reconcile proceeds", held.id);
    Ok(())
}

/// Shows the lock and breaks it: at once when it has expired (its runner is gone), else
/// after confirmation (or `--yes`). Returns the broken lock.
async fn break_lock<B: StateStore>(backend: &B, key: &StateKey, name: &str, yes: bool) -> Result<Option<crate::backend::LockInfo>> {
    let Some(held) = backend.lock_info(key).await? else {
        println!("state of terraform/{name} is not locked");
        return Ok(None);
    };
    println!("state of terraform/{name} is locked by {} since {} (operation {}, lock {})", held.who, held.created, held.operation, held.id);
    let expired = held.expires.as_deref().and_then(|e| e.parse::<jiff::Timestamp>().ok()).filter(|t| *t <= jiff::Timestamp::now());
    if let Some(at) = expired {
        println!("the lock expired at {at}: its run is gone");
    } else if !yes {
        if let Some(e) = &held.expires {
            println!("the lock expires at {e}; breaking a live lock lets two runs write the state at once");
        }
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage("refusing to break the lock without confirmation; pass --yes".into()));
        }
        print!("Break this lock? Only do so if that run is gone. [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage("lock kept".into()));
        }
    }
    Ok(backend.force_unlock(key).await?.or(Some(held)))
}

/// The review page's host on a local store: this process reconciles what a reviewer acted
/// on, one object at a time in the order asked (nothing else reconciles a local store
/// unless `driftless run` is running, and two runs of one object would race for its lock).
struct LocalHost {
    ctx: Arc<LocalContext>,
    queue: mpsc::UnboundedSender<(Kind, String, String)>,
}

impl LocalHost {
    fn start(ctx: LocalContext) -> Arc<Self> {
        let ctx = Arc::new(ctx);
        let (queue, mut requests) = mpsc::unbounded_channel::<(Kind, String, String)>();
        let worker = ctx.clone();
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                // Requests that piled up meanwhile: each object once.
                let mut batch = vec![first];
                while let Ok(more) = requests.try_recv() {
                    if !batch.contains(&more) {
                        batch.push(more);
                    }
                }
                for (kind, namespace, name) in batch {
                    if let Err(e) = worker.reconcile(kind, &namespace, &name, false, Duration::ZERO).await {
                        tracing::warn!("reconcile of {kind} {namespace}/{name} after a review action: {e}");
                    }
                }
            }
        });
        Arc::new(Self { ctx, queue })
    }
}

impl crate::review::Host for LocalHost {
    type Store = crate::store::LocalStore;

    fn store(&self) -> &Self::Store {
        &self.ctx.store
    }

    async fn plan_rendering(&self, kind: Kind, namespace: &str, name: &str, plan_id: &str) -> PlanRendering {
        plan_rendering(&*self.ctx, kind, namespace, name, plan_id).await.unwrap_or_else(|e| PlanRendering::Unreadable(e.to_string()))
    }

    fn after_action(&self, kind: Kind, namespace: &str, name: &str) {
        // The worker lives as long as the server; a send fails only while shutting down.
        let _ = self.queue.send((kind, namespace.to_string(), name.to_string()));
    }
}

/// The review page's host on a cluster: the controller reconciles on the annotations.
pub(crate) struct ClusterHost(ClusterTarget);

impl crate::review::Host for ClusterHost {
    type Store = crate::store::KubeStore;

    fn store(&self) -> &Self::Store {
        Target::store(&self.0)
    }

    async fn plan_rendering(&self, kind: Kind, namespace: &str, name: &str, plan_id: &str) -> PlanRendering {
        plan_rendering(&self.0, kind, namespace, name, plan_id).await.unwrap_or_else(|e| PlanRendering::Unreadable(e.to_string()))
    }

    fn after_action(&self, _: Kind, _: &str, _: &str) {}
}

/// `driftless --store DIR review`: serves the page on a loopback address until Ctrl-C. The
/// first line of stdout is the one-time login link (scripts and tests read it).
pub(crate) async fn page(ctx: LocalContext, listen: SocketAddr) -> Result<()> {
    let listener = crate::review::bind_local(listen).await?;
    let addr = listener.local_addr().map_err(|e| CliError::Usage(format!("review page: {e}")))?;
    let token = crate::review::login_token()?;
    println!("{}", crate::review::login_url(addr, &token));
    let _ = std::io::stdout().flush();
    eprintln!("review page on http://{addr}/ (open the link above; it works once); Ctrl-C stops it");
    let host = LocalHost::start(ctx);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::review::serve(listener, host, crate::review::Access::Local { token }, stop).await?;
    Ok(())
}

/// `driftless controller --review-addr ADDR`: binds the cluster's review page and serves it
/// in the background (every replica can: it reads and writes through the API). Bound before
/// the controller starts, so a taken port is an error at once.
pub(crate) async fn cluster_page(client: kube::Client, addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| crate::review::ReviewError::Listen { addr, source })?;
    let host = Arc::new(ClusterHost(ClusterTarget::new(client.clone())));
    tracing::info!("review page on http://{addr}/");
    Ok(tokio::spawn(async move {
        if let Err(e) = crate::review::serve(listener, host, crate::review::Access::Cluster(client), std::future::pending()).await {
            tracing::error!("{e}");
        }
    }))
}
