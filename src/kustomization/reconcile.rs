//! The Kustomization kind's own steps, after the reconcile core's: cluster client -> build
//! -> decide -> (dry run and wait | apply, prune, health | drift check). What to do is
//! [`decide`](super::decide)d and what it meant is [`record`](super::record)ed, both pure;
//! this file does the talking to the cluster.
//!
//! The plan of manifests is the server-side dry run of the build; its id comes from the
//! revision and the build's digest, so an approval names exactly what will be applied.
//! Drift is the dry run compared with the live objects, checked on `drift.interval` while
//! the revision stays the same.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use serde_json::Value;

use super::apply::{Action, Applier};
use super::decide::{Next, Observed, correct, decide};
use super::diff::drift_of;
use super::health::Health;
use super::inventory::{ObjectId, OnDeletion, on_deletion, stale};
use super::record::{self, Applied, Planned};
use crate::api::{
    Artifact, ConditionStatus, DriftObject, Kustomization, PlanApprover, PlanSummary, Reconciled, ResourceRef, condition_type as ct, reason,
};
use crate::dispatch::RunnerDispatch;
use crate::reconcile::{Done, Reconcile, ReconcileError, Run};
use crate::store::{ObjectStore, Severity};
use driftless_core::{PlanId, drift_id, sha256_digest};

/// The API kind, as events and object keys spell it.
pub const KIND: &str = crate::api::Kind::Kustomization.as_str();

pub use super::plan::plan_secret_name;

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

type KsRun<'r, 'a, S, D> = &'r mut Run<'a, Kustomization, S, D>;

/// The build being rolled out.
struct Build {
    objects: Vec<Value>,
    artifact: Artifact,
    digest: String,
    plan_id: String,
}

impl Reconcile for Kustomization {
    async fn work<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        artifact: Option<Artifact>,
        forced: bool,
    ) -> Result<Done, ReconcileError> {
        let Some(artifact) = artifact else {
            return run.fail(reason::SOURCE_NOT_READY, "spec.sourceRef names no source").await;
        };
        let applier = match applier(run).await {
            Ok(a) => a,
            Err((why, message)) => return run.fail(why, message).await,
        };
        run.status.common.last_attempted_revision = Some(artifact.revision.clone());
        let super::build::Built { mut objects, secrets } =
            match super::build::build(&run.ctx.store, &run.ctx.artifacts, &run.object, &artifact).await? {
                Ok(b) => b,
                Err((why, message)) => return run.fail(why, message).await,
            };
        // The API server may echo a value back in an error (an invalid Secret, say): every
        // message of this reconcile goes through the scrubber of the build's secrets.
        run.scrub_with(driftless_core::scrub::Scrubber::new(&secrets));
        for o in &mut objects {
            applier.label(o);
        }
        let digest = sha256_digest(serde_json::to_string(&objects).unwrap_or_default().as_bytes());
        let plan_id = PlanId::new(&artifact.revision, &digest, None).to_string();
        let next = decide(&Observed {
            object: &run.object,
            revision: &artifact.revision,
            digest: &digest,
            plan_id: &plan_id,
            forced,
            since_drift_check: since_drift_check(&run.object),
        });
        tracing::debug!(?next, "decided");
        let build = Build { objects, artifact, digest, plan_id };
        match next {
            Next::Idle { after } => Ok(Done::after(after)),
            Next::DriftCheck => check_drift(run, &applier, &build).await,
            Next::Wait { stale } => plan(run, &applier, &build, stale).await,
            Next::Apply { by } => {
                let message = format!("applying revision {}", build.artifact.revision);
                run.set(ct::RECONCILING, ConditionStatus::True, reason::PROGRESSING, &message);
                run.save().await?;
                let plan_id = build.plan_id.clone();
                apply(run, &applier, &build, &plan_id, by, false).await
            }
        }
    }

    /// Deletion: delete what this Kustomization applied as its `deletionPolicy` says
    /// (by default when `prune`), wait for it to be gone with `WaitForTermination`, then let
    /// it go.
    async fn finalize<S: ObjectStore, D: RunnerDispatch>(run: &mut Run<'_, Self, S, D>) -> Result<Option<Duration>, ReconcileError> {
        let spec = &run.object.spec;
        let on_delete = on_deletion(spec.deletion_policy.unwrap_or_default(), spec.prune, spec.suspend);
        let Some(inventory) = run.status.inventory.clone().filter(|i| on_delete != OnDeletion::Keep && !i.entries.is_empty()) else {
            return Ok(None);
        };
        let applier = match applier(run).await {
            Ok(a) => a,
            Err((why, message)) => {
                run.report_failure(why, &format!("cannot prune on deletion, object kept: {message}"));
                return Ok(Some(run.retry()));
            }
        };
        let pruned = match applier.prune(&stale(&inventory.entries, &[])).await {
            Ok(p) => p,
            Err(e) => {
                run.report_failure(reason::PRUNE_FAILED, &format!("cannot prune on deletion, object kept: {e}"));
                return Ok(Some(run.retry()));
            }
        };
        if on_delete == OnDeletion::DeleteAndWait
            && let Err(left) = terminated(&applier, &pruned.deleted, timeout(&run.object)).await
        {
            // As Flux: the wait is bounded, and the Kustomization goes all the same.
            run.event(reason::PRUNE_FAILED, Severity::Error, format!("deletionPolicy WaitForTermination: {left}"), None, None);
        }
        Ok(None)
    }
}

