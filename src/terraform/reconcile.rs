//! One Terraform reconcile, in Flux's order: deletion -> suspend -> validate -> source ->
//! dependencies -> inputs -> decide -> run -> status. The steps are thin; what to do is
//! decided by `decide`, and every outcome lands in the shared status model.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{info, instrument, warn};

use super::decide::{Next, Observed, auto_applies, decide, drift_mode};
use super::inputs::{inputs_digest, resolve_backend, resolve_variables, state_name};
use crate::api::{
    Artifact, ConditionStatus, Conditions, DriftMode, DriftObject, LockStatus, PlanApprover, PlanStatus, Terraform, TerraformStatus,
    Validate, annotation, condition_type as ct, reason,
};
use crate::context::{Context, ReconcileError, Requeue};
use crate::dispatch::{BackendSpec, ObjectKey, Operation, Outcome, RunErrorKind, RunResult, RunSpec, RunnerDispatch};
use crate::store::{Notice, ObjectStore, Severity};
use driftless_core::drift::filter_drift;

pub const KIND: &str = "Terraform";

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn retry_interval(object: &Terraform) -> Duration {
    object.spec.retry_interval.as_ref().map(|d| d.as_std()).unwrap_or(object.spec.interval.as_std())
}

/// Reconciles one Terraform object. `forced`: a user asked for a complete reconcile now.
#[instrument(skip(ctx), fields(kind = KIND))]
pub async fn reconcile<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    let Some(object) = ctx.store.get::<Terraform>(namespace, name).await? else {
        return Ok(Requeue { after: Duration::MAX, became_ready: false, failing: false });
    };
    let was_ready = object.status.as_ref().is_some_and(|s| s.is_true(ct::READY));
    let mut step = Step { ctx, object, status: TerraformStatus::default(), namespace, name, backend: None };
    step.status = step.object.status.clone().unwrap_or_default();
    let requested = step.object.metadata.annotations.as_ref().and_then(|a| a.get(annotation::RECONCILE_REQUESTED_AT)).cloned();
    let forced = forced || (requested.is_some() && requested != step.status.common.last_handled_reconcile_at);
    if requested.is_some() {
        step.status.common.last_handled_reconcile_at = requested;
    }
    let after = step.run(forced).await?;
    let became_ready = !was_ready && step.status.is_true(ct::READY);
    let failing = !step.status.is_true(ct::READY) && !step.status.is_true(ct::PLAN_PENDING) && !step.object.spec.suspend;
    Ok(Requeue { after, became_ready, failing })
}

struct Step<'a, S, D> {
    ctx: &'a Context<S, D>,
    object: Terraform,
    status: TerraformStatus,
    namespace: &'a str,
    name: &'a str,
    /// The backend resolved for this reconcile (the store's default until resolved).
    backend: Option<BackendSpec>,
}

