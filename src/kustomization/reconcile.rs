//! One Kustomization reconcile, in Flux's order: deletion -> suspend -> validate -> source
//! -> dependencies -> build -> (approval) -> apply -> prune -> health, reporting through the
//! status model Terraform uses (conditions, `status.plan`, `status.drift`), plus
//! `status.inventory`.
//!
//! The plan of manifests is the server-side dry run of the build; its id comes from the
//! revision and the build's digest, so an approval names exactly what will be applied.
//! Drift is the dry run compared with the live objects, checked on `drift.interval` while
//! the revision stays the same.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;
use tracing::instrument;

use super::apply::{Action, Applier};
use super::diff::drift_of;
use super::inventory::{ObjectId, stale};
use crate::api::{
    Artifact, ConditionStatus, Conditions, DriftMode, DriftObject, Kustomization, KustomizationStatus, PlanApprover, PlanStatus,
    PlanSummary, ResourceInventory, ResourceRef, Validate, annotation, condition_type as ct, reason,
};
use crate::context::{Context, ReconcileError, Requeue};
use crate::dispatch::RunnerDispatch;
use crate::store::{Notice, ObjectStore, Severity};
use crate::terraform::{PlanId, drift_id, secret_strings};

pub const KIND: &str = "Kustomization";

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Who approved which plan: the annotation, `spec.approvePlan`, or auto (the default).
fn approval(object: &Kustomization) -> (Option<String>, PlanApprover) {
    let annotated = object.metadata.annotations.as_ref().and_then(|a| a.get(annotation::APPROVE_PLAN)).filter(|v| !v.trim().is_empty());
    if let Some(id) = annotated {
        return (Some(id.trim().to_string()), PlanApprover::Annotation);
    }
    match object.spec.approve_plan.as_deref().map(str::trim) {
        None | Some("auto") => (None, PlanApprover::Auto),
        Some("") => (Some(String::new()), PlanApprover::Spec),
        Some(id) => (Some(id.to_string()), PlanApprover::Spec),
    }
}

/// Reconciles one Kustomization against the cluster `client` talks to.
#[instrument(skip(ctx, client), fields(kind = KIND))]
pub async fn reconcile<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    client: &kube::Client,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    let Some(object) = ctx.store.get::<Kustomization>(namespace, name).await? else {
        return Ok(Requeue { after: Duration::MAX, became_ready: false, failing: false });
    };
    let mut status = object.status.clone().unwrap_or_default();
    let was_ready = status.is_true(ct::READY);
    let requested = object.metadata.annotations.as_ref().and_then(|a| a.get(annotation::RECONCILE_REQUESTED_AT)).cloned();
    let forced = forced || (requested.is_some() && requested != status.common.last_handled_reconcile_at);
    if requested.is_some() {
        status.common.last_handled_reconcile_at = requested;
    }
    let mut step = Step { ctx, applier: Applier::new(client.clone(), namespace, name), object, status, namespace, name };
    let after = step.run(forced).await?;
    let ready = step.status.is_true(ct::READY);
    let failing = !ready && !step.status.is_true(ct::PLAN_PENDING) && !step.object.spec.suspend;
    Ok(Requeue { after, became_ready: !was_ready && ready, failing })
}

struct Step<'a, S, D> {
    ctx: &'a Context<S, D>,
    applier: Applier,
    object: Kustomization,
    status: KustomizationStatus,
    namespace: &'a str,
    name: &'a str,
}