/// The applier of this object, with the rights of its `serviceAccountName` (never the
/// controller's own when one is named).
async fn applier<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Kustomization, S, D>) -> Result<Applier, (&'static str, String)> {
    let account = run.object.spec.service_account_name.as_deref();
    let client = match &run.object.spec.kube_config {
        Some(remote) => {
            let kubeconfig = remote_kubeconfig(run, &remote.secret_ref).await?;
            let source = format!("spec.kubeConfig (Secret {})", remote.secret_ref.name);
            run.ctx.clusters.client_for_kubeconfig(&kubeconfig, &source, &run.namespace, account).await
        }
        None => run.ctx.clusters.client_for(&run.namespace, account).await,
    };
    match client {
        Ok((client, identity)) => Ok(Applier::new(client, identity, &run.namespace, &run.name)),
        Err(e) => {
            tracing::warn!("{}", e.message);
            Err((e.reason, e.message))
        }
    }
}

/// The kubeconfig `spec.kubeConfig.secretRef` names: its key, else `value`, else
/// `value.yaml`, as Flux reads it.
async fn remote_kubeconfig<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, Kustomization, S, D>,
    r: &crate::api::KubeConfigSecretRef,
) -> Result<String, (&'static str, String)> {
    let field = "spec.kubeConfig.secretRef";
    let secret = match run.ctx.store.get::<Secret>(&run.namespace, &r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err((reason::INVALID_SPEC, format!("{field}: Secret {}/{} not found; create it", run.namespace, r.name))),
        Err(e) => return Err((reason::CLUSTER_UNAVAILABLE, format!("{field}: cannot read Secret {}: {e}", r.name))),
    };
    let data = driftless_core::secret::secret_strings(&secret)
        .map_err(|key| (reason::INVALID_SPEC, format!("{field}: Secret {} key {key:?} is not text", r.name)))?;
    let found = match &r.key {
        Some(key) => data.get(key),
        None => data.get("value").or_else(|| data.get("value.yaml")),
    };
    found.cloned().ok_or_else(|| {
        let wanted = r.key.as_deref().map_or_else(|| "'value' (or 'value.yaml')".to_string(), |k| format!("{k:?}"));
        (reason::INVALID_SPEC, format!("{field}: Secret {} has no key {wanted} with a kubeconfig", r.name))
    })
}

fn since_drift_check(object: &Kustomization) -> Option<Duration> {
    let status = object.common_status();
    let at = status.drift.as_ref().and_then(|d| d.last_checked_at.as_deref())?.parse::<jiff::Timestamp>().ok()?;
    Some(Duration::from_secs(jiff::Timestamp::now().duration_since(at).as_secs().max(0) as u64))
}

fn resting<S: ObjectStore, D: RunnerDispatch>(run: &Run<'_, Kustomization, S, D>) -> Done {
    Done::after(run.interval().min(run.object.drift_interval()))
}