impl<S: ObjectStore, D: RunnerDispatch> Step<'_, S, D> {
    fn object_key(&self) -> ObjectKey {
        ObjectKey { kind: KIND.into(), namespace: self.namespace.into(), name: self.name.into() }
    }

    fn backend(&self) -> &BackendSpec {
        self.backend.as_ref().unwrap_or(&self.ctx.backend)
    }

    /// Resolves `spec.backendConfig` (its Secret); a failure is reported as `BackendFailed`.
    async fn resolve_backend(&mut self) -> Result<Result<(), String>, ReconcileError> {
        match resolve_backend(&self.ctx.store, &self.object, &self.ctx.backend).await {
            Ok(b) => {
                self.backend = Some(b);
                Ok(Ok(()))
            }
            Err(super::InputError::Store(e)) => Err(e.into()),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    fn generation(&self) -> Option<i64> {
        self.object.metadata.generation
    }

    fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        let g = self.generation();
        self.status.set_condition(type_, status, reason, message, g, &now());
    }

    fn not_ready(&mut self, reason: &str, message: &str) {
        self.set(ct::READY, ConditionStatus::False, reason, message);
    }

    /// Emits an event and keeps it in the object's history.
    fn event(&mut self, reason: &'static str, severity: Severity, message: String, plan_id: Option<String>, drift_id: Option<String>) {
        self.notice(Notice { reason, severity, message, plan_id, drift_id });
    }

    fn notice(&mut self, notice: Notice) {
        self.ctx.announce(KIND, &self.object.metadata, &mut self.status.common, now(), notice);
    }

    async fn save(&mut self) -> Result<(), ReconcileError> {
        self.status.common.observed_generation = self.generation();
        let status = self.status.clone();
        self.ctx.store.update::<Terraform>(self.namespace, self.name, move |o| o.status = Some(status.clone())).await?;
        Ok(())
    }

    /// The steps; returns when to come back.
    async fn run(&mut self, forced: bool) -> Result<Duration, ReconcileError> {
        let interval = self.object.spec.interval.as_std();
        let retry = retry_interval(&self.object);
        if self.object.metadata.deletion_timestamp.is_some() {
            return self.finalize().await;
        }
        if self.object.spec.suspend {
            info!("suspended; nothing done");
            return Ok(interval);
        }
        if let Err(e) = self.object.validate() {
            self.set(ct::STALLED, ConditionStatus::True, reason::INVALID_SPEC, &e.to_string());
            self.not_ready(reason::INVALID_SPEC, &e.to_string());
            self.save().await?;
            return Ok(interval);
        }
        self.status.remove_condition(ct::STALLED);
        if self.acknowledge_drift() {
            self.save().await?;
        }

        let artifact = match self.source_artifact().await? {
            Ok(a) => a,
            Err(message) => {
                self.not_ready(reason::SOURCE_NOT_READY, &message);
                self.save().await?;
                return Ok(retry);
            }
        };
        if let Some(message) = self.unready_dependency().await? {
            self.not_ready(reason::DEPENDENCY_NOT_READY, &message);
            self.save().await?;
            return Ok(retry);
        }
        let variables = match resolve_variables(&self.ctx.store, &self.object).await {
            Ok(v) => v,
            Err(e) => {
                self.not_ready(reason::VARIABLES_NOT_FOUND, &e.to_string());
                self.save().await?;
                return Ok(retry);
            }
        };
        if let Err(message) = self.resolve_backend().await? {
            self.not_ready(reason::BACKEND_FAILED, &message);
            self.save().await?;
            return Ok(retry);
        }
        let inputs = inputs_digest(&self.object, &artifact, &variables);
        let since_drift_check = self
            .status
            .common
            .drift
            .as_ref()
            .and_then(|d| d.last_checked_at.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| Duration::from_secs(jiff::Timestamp::now().duration_since(t).as_secs().max(0) as u64));
        let next = decide(&Observed { object: &self.object, inputs_digest: &inputs, forced, since_drift_check });
        tracing::debug!(?next, "decided");
        let (operation, apply_after_plan, plan_id, plan_digest) = match next {
            Next::Idle { after } => {
                if self.status.common.observed_generation != self.generation() {
                    self.save().await?;
                }
                return Ok(after);
            }
            Next::Wait { plan_id, stale } => {
                self.wait_for_approval(&plan_id, stale);
                self.save().await?;
                return Ok(interval);
            }
            Next::Plan { destroy } => {
                let op = if destroy { Operation::DestroyPlan } else { Operation::Plan };
                (op, auto_applies(&self.object, false), None, None)
            }
            Next::DriftCheck => (Operation::DriftCheck, auto_applies(&self.object, true), None, None),
            Next::Apply { plan_id, digest, approved_by } => {
                if let Some(p) = self.status.common.plan.as_mut() {
                    p.approved_by = Some(approved_by);
                }
                (Operation::Apply, false, Some(plan_id), digest)
            }
        };
        let revision = match operation {
            Operation::Apply => {
                self.status.common.plan.as_ref().map(|p| p.source_revision.clone()).unwrap_or_else(|| artifact.revision.clone())
            }
            _ => artifact.revision.clone(),
        };
        self.status.common.last_attempted_revision = Some(artifact.revision.clone());
        let verb = match operation {
            Operation::Apply => format!("applying {}", plan_id.as_deref().unwrap_or_default()),
            Operation::DriftCheck => "checking for drift".into(),
            _ => format!("planning revision {revision}"),
        };
        self.set(ct::RECONCILING, ConditionStatus::True, reason::PROGRESSING, &verb);
        self.save().await?;

        let spec = self.run_spec(operation, &artifact, &revision, variables, &inputs, apply_after_plan, plan_id, plan_digest);
        let result = match self.ctx.dispatch.run(&spec).await {
            Ok(r) => r,
            Err(e) => e.into_result(),
        };
        self.status.remove_condition(ct::RECONCILING);
        let after = self.record(operation, &revision, &inputs, result).await?;
        self.save().await?;
        Ok(after)
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

    #[allow(clippy::too_many_arguments)]
    fn run_spec(
        &self,
        operation: Operation,
        artifact: &Artifact,
        revision: &str,
        variables: Vec<crate::dispatch::RunVariable>,
        inputs: &str,
        apply_after_plan: bool,
        plan_id: Option<String>,
        plan_digest: Option<String>,
    ) -> RunSpec {
        RunSpec {
            operation,
            object: self.object_key(),
            artifact_url: artifact.url.clone(),
            artifact_digest: artifact.digest.clone(),
            source_revision: revision.to_string(),
            path: self.object.spec.path.clone(),
            workspace: self.object.spec.workspace.clone(),
            state_name: state_name(&self.object),
            variables,
            inputs_digest: inputs.to_string(),
            backend: self.backend().clone(),
            custom_backend: self.object.spec.backend_config.as_ref().and_then(|b| b.custom_configuration.clone()),
            plan_id,
            plan_digest,
            apply_after_plan,
            approved_plan: self.standing_approval(),
            drift_ignore: self.object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default(),
            // Rendering costs a `show -json`: only where a reviewer will read it.
            render_plan: !apply_after_plan,
            terraform_path: self.ctx.terraform_path.clone(),
            lock_holder: self.ctx.identity.clone(),
            timeout_seconds: self.ctx.run_timeout.as_secs(),
        }
    }

    /// An approval by id that is not yet spent: a fresh plan with that id may be applied
    /// in the run that makes it (a re-plan of the same inputs keeps its approval).
    fn standing_approval(&self) -> Option<String> {
        crate::terraform::approval(&self.object)
            .filter(|(id, by)| *by != PlanApprover::Auto && self.status.common.last_applied_plan.as_deref() != Some(id.as_str()))
            .map(|(id, _)| id)
    }

    fn wait_for_approval(&mut self, plan_id: &str, stale: Option<String>) {
        let summary = self.status.common.plan.as_ref().map(|p| p.summary.to_string()).unwrap_or_default();
        self.set(ct::PLAN_PENDING, ConditionStatus::True, reason::PLAN_PENDING, &format!("plan {plan_id} waits for approval ({summary})"));
        match stale {
            Some(old) => {
                let message = format!(
                    "approval of {old} is stale: the pending plan is {plan_id} ({summary}); review it with `driftless plan show {}` and approve {plan_id}",
                    self.name
                );
                let already = self.status.condition(ct::READY).is_some_and(|c| c.reason == reason::APPROVAL_STALE && c.message == message);
                self.not_ready(reason::APPROVAL_STALE, &message);
                if !already {
                    self.event(reason::APPROVAL_STALE, Severity::Error, message, Some(plan_id.to_string()), None);
                }
            }
            None => {
                let message =
                    format!("plan {plan_id} waits for approval ({summary}); approve with `driftless approve {} {plan_id}`", self.name);
                self.not_ready(reason::PLAN_PENDING, &message);
            }
        }
    }

    /// Folds a run's result into status and events; returns when to come back.
    async fn record(&mut self, op: Operation, revision: &str, inputs: &str, result: RunResult) -> Result<Duration, ReconcileError> {
        let interval = self.object.spec.interval.as_std();
        let at = now();
        if let Some(error) = &result.error {
            let why = match error.kind {
                RunErrorKind::Artifact => reason::ARTIFACT_FAILED,
                RunErrorKind::InvalidModule => reason::INVALID_MODULE,
                RunErrorKind::VariablesNotFound => reason::VARIABLES_NOT_FOUND,
                RunErrorKind::StateLocked => reason::STATE_LOCKED,
                RunErrorKind::PlanIntegrity => reason::PLAN_INTEGRITY,
                RunErrorKind::Backend => reason::BACKEND_FAILED,
                RunErrorKind::Apply => reason::APPLY_FAILED,
                RunErrorKind::Timeout | RunErrorKind::Internal => reason::RUNNER_FAILED,
                RunErrorKind::RunnerOomKilled => reason::RUNNER_OOM_KILLED,
                RunErrorKind::RunnerEvicted => reason::RUNNER_EVICTED,
                RunErrorKind::RunnerImagePull => reason::RUNNER_IMAGE_PULL_FAILED,
                RunErrorKind::RunnerDeadline => reason::RUNNER_DEADLINE_EXCEEDED,
                RunErrorKind::RunnerLost => reason::RUNNER_LOST,
                RunErrorKind::Init | RunErrorKind::Plan | RunErrorKind::Terraform if op == Operation::Apply => reason::APPLY_FAILED,
                RunErrorKind::Init | RunErrorKind::Plan | RunErrorKind::Terraform => reason::PLAN_FAILED,
            };
            let mut message = error.message.clone();
            if !error.diagnostics.is_empty() {
                message.push_str(": ");
                message.push_str(&error.diagnostics.iter().take(3).cloned().collect::<Vec<_>>().join("; "));
            }
            match &error.lock {
                Some(lock) => {
                    self.status.lock =
                        Some(LockStatus { holder: lock.who.clone(), since: lock.created.clone(), operation: Some(lock.operation.clone()) });
                    self.set(ct::STATE_LOCKED, ConditionStatus::True, reason::STATE_LOCKED, &message);
                }
                None => {
                    self.status.lock = None;
                    self.status.remove_condition(ct::STATE_LOCKED);
                }
            }
            if op == Operation::Apply || error.kind == RunErrorKind::PlanIntegrity {
                // The saved plan cannot be trusted any more (partly applied or corrupt): the
                // next reconcile plans afresh; the state keeps whatever was applied.
                self.status.last_inputs_digest = None;
                if let Some(p) = self.status.common.plan.as_mut() {
                    p.pending = false;
                }
                self.status.remove_condition(ct::PLAN_PENDING);
            }
            self.not_ready(why, &message);
            self.event("ReconciliationFailed", Severity::Error, format!("{why}: {message}"), result.plan_id.clone(), None);
            warn!(reason = why, "{message}");
            return Ok(retry_interval(&self.object));
        }
        self.status.lock = None;
        self.status.remove_condition(ct::STATE_LOCKED);

        // Drift: what terraform found changed outside, minus what the user ignores. A plan
        // with changes but no readable drift (providers that read nothing back) counts as
        // drift when the inputs did not change.
        let rules = self.object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default();
        let mut drift = filter_drift(result.drift.clone(), &rules);
        let corrects_drift = op == Operation::DriftCheck;
        if corrects_drift && result.drift.is_empty() && result.outcome != Outcome::NoChanges {
            drift = result
                .resources
                .iter()
                .filter(|r| r.action != "no-op" && r.action != "read")
                .map(|r| DriftObject {
                    kind: r.address.split('.').rev().nth(1).unwrap_or_default().to_string(),
                    name: r.address.clone(),
                    action: r.action.clone(),
                    fields: vec![],
                })
                .collect();
        }
        let only_ignored_drift = corrects_drift && drift.is_empty();
        self.record_drift(&drift, result.plan_id.as_deref(), &at, result.outcome == Outcome::Applied, corrects_drift);

        match result.outcome {
            Outcome::NoChanges => self.no_changes(revision, inputs, op),
            Outcome::Planned if only_ignored_drift => self.no_changes(revision, inputs, op),
            Outcome::Planned => {
                let id = result.plan_id.clone().unwrap_or_default();
                let previous = self.status.common.plan.as_ref().filter(|p| p.pending).map(|p| p.id.clone());
                self.status.common.plan = Some(PlanStatus {
                    id: id.clone(),
                    created_at: at.clone(),
                    source_revision: revision.to_string(),
                    digest: result.plan_digest.clone(),
                    summary: result.summary,
                    pending: true,
                    approved_by: None,
                    applied_at: None,
                    stored_in: self.backend().plan_location(&self.object_key(), &id),
                    corrects_drift: !drift.is_empty(),
                    destroy: op == Operation::DestroyPlan,
                });
                self.status.last_inputs_digest = Some(inputs.to_string());
                let stale = crate::terraform::approval(&self.object)
                    .filter(|(a, by)| {
                        *by != PlanApprover::Auto && a != &id && self.status.common.last_applied_plan.as_deref() != Some(a.as_str())
                    })
                    .map(|(a, _)| a);
                self.wait_for_approval(&id, stale);
                if previous.as_deref() != Some(id.as_str()) {
                    self.event(
                        reason::PLAN_PENDING,
                        Severity::Info,
                        format!("plan {id} waits for approval: {} at {revision}", result.summary),
                        Some(id.clone()),
                        None,
                    );
                }
            }
            Outcome::Applied => {
                let id = result.plan_id.clone().unwrap_or_default();
                let approved_by = match op {
                    Operation::Apply => self.status.common.plan.as_ref().and_then(|p| p.approved_by),
                    _ => crate::terraform::approval(&self.object).map(|(_, by)| by),
                };
                let summary = if op == Operation::Apply {
                    self.status.common.plan.as_ref().map(|p| p.summary).unwrap_or_default()
                } else {
                    result.summary
                };
                let destroy = op == Operation::DestroyPlan || self.status.common.plan.as_ref().is_some_and(|p| p.destroy && p.id == id);
                self.status.common.plan = Some(PlanStatus {
                    id: id.clone(),
                    created_at: self
                        .status
                        .common
                        .plan
                        .as_ref()
                        .filter(|p| p.id == id)
                        .map(|p| p.created_at.clone())
                        .unwrap_or_else(|| at.clone()),
                    source_revision: revision.to_string(),
                    digest: result.plan_digest.clone(),
                    summary,
                    pending: false,
                    approved_by,
                    applied_at: Some(at.clone()),
                    stored_in: self.backend().plan_location(&self.object_key(), &id),
                    corrects_drift: corrects_drift || self.status.common.plan.as_ref().is_some_and(|p| p.corrects_drift && p.id == id),
                    destroy,
                });
                if op != Operation::Apply {
                    self.status.last_inputs_digest = Some(inputs.to_string());
                }
                self.status.common.last_applied_plan = Some(id.clone());
                self.status.common.last_applied_revision = Some(revision.to_string());
                self.status.remove_condition(ct::PLAN_PENDING);
                self.write_outputs(&result).await?;
                let message = if destroy {
                    format!("destroyed: applied destroy plan {id} ({summary})")
                } else {
                    format!("applied plan {id} ({summary}) at {revision}")
                };
                self.set(ct::APPLIED, ConditionStatus::True, reason::PLAN_APPLIED, &message);
                let ready_reason = if destroy { reason::DESTROYED } else { reason::SUCCEEDED };
                self.set(ct::READY, ConditionStatus::True, ready_reason, &message);
                self.event(reason::PLAN_APPLIED, Severity::Info, message, Some(id), None);
                if let Some(d) = self.status.common.drift.as_mut() {
                    d.last_checked_at = Some(at.clone());
                }
            }
            Outcome::Failed => {}
        }
        Ok(interval.min(if drift_mode(&self.object) == DriftMode::Disabled { interval } else { super::drift_interval(&self.object) }))
    }

    fn no_changes(&mut self, revision: &str, inputs: &str, op: Operation) {
        self.status.last_inputs_digest = Some(inputs.to_string());
        self.status.common.last_applied_revision = Some(revision.to_string());
        if let Some(p) = self.status.common.plan.as_mut() {
            p.pending = false;
        }
        self.status.remove_condition(ct::PLAN_PENDING);
        let message = match op {
            Operation::DriftCheck => format!("no drift; infrastructure matches revision {revision}"),
            _ => format!("no changes at revision {revision}"),
        };
        self.set(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message);
    }

    /// Sets `status.drift`; events fire once per distinct drift and once when it clears.
    /// `checked`: this run was a drift check (it goes into the history; drift a plan of a new
    /// revision happens to see does not).
    fn record_drift(&mut self, drift: &[DriftObject], plan_id: Option<&str>, at: &str, corrected: bool, checked: bool) {
        let finding = crate::drift::Finding {
            objects: drift,
            correction: plan_id,
            corrected,
            resolved_message: "drift resolved: infrastructure matches the source again",
        };
        for n in crate::drift::record(&mut self.status.common, &finding, &self.object.metadata, at, checked) {
            self.notice(n);
        }
    }

    /// Records an acknowledgement set since the last check (the annotation names the current
    /// drift id); true when status changed.
    fn acknowledge_drift(&mut self) -> bool {
        let ack = crate::drift::AckRequest::from_annotations(self.object.metadata.annotations.as_ref());
        let Some(n) = crate::drift::acknowledge(self.status.common.drift.as_mut(), ack.as_ref(), &now()) else { return false };
        self.notice(n);
        true
    }

    async fn write_outputs(&mut self, result: &RunResult) -> Result<(), ReconcileError> {
        if result.outputs.is_empty() {
            return Ok(());
        }
        self.status.available_outputs = result.outputs.iter().map(|o| o.name.clone()).collect();
        let Some(target) = self.object.spec.write_outputs_to_secret.clone() else { return Ok(()) };
        let wanted: Vec<(String, String)> = if target.outputs.is_empty() {
            result.outputs.iter().map(|o| (o.name.clone(), o.name.clone())).collect()
        } else {
            target
                .outputs
                .iter()
                .map(|o| match o.split_once(':') {
                    Some((name, key)) => (name.to_string(), key.to_string()),
                    None => (o.clone(), o.clone()),
                })
                .collect()
        };
        let mut data = std::collections::BTreeMap::new();
        let mut missing = Vec::new();
        for (name, key) in wanted {
            match result.outputs.iter().find(|o| o.name == name) {
                Some(o) => {
                    let text = match &o.value {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    data.insert(key, ByteString(text.into_bytes()));
                }
                None => missing.push(name),
            }
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(target.name.clone()),
                namespace: Some(self.namespace.to_string()),
                labels: Some(target.labels.clone()),
                annotations: Some(
                    target
                        .annotations
                        .clone()
                        .into_iter()
                        .chain([(annotation::OWNER.to_string(), format!("{KIND}/{}", self.name))])
                        .collect(),
                ),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        };
        match self.ctx.store.apply(&secret).await {
            Ok(_) if missing.is_empty() => {
                self.set(
                    ct::OUTPUTS_WRITTEN,
                    ConditionStatus::True,
                    reason::SUCCEEDED,
                    &format!("outputs written to Secret {}", target.name),
                );
            }
            Ok(_) => {
                let m = format!("outputs {} named in spec.writeOutputsToSecret.outputs do not exist", missing.join(", "));
                self.set(ct::OUTPUTS_WRITTEN, ConditionStatus::False, reason::OUTPUTS_WRITE_FAILED, &m);
            }
            Err(e) => {
                self.set(
                    ct::OUTPUTS_WRITTEN,
                    ConditionStatus::False,
                    reason::OUTPUTS_WRITE_FAILED,
                    &format!("cannot write Secret {}: {e}", target.name),
                );
            }
        }
        Ok(())
    }

    /// Deletion: destroy the resources first when asked to, then let the object go.
    async fn finalize(&mut self) -> Result<Duration, ReconcileError> {
        if self.object.spec.destroy_resources_on_deletion && self.status.common.last_applied_plan.is_some() {
            let artifact = match self.source_artifact().await? {
                Ok(a) => a,
                Err(message) => {
                    self.not_ready(reason::SOURCE_NOT_READY, &format!("cannot destroy on deletion: {message}"));
                    self.save().await?;
                    return Ok(retry_interval(&self.object));
                }
            };
            let variables = match resolve_variables(&self.ctx.store, &self.object).await {
                Ok(v) => v,
                Err(e) => {
                    self.not_ready(reason::VARIABLES_NOT_FOUND, &format!("cannot destroy on deletion: {e}"));
                    self.save().await?;
                    return Ok(retry_interval(&self.object));
                }
            };
            if let Err(message) = self.resolve_backend().await? {
                self.not_ready(reason::BACKEND_FAILED, &format!("cannot destroy on deletion: {message}"));
                self.save().await?;
                return Ok(retry_interval(&self.object));
            }
            let inputs = inputs_digest(&self.object, &artifact, &variables);
            // Deleting an object that asks for it is the approval.
            let inputs = format!("{inputs}+destroy-on-deletion");
            let spec = self.run_spec(Operation::DestroyPlan, &artifact, &artifact.revision, variables, &inputs, true, None, None);
            let result = match self.ctx.dispatch.run(&spec).await {
                Ok(r) => r,
                Err(e) => e.into_result(),
            };
            if let Some(e) = result.error {
                let message = format!("destroy on deletion failed, object kept: {}: {}", e.message, e.diagnostics.join("; "));
                self.not_ready(reason::APPLY_FAILED, &message);
                self.event("ReconciliationFailed", Severity::Error, message, None, None);
                self.save().await?;
                return Ok(retry_interval(&self.object));
            }
            self.event(
                reason::DESTROYED,
                Severity::Info,
                format!("resources destroyed on deletion ({})", result.summary),
                result.plan_id,
                None,
            );
        }
        if let Some(target) = &self.object.spec.write_outputs_to_secret {
            self.ctx.store.delete::<Secret>(self.namespace, &target.name).await?;
        }
        self.ctx.store.delete::<Terraform>(self.namespace, self.name).await?;
        info!("deleted");
        Ok(Duration::MAX)
    }
}