impl<S: ObjectStore, D: RunnerDispatch> Step<'_, S, D> {
    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        let g = self.object.metadata.generation;
        self.status.set_condition(type_, status, reason, message, g, &now());
    }

    fn not_ready(&mut self, why: &str, message: &str) {
        self.set(ct::READY, ConditionStatus::False, why, message);
    }

    /// Emits an event and keeps it in the object's history.
    fn event(&mut self, reason: &'static str, severity: Severity, message: String, plan_id: Option<String>, drift_id: Option<String>) {
        self.notice(Notice { reason, severity, message, plan_id, drift_id });
    }

    fn notice(&mut self, notice: Notice) {
        self.ctx.announce(KIND, &self.object.metadata, &mut self.status.common, now(), notice);
    }

    /// Folds what a drift check (or an apply, which leaves no drift) found into status and
    /// events; `checked` puts the check in the history.
    fn record_drift(&mut self, found: &[DriftObject], correction: Option<&str>, checked: bool) {
        let at = now();
        let finding = crate::drift::Finding {
            objects: found,
            correction,
            corrected: false,
            resolved_message: "drift resolved: the cluster matches the source again",
        };
        for n in crate::drift::record(&mut self.status.common, &finding, &self.object.metadata, &at, checked) {
            self.notice(n);
        }
    }

    /// Records an acknowledgement set since the last check; true when status changed.
    fn acknowledge_drift(&mut self) -> bool {
        let ack = crate::drift::AckRequest::from_annotations(self.object.metadata.annotations.as_ref());
        let Some(n) = crate::drift::acknowledge(self.status.common.drift.as_mut(), ack.as_ref(), &now()) else { return false };
        self.notice(n);
        true
    }

    async fn save(&mut self) -> Result<(), ReconcileError> {
        self.status.common.observed_generation = self.object.metadata.generation;
        let status = self.status.clone();
        self.ctx.store.update::<Kustomization>(self.namespace, self.name, move |o| o.status = Some(status.clone())).await?;
        Ok(())
    }

    fn interval(&self) -> Duration {
        self.object.spec.interval.as_std()
    }

    fn retry(&self) -> Duration {
        self.object.spec.retry_interval.as_ref().map(|d| d.as_std()).unwrap_or(self.interval())
    }

    fn drift_mode(&self) -> DriftMode {
        self.object.spec.drift.as_ref().and_then(|d| d.mode).unwrap_or(DriftMode::Detect)
    }

    fn drift_interval(&self) -> Duration {
        self.object.spec.drift.as_ref().and_then(|d| d.interval.as_ref()).map(|d| d.as_std()).unwrap_or(self.interval())
    }

    /// Fails the reconcile with a condition and an event; returns when to retry.
    async fn fail(&mut self, why: &str, message: String) -> Result<Duration, ReconcileError> {
        self.status.remove_condition(ct::RECONCILING);
        let already = self.status.condition(ct::READY).is_some_and(|c| c.reason == why && c.message == message);
        self.not_ready(why, &message);
        if !already {
            self.event("ReconciliationFailed", Severity::Error, format!("{why}: {message}"), None, None);
        }
        self.save().await?;
        Ok(self.retry())
    }

    async fn run(&mut self, forced: bool) -> Result<Duration, ReconcileError> {
        if self.object.metadata.deletion_timestamp.is_some() {
            return self.finalize().await;
        }
        if self.object.spec.suspend {
            return Ok(self.interval());
        }
        if let Err(e) = self.object.validate() {
            self.set(ct::STALLED, ConditionStatus::True, reason::INVALID_SPEC, &e.to_string());
            self.not_ready(reason::INVALID_SPEC, &e.to_string());
            self.save().await?;
            return Ok(self.interval());
        }
        self.status.remove_condition(ct::STALLED);
        if self.acknowledge_drift() {
            self.save().await?;
        }
        let artifact = match self.source_artifact().await? {
            Ok(a) => a,
            Err(m) => return self.fail(reason::SOURCE_NOT_READY, m).await,
        };
        if let Some(m) = self.unready_dependency().await? {
            return self.fail(reason::DEPENDENCY_NOT_READY, m).await;
        }
        self.status.common.last_attempted_revision = Some(artifact.revision.clone());
        let objects = match self.build(&artifact).await? {
            Ok(o) => o,
            Err((why, m)) => return self.fail(why, m).await,
        };
        let digest = crate::backend::sha256_digest(serde_json::to_string(&objects).unwrap_or_default().as_bytes());
        let plan_id = PlanId::new(&artifact.revision, &digest, None).to_string();
        let applied = self.status.common.plan.as_ref().is_some_and(|p| p.id == plan_id && !p.pending && p.applied_at.is_some());
        let (approved, approver) = approval(&self.object);

        if applied {
            // Same revision and build: nothing to roll out; check drift when it is due.
            // An approval of the pending correction acts at once, not on the next check.
            let drift = self.status.common.drift.clone().unwrap_or_default();
            let correction_approved = drift.detected && approved.is_some() && drift.plan_id == approved;
            let due = forced || correction_approved || self.drift_due();
            if due && self.drift_mode() != DriftMode::Disabled {
                return self.check_drift(&objects, &artifact, &plan_id).await;
            }
            if self.status.common.observed_generation != self.object.metadata.generation {
                self.save().await?;
            }
            return Ok(self.interval().min(self.drift_interval()));
        }
        let approved_now = match &approved {
            None => true,
            Some(id) => *id == plan_id,
        };
        if !approved_now {
            return self.wait_for_approval(&objects, &artifact, &plan_id, &digest, approved.filter(|a| !a.is_empty())).await;
        }
        self.set(ct::RECONCILING, ConditionStatus::True, reason::PROGRESSING, &format!("applying revision {}", artifact.revision));
        self.save().await?;
        self.apply(&objects, &artifact, &plan_id, &digest, approver, false).await
    }

    fn drift_due(&self) -> bool {
        let last =
            self.status.common.drift.as_ref().and_then(|d| d.last_checked_at.as_deref()).and_then(|t| t.parse::<jiff::Timestamp>().ok());
        match last {
            None => true,
            Some(t) => jiff::Timestamp::now().duration_since(t).as_secs().max(0) as u64 >= self.drift_interval().as_secs(),
        }
    }

    async fn source_artifact(&self) -> Result<Result<Artifact, String>, ReconcileError> {
        let r = &self.object.spec.source_ref;
        let namespace = r.namespace.as_deref().unwrap_or(self.namespace);
        crate::source::reconcile::source_artifact(&self.ctx.store, &r.kind, namespace, &r.name, |a| self.ctx.artifacts.exists(&a.path))
            .await
    }

    async fn unready_dependency(&self) -> Result<Option<String>, ReconcileError> {
        crate::context::unready_dependency(&self.ctx.store, self.namespace, &self.object.spec.depends_on, KIND).await
    }

    /// The variables of `postBuild`: ConfigMaps and Secrets in order, then the spec's own.
    async fn variables(&self) -> Result<Result<BTreeMap<String, String>, String>, ReconcileError> {
        let mut vars = BTreeMap::new();
        let Some(post) = &self.object.spec.post_build else { return Ok(Ok(vars)) };
        for (i, r) in post.substitute_from.iter().enumerate() {
            let data = if r.kind == "Secret" {
                self.ctx.store.get::<Secret>(self.namespace, &r.name).await?.map(|s| {
                    secret_strings(&s).map_err(|k| format!("spec.postBuild.substituteFrom[{i}]: Secret {} key {k:?} is not text", r.name))
                })
            } else {
                self.ctx.store.get::<ConfigMap>(self.namespace, &r.name).await?.map(|c| Ok(c.data.unwrap_or_default()))
            };
            match data {
                Some(Ok(d)) => vars.extend(d),
                Some(Err(m)) => return Ok(Err(m)),
                None if r.optional => {}
                None => {
                    return Ok(Err(format!(
                        "spec.postBuild.substituteFrom[{i}]: {} {}/{} not found; create it or mark it optional",
                        r.kind, self.namespace, r.name
                    )));
                }
            }
        }
        vars.extend(post.substitute.clone());
        Ok(Ok(vars))
    }

    /// Unpacks the artifact and builds it, with the spec's overlay and substitutions.
    async fn build(&self, artifact: &Artifact) -> Result<Result<Vec<Value>, (&'static str, String)>, ReconcileError> {
        let vars = match self.variables().await? {
            Ok(v) => v,
            Err(m) => return Ok(Err((reason::VARIABLES_NOT_FOUND, m))),
        };
        let dir = match tempfile::Builder::new().prefix("driftless-build-").tempdir() {
            Ok(d) => d,
            Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("cannot create a build directory: {e}")))),
        };
        if let Err(e) = self.ctx.artifacts.unpack(&artifact.path, &artifact.digest, dir.path()) {
            return Ok(Err((reason::ARTIFACT_FAILED, format!("source artifact {}: {e}", artifact.path))));
        }
        let spec = self.object.spec.clone();
        let root = dir.path().to_path_buf();
        let joined = tokio::task::spawn_blocking(move || build_with_overlay(&root, &spec)).await;
        let objects = match joined {
            Ok(Ok(o)) => o,
            Ok(Err(m)) => return Ok(Err((reason::BUILD_FAILED, m))),
            Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("build worker failed: {e}")))),
        };
        let objects = match crate::kustomize::substitute(objects, &vars) {
            Ok(o) => o,
            Err(e) => return Ok(Err((reason::BUILD_FAILED, format!("postBuild: {e}")))),
        };
        let mut objects = objects;
        for o in &mut objects {
            self.applier.label(o);
        }
        Ok(Ok(objects))
    }

    async fn wait_for_approval(
        &mut self,
        objects: &[Value],
        artifact: &Artifact,
        plan_id: &str,
        digest: &str,
        stale_approval: Option<String>,
    ) -> Result<Duration, ReconcileError> {
        let dry = match self.applier.apply_all(objects, self.object.spec.force, true).await {
            Ok(d) => d,
            Err(e) => return self.fail(reason::PLAN_FAILED, format!("dry run: {e}")).await,
        };
        let new_refs: Vec<ResourceRef> = dry.iter().map(|a| a.id.to_ref(&a.version)).collect();
        let old = self.status.inventory.clone().unwrap_or_default().entries;
        let summary = PlanSummary {
            add: dry.iter().filter(|a| a.action == Action::Created).count() as u32,
            change: dry.iter().filter(|a| a.action == Action::Configured).count() as u32,
            destroy: if self.object.spec.prune { stale(&old, &new_refs).len() as u32 } else { 0 },
        };
        let previous = self.status.common.plan.as_ref().filter(|p| p.pending).map(|p| p.id.clone());
        let pruned: Vec<ResourceRef> = if self.object.spec.prune { stale(&old, &new_refs) } else { Vec::new() };
        let rendering = render_plan(&dry, &pruned, summary);
        let stored_in = match self.store_rendering(plan_id, rendering).await {
            Ok(place) => place,
            Err(e) => return self.fail(reason::PLAN_FAILED, format!("cannot store the plan rendering: {e}")).await,
        };
        self.status.common.plan = Some(PlanStatus {
            id: plan_id.to_string(),
            created_at: now(),
            source_revision: artifact.revision.clone(),
            digest: Some(digest.to_string()),
            summary,
            pending: true,
            approved_by: None,
            applied_at: None,
            stored_in,
            corrects_drift: false,
            destroy: false,
        });
        let message = match &stale_approval {
            Some(old) => format!(
                "approval of {old} is stale: the pending plan is {plan_id} ({summary}); approve it with `driftless approve {} {plan_id}`",
                self.name
            ),
            None => format!("plan {plan_id} waits for approval ({summary}); approve with `driftless approve {} {plan_id}`", self.name),
        };
        self.set(ct::PLAN_PENDING, ConditionStatus::True, reason::PLAN_PENDING, &message);
        self.not_ready(if stale_approval.is_some() { reason::APPROVAL_STALE } else { reason::PLAN_PENDING }, &message);
        if previous.as_deref() != Some(plan_id) {
            self.event(reason::PLAN_PENDING, Severity::Info, message, Some(plan_id.to_string()), None);
        }
        self.save().await?;
        Ok(self.interval())
    }

    /// Keeps what a reviewer reads (`driftless plan show`) in a Secret beside the object: a
    /// diff of Secrets is itself secret.
    async fn store_rendering(&self, plan_id: &str, rendering: String) -> Result<String, crate::store::StoreError> {
        let name = plan_secret_name(self.name);
        let secret = Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.to_string()),
                annotations: Some(
                    [
                        (annotation::OWNER.to_string(), format!("{KIND}/{}", self.name)),
                        (annotation::PLAN_ID.to_string(), plan_id.to_string()),
                    ]
                    .into(),
                ),
                owner_references: self.object.metadata.uid.clone().map(|uid| {
                    vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "driftless.dev/v1alpha1".into(),
                        kind: KIND.into(),
                        name: self.name.to_string(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            type_: Some(driftless_core::names::secret_type::PLAN.into()),
            data: Some([("rendering".to_string(), k8s_openapi::ByteString(rendering.into_bytes()))].into()),
            ..Default::default()
        };
        self.ctx.store.apply(&secret).await?;
        Ok(format!("secret/{}/{name}", self.namespace))
    }

    async fn apply(
        &mut self,
        objects: &[Value],
        artifact: &Artifact,
        plan_id: &str,
        digest: &str,
        approver: PlanApprover,
        corrects_drift: bool,
    ) -> Result<Duration, ReconcileError> {
        let applied = match self.applier.apply_all(objects, self.object.spec.force, false).await {
            Ok(a) => a,
            Err(e) => return self.fail(reason::APPLY_FAILED, e.to_string()).await,
        };
        let new_refs: Vec<ResourceRef> = applied.iter().map(|a| a.id.to_ref(&a.version)).collect();
        let old = self.status.inventory.clone().unwrap_or_default().entries;
        let mut pruned = Vec::new();
        if self.object.spec.prune {
            match self.applier.prune(&stale(&old, &new_refs)).await {
                Ok((deleted, kept)) => {
                    for k in kept {
                        tracing::info!("not pruned: {k}");
                    }
                    pruned = deleted;
                }
                Err(e) => return self.fail(reason::PRUNE_FAILED, e.to_string()).await,
            }
        }
        let mut inventory = new_refs;
        inventory.sort();
        self.status.inventory = Some(ResourceInventory { entries: inventory });
        let summary = PlanSummary {
            add: applied.iter().filter(|a| a.action == Action::Created).count() as u32,
            change: applied.iter().filter(|a| a.action == Action::Configured).count() as u32,
            destroy: pruned.len() as u32,
        };
        let at = now();
        self.status.common.plan = Some(PlanStatus {
            id: plan_id.to_string(),
            created_at: self
                .status
                .common
                .plan
                .as_ref()
                .filter(|p| p.id == plan_id)
                .map(|p| p.created_at.clone())
                .unwrap_or_else(|| at.clone()),
            source_revision: artifact.revision.clone(),
            digest: Some(digest.to_string()),
            summary,
            pending: false,
            approved_by: Some(approver),
            applied_at: Some(at.clone()),
            stored_in: format!("applied {} objects", objects.len()),
            corrects_drift,
            destroy: false,
        });
        self.status.remove_condition(ct::PLAN_PENDING);
        self.status.common.last_applied_revision = Some(artifact.revision.clone());
        let message = format!("applied revision {} ({summary})", artifact.revision);
        self.set(ct::APPLIED, ConditionStatus::True, reason::PLAN_APPLIED, &message);
        if summary.add + summary.change + summary.destroy > 0 {
            self.event(reason::PLAN_APPLIED, Severity::Info, message.clone(), Some(plan_id.to_string()), None);
        }
        if let Err(m) = self.health(&applied.iter().map(|a| (a.id.clone(), a.version.clone())).collect::<Vec<_>>()).await {
            self.event(reason::HEALTH_CHECK_FAILED, Severity::Error, m.clone(), Some(plan_id.to_string()), None);
            return self.fail(reason::HEALTH_CHECK_FAILED, m).await;
        }
        self.status.remove_condition(ct::RECONCILING);
        self.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
        self.record_drift(&[], None, false);
        self.save().await?;
        Ok(self.interval().min(self.drift_interval()))
    }

    /// Waits until the objects to check are healthy (`wait`: all applied; else
    /// `healthChecks`), up to `timeout`; the error names the unhealthy ones.
    async fn health(&self, applied: &[(ObjectId, String)]) -> Result<(), String> {
        let mut targets: Vec<(ObjectId, String)> = if self.object.spec.wait { applied.to_vec() } else { Vec::new() };
        for h in &self.object.spec.health_checks {
            let api_version = h.api_version.clone().unwrap_or_else(|| "v1".into());
            let (group, version) =
                api_version.split_once('/').map(|(g, v)| (g.to_string(), v.to_string())).unwrap_or((String::new(), api_version));
            let namespace = h.namespace.clone().unwrap_or_else(|| self.namespace.to_string());
            targets.push((ObjectId { group, kind: h.kind.clone(), namespace, name: h.name.clone() }, version));
        }
        if targets.is_empty() {
            return Ok(());
        }
        let timeout = self.object.spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(Duration::from_secs(300));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut unhealthy = Vec::new();
            for (id, version) in &targets {
                match self.applier.live(id, version).await {
                    Ok(Some(live)) => match super::health::health(&live) {
                        Ok(true) => {}
                        Ok(false) => unhealthy.push(id.display()),
                        Err(m) => return Err(format!("health check failed: {} failed: {m}", id.display())),
                    },
                    Ok(None) => unhealthy.push(format!("{} (not found)", id.display())),
                    Err(e) => unhealthy.push(format!("{} ({e})", id.display())),
                }
            }
            if unhealthy.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("health check timed out after {}s: not healthy: {}", timeout.as_secs(), unhealthy.join(", ")));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Compares the dry run of the source with the live objects; reports drift once per
    /// distinct drift, and corrects it in `correct` mode (auto approval).
    async fn check_drift(&mut self, objects: &[Value], artifact: &Artifact, plan_id: &str) -> Result<Duration, ReconcileError> {
        let rules = self.object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default();
        let dry = match self.applier.apply_all(objects, false, true).await {
            Ok(d) => d,
            Err(e) => return self.fail(reason::PLAN_FAILED, format!("drift check dry run: {e}")).await,
        };
        let mut drift: Vec<DriftObject> = Vec::new();
        for a in &dry {
            let name = if a.id.namespace.is_empty() { a.id.name.clone() } else { format!("{}/{}", a.id.namespace, a.id.name) };
            if let Some(d) = drift_of(&a.id.kind, &name, a.live.as_ref(), &a.result, &rules) {
                drift.push(d);
            }
        }
        if drift.is_empty() {
            self.record_drift(&[], None, true);
            self.save().await?;
            return Ok(self.interval().min(self.drift_interval()));
        }
        let correction = PlanId::new(&artifact.revision, plan_id, Some(&drift_id(&drift))).to_string();
        self.record_drift(&drift, Some(&correction), true);
        let (approved, approver) = approval(&self.object);
        let corrects =
            (self.drift_mode() == DriftMode::Correct && approver == PlanApprover::Auto) || approved.as_deref() == Some(correction.as_str());
        if corrects {
            let digest = self.status.common.plan.as_ref().and_then(|p| p.digest.clone()).unwrap_or_default();
            let approver = if approver == PlanApprover::Auto { PlanApprover::Auto } else { approver };
            return self.apply(objects, artifact, &correction, &digest, approver, true).await;
        }
        self.save().await?;
        Ok(self.interval().min(self.drift_interval()))
    }

    /// Deletion: prune what this Kustomization applied (when `prune`), then let it go.
    async fn finalize(&mut self) -> Result<Duration, ReconcileError> {
        if self.object.spec.prune
            && let Some(inventory) = self.status.inventory.clone()
            && let Err(e) = self.applier.prune(&stale(&inventory.entries, &[])).await
        {
            return self.fail(reason::PRUNE_FAILED, format!("cannot prune on deletion, object kept: {e}")).await;
        }
        self.ctx.store.delete::<Kustomization>(self.namespace, self.name).await?;
        Ok(Duration::MAX)
    }
}