/// Plans the build (a server-side dry run), keeps its rendering, and waits for approval.
async fn plan<S: ObjectStore, D: RunnerDispatch>(
    run: KsRun<'_, '_, S, D>,
    applier: &Applier,
    build: &Build,
    stale_approval: Option<String>,
) -> Result<Done, ReconcileError> {
    let dry = match applier.apply_all(&build.objects, run.object.spec.force, true).await {
        Ok(d) => d,
        Err(e) => return run.fail(reason::PLAN_FAILED, format!("dry run: {e}")).await,
    };
    let new_refs: Vec<ResourceRef> = dry.iter().map(|a| a.id.to_ref(&a.version)).collect();
    let old = run.status.inventory.clone().unwrap_or_default().entries;
    let pruned: Vec<ResourceRef> = if run.object.spec.prune { stale(&old, &new_refs) } else { Vec::new() };
    let summary = PlanSummary {
        add: dry.iter().filter(|a| a.action == Action::Created).count() as u32,
        change: dry.iter().filter(|a| matches!(a.action, Action::Configured | Action::Recreated)).count() as u32,
        destroy: pruned.len() as u32,
    };
    let rendering = super::plan::render_plan(&dry, &pruned, summary);
    let stored_in = match super::plan::store_rendering(&run.ctx.store, &run.object, &build.plan_id, rendering).await {
        Ok(place) => place,
        Err(e) => return run.fail(reason::PLAN_FAILED, format!("cannot store the plan rendering: {e}")).await,
    };
    let planned = Planned {
        plan_id: build.plan_id.clone(),
        revision: build.artifact.revision.clone(),
        digest: build.digest.clone(),
        summary,
        stored_in,
        stale: stale_approval,
    };
    let at = now();
    for n in record::planned(&mut run.status, &run.object.metadata, &at, planned) {
        run.notice(n);
    }
    Ok(Done::after(run.interval()))
}

/// Applies the build under `plan_id` (the build's, or a drift correction's), prunes, and
/// waits for health.
async fn apply<S: ObjectStore, D: RunnerDispatch>(
    run: KsRun<'_, '_, S, D>,
    applier: &Applier,
    build: &Build,
    plan_id: &str,
    approved_by: PlanApprover,
    corrects_drift: bool,
) -> Result<Done, ReconcileError> {
    // Validation parsed them already; parsed here before anything is applied all the same.
    let checks = match super::cel::Checks::compile(&run.object.spec.health_check_exprs) {
        Ok(c) => c,
        Err(m) => return run.fail(reason::INVALID_SPEC, m).await,
    };
    if approved_by != PlanApprover::Auto {
        run.spend(&crate::reconcile::approval::of(&run.object));
    }
    let applied = match applier.apply_all(&build.objects, run.object.spec.force, false).await {
        Ok(a) => a,
        Err(e) => return run.fail(reason::APPLY_FAILED, e.to_string()).await,
    };
    let inventory: Vec<ResourceRef> = applied.iter().map(|a| a.id.to_ref(&a.version)).collect();
    let old = run.status.inventory.clone().unwrap_or_default().entries;
    let mut pruned = Vec::new();
    if run.object.spec.prune {
        match applier.prune(&stale(&old, &inventory)).await {
            Ok(done) => {
                for k in done.kept {
                    tracing::info!("not pruned: {k}");
                }
                pruned = done.deleted;
            }
            Err(e) => return run.fail(reason::PRUNE_FAILED, e.to_string()).await,
        }
    }
    let outcome = Applied {
        plan_id: plan_id.to_string(),
        revision: build.artifact.revision.clone(),
        digest: build.digest.clone(),
        approved_by,
        corrects_drift,
        created: applied.iter().filter(|a| a.action == Action::Created).count() as u32,
        configured: applied.iter().filter(|a| a.action == Action::Configured).count() as u32,
        pruned: pruned.len() as u32,
        inventory,
    };
    let at = now();
    for n in record::applied(&mut run.status, &run.object.metadata, &at, outcome) {
        run.notice(n);
    }
    // Objects left alone as their marks ask are not waited for (they may never be healthy).
    let checked: Vec<(ObjectId, String)> =
        applied.iter().filter(|a| !matches!(a.action, Action::Skipped(_))).map(|a| (a.id.clone(), a.version.clone())).collect();
    let targets = health_targets(&run.object, &checked);
    if let Err(m) = health(applier, &targets, &checks, timeout(&run.object)).await {
        run.event(reason::HEALTH_CHECK_FAILED, Severity::Error, m.clone(), Some(plan_id.to_string()), None);
        return run.fail(reason::HEALTH_CHECK_FAILED, m).await;
    }
    let at = now();
    for n in record::healthy(&mut run.status, &run.object.metadata, &at) {
        run.notice(n);
    }
    Ok(resting(run))
}