/// Builds `spec.path` inside the unpacked artifact at `root`, then applies the spec's own
/// kustomize fields (targetNamespace, namePrefix/Suffix, patches, images, commonMetadata)
/// as an overlay built by the same builder, as Flux does with a generated kustomization.
fn build_with_overlay(root: &Path, spec: &crate::api::KustomizationSpec) -> Result<Vec<Value>, String> {
    let path = spec.path.as_deref().unwrap_or("./").trim_start_matches("./");
    let dir = if path.is_empty() { root.to_path_buf() } else { root.join(path) };
    if !dir.is_dir() {
        return Err(format!("spec.path {:?} is not a directory in the source artifact", spec.path.as_deref().unwrap_or("./")));
    }
    let objects = crate::kustomize::build_in(root, &dir).map_err(|e| e.to_string())?;
    let mut overlay = serde_json::Map::new();
    if let Some(ns) = &spec.target_namespace {
        overlay.insert("namespace".into(), Value::String(ns.clone()));
    }
    if let Some(p) = &spec.name_prefix {
        overlay.insert("namePrefix".into(), Value::String(p.clone()));
    }
    if let Some(s) = &spec.name_suffix {
        overlay.insert("nameSuffix".into(), Value::String(s.clone()));
    }
    if !spec.patches.is_empty() {
        overlay.insert("patches".into(), serde_json::to_value(&spec.patches).unwrap_or_default());
    }
    if !spec.images.is_empty() {
        overlay.insert("images".into(), serde_json::to_value(&spec.images).unwrap_or_default());
    }
    if let Some(m) = &spec.common_metadata {
        if !m.labels.is_empty() {
            overlay.insert("labels".into(), serde_json::json!([{ "pairs": m.labels, "includeSelectors": false }]));
        }
        if !m.annotations.is_empty() {
            overlay.insert("commonAnnotations".into(), serde_json::to_value(&m.annotations).unwrap_or_default());
        }
    }
    if overlay.is_empty() {
        return Ok(objects);
    }
    let overlay_dir = root.join(".driftless-overlay");
    std::fs::create_dir_all(&overlay_dir).map_err(|e| format!("cannot write the overlay: {e}"))?;
    std::fs::write(overlay_dir.join("resources.yaml"), crate::kustomize::to_yaml_stream(&objects))
        .map_err(|e| format!("cannot write the overlay: {e}"))?;
    overlay.insert("resources".into(), serde_json::json!(["resources.yaml"]));
    let text = serde_yaml::to_string(&Value::Object(overlay)).map_err(|e| format!("cannot write the overlay: {e}"))?;
    std::fs::write(overlay_dir.join("kustomization.yaml"), text).map_err(|e| format!("cannot write the overlay: {e}"))?;
    crate::kustomize::build_in(root, &overlay_dir).map_err(|e| format!("spec overlay (targetNamespace, namePrefix, patches, images): {e}"))
}

/// The Secret holding the readable plan of a Kustomization.
pub fn plan_secret_name(kustomization: &str) -> String {
    format!("{kustomization}-plan")
}

/// The readable plan: one line per object (`+` create, `~` change with the changed fields,
/// `-` prune); field values are left out (they may be secret).
pub fn render_plan(dry: &[super::apply::Applied], pruned: &[ResourceRef], summary: PlanSummary) -> String {
    let mut out = String::new();
    for a in dry {
        match a.action {
            Action::Created => out.push_str(&format!("  + {} (create)\n", a.id.display())),
            Action::Configured => {
                out.push_str(&format!("  ~ {} (change)\n", a.id.display()));
                if let Some(live) = &a.live {
                    for field in super::diff::changed_fields(live, &a.result) {
                        out.push_str(&format!("      {field}\n"));
                    }
                }
            }
            Action::Unchanged => {}
        }
    }
    for r in pruned {
        if let Some(id) = ObjectId::parse(r) {
            out.push_str(&format!("  - {} (prune)\n", id.display()));
        }
    }
    out.push_str(&format!("\nPlan: {summary}.\n"));
    out
}