fn timeout(object: &Kustomization) -> Duration {
    object.spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(300)).min(crate::reconcile::schedule::MAX_DELAY)
}

/// The objects to wait for: every one applied with `wait`, plus the `healthChecks`.
fn health_targets(object: &Kustomization, applied: &[(ObjectId, String)]) -> Vec<(ObjectId, String)> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut targets: Vec<(ObjectId, String)> = if object.spec.wait { applied.to_vec() } else { Vec::new() };
    for h in &object.spec.health_checks {
        let api_version = h.api_version.clone().unwrap_or_else(|| "v1".into());
        let (group, version) =
            api_version.split_once('/').map(|(g, v)| (g.to_string(), v.to_string())).unwrap_or((String::new(), api_version));
        let namespace = h.namespace.clone().unwrap_or_else(|| namespace.clone());
        targets.push((ObjectId { group, kind: h.kind.clone(), namespace, name: h.name.clone() }, version));
    }
    targets
}

/// Waits until `targets` are healthy (by `checks` for the kinds they name), up to `timeout`;
/// the error names the unhealthy ones.
async fn health(applier: &Applier, targets: &[(ObjectId, String)], checks: &super::cel::Checks, timeout: Duration) -> Result<(), String> {
    if targets.is_empty() {
        return Ok(());
    }
    let started = tokio::time::Instant::now();
    loop {
        let mut unhealthy = Vec::new();
        for (id, version) in targets {
            match applier.live(id, version).await {
                Ok(Some(live)) => match super::health::health(&live, checks) {
                    Health::Healthy => {}
                    Health::Progressing(None) => unhealthy.push(id.display()),
                    Health::Progressing(Some(why)) => unhealthy.push(format!("{} ({why})", id.display())),
                    Health::Failed(m) => return Err(format!("health check failed: {} failed: {m}", id.display())),
                },
                Ok(None) => unhealthy.push(format!("{} (not found)", id.display())),
                Err(e) => unhealthy.push(format!("{} ({e})", id.display())),
            }
        }
        if unhealthy.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(format!("health check timed out after {}s: not healthy: {}", timeout.as_secs(), unhealthy.join(", ")));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the objects of `deleted` are gone, up to `timeout`; the error names those left.
async fn terminated(applier: &Applier, deleted: &[ResourceRef], timeout: Duration) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    loop {
        let left = match applier.remaining(deleted).await {
            Ok(left) if left.is_empty() => return Ok(()),
            Ok(left) => left.join(", "),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= timeout {
            return Err(format!("not terminated after {}s: {left}", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Compares the dry run of the build with the live objects; reports drift once per
/// distinct drift, and corrects it when its correction is approved (or `correct` mode).
async fn check_drift<S: ObjectStore, D: RunnerDispatch>(
    run: KsRun<'_, '_, S, D>,
    applier: &Applier,
    build: &Build,
) -> Result<Done, ReconcileError> {
    let rules = run.object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default();
    let dry = match applier.apply_all(&build.objects, false, true).await {
        Ok(d) => d,
        Err(e) => return run.fail(reason::PLAN_FAILED, format!("drift check dry run: {e}")).await,
    };
    let mut found: Vec<DriftObject> = Vec::new();
    for a in dry.iter().filter(|a| !matches!(a.action, Action::Skipped(_))) {
        let name = if a.id.namespace.is_empty() { a.id.name.clone() } else { format!("{}/{}", a.id.namespace, a.id.name) };
        if let Some(d) = drift_of(&a.id.kind, &name, a.live.as_ref(), &a.result, &rules) {
            found.push(d);
        }
    }
    let at = now();
    if found.is_empty() {
        for n in record::drift_checked(&mut run.status, &run.object.metadata, &at, &[], None) {
            run.notice(n);
        }
        return Ok(resting(run));
    }
    let correction = PlanId::new(&build.artifact.revision, &build.plan_id, Some(&drift_id(&found))).to_string();
    for n in record::drift_checked(&mut run.status, &run.object.metadata, &at, &found, Some(&correction)) {
        run.notice(n);
    }
    match correct(&run.object, &correction) {
        Some(by) => apply(run, applier, build, &correction, by, true).await,
        None => Ok(resting(run)),
    }
}
