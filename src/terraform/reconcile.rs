//! The Terraform kind's own steps, after the reconcile core's: inputs -> decide -> run ->
//! record -> health checks. What to do is [`decide`]d, what a run's result means is
//! [`record`]ed, both pure; this file only reads inputs, dispatches the run, writes outputs
//! and hands over to the health checks.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use tracing::info;

use super::decide::{Next, Observed, auto_applies, decide};
use super::record::{Facts, record, wait_for_approval};
use super::runspec::{self, Inputs, Request, Runner};
use super::unsaved;
use crate::api::{Artifact, ConditionStatus, Conditions, Terraform, condition_type as ct, reason};
use crate::dispatch::{Operation, Outcome, RunSpec, RunnerDispatch};
use crate::reconcile::approval;
use crate::reconcile::{Done, Reconcile, ReconcileError, Run, source_artifact};
use crate::store::{ObjectStore, Severity};
use driftless_core::contract::UnsavedState;

/// The API kind, as events and object keys spell it.
pub const KIND: &str = crate::api::Kind::Terraform.as_str();

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// How long ago the last drift check was (`None`: never).
fn since_drift_check(status: &crate::api::TerraformStatus) -> Option<Duration> {
    let at = status.common.drift.as_ref().and_then(|d| d.last_checked_at.as_deref())?.parse::<jiff::Timestamp>().ok()?;
    Some(Duration::from_secs(jiff::Timestamp::now().duration_since(at).as_secs().max(0) as u64))
}

/// Resolves the run's inputs; `Err` is the failure to report.
async fn inputs<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, Terraform, S, D>,
    artifact: Artifact,
) -> Result<Result<Inputs, (&'static str, String)>, ReconcileError> {
    Ok(runspec::resolve(&run.ctx.store, &run.ctx.artifacts, &run.object, &run.ctx.backend, artifact).await?)
}

/// How long past the run's own deadline its artifact URL stays valid: the pod's wait for an
/// image and a node (the dispatcher gives it 5 minutes) and some room.
const ARTIFACT_URL_SLACK: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The RunSpec of one run of the reconciled object, run as this controller runs them.
#[allow(clippy::too_many_arguments)]
fn run_spec<S, D>(
    run: &Run<'_, Terraform, S, D>,
    operation: Operation,
    inputs: Inputs,
    revision: &str,
    apply_after_plan: bool,
    plan_id: Option<String>,
    plan_digest: Option<String>,
) -> RunSpec {
    let runner = Runner {
        // Valid while the run may still be waiting for a node, then running.
        artifact_url: run.ctx.artifact_access.grant(
            &inputs.artifact,
            run.ctx.run_timeout + ARTIFACT_URL_SLACK,
            std::time::SystemTime::now(),
        ),
        terraform_path: run.ctx.terraform_path.clone(),
        tofu_path: run.ctx.tofu_path.clone(),
        identity: run.ctx.identity.clone(),
        timeout_seconds: run.ctx.run_timeout.as_secs(),
    };
    let request = Request { operation, revision: revision.to_string(), apply_after_plan, plan_id, plan_digest };
    runspec::run_spec(&run.object, &run.namespace, inputs, runner, request)
}

/// Whether the module keeps its state in a backend of its own, which driftless never writes.
fn own_backend(object: &Terraform, inputs: &Inputs) -> bool {
    inputs.options.backend_disabled || object.spec.backend_config.as_ref().is_some_and(|b| b.custom_configuration.is_some())
}

/// A save-state run of `state`: `Err` says why the backend still does not hold it.
async fn save_state<S: ObjectStore, D: RunnerDispatch>(
    run: &Run<'_, Terraform, S, D>,
    inputs: &Inputs,
    state: UnsavedState,
) -> Result<(), String> {
    let revision = inputs.artifact.revision.clone();
    let mut spec = run_spec(run, Operation::SaveState, inputs.clone(), &revision, false, None, None);
    spec.unsaved_state = Some(state);
    let result = match run.ctx.dispatch.run(&spec).await {
        Ok(r) => r,
        Err(e) => e.into_result(),
    };
    match result.error {
        None => Ok(()),
        Some(e) => Err(e.message),
    }
}

/// Before anything runs: a state kept from an earlier apply goes to the backend first.
/// `Err` is the message of the failure to report (nothing else may run until it is saved).
async fn save_kept<S: ObjectStore, D: RunnerDispatch>(
    run: &mut Run<'_, Terraform, S, D>,
    inputs: &Inputs,
) -> Result<Result<(), String>, ReconcileError> {
    let Some(state) = unsaved::pending(run).await? else { return Ok(Ok(())) };
    let secret = unsaved::secret_name(&run.name);
    if own_backend(&run.object, inputs) {
        return Ok(Err(format!(
            "Secret {secret} keeps the state of an apply that the module's own backend did not take, and driftless does not write \
             that backend: push the state there (`terraform state push`, from the Secret's `{}` key), then delete the Secret; \
             nothing runs until then",
            unsaved::STATE_KEY
        )));
    }
    match save_state(run, inputs, state).await {
        Ok(()) => {
            unsaved::forget(run).await?;
            let message =
                format!("the state of the last apply, kept in Secret {secret} since the backend refused it, is saved to the backend");
            run.event(reason::STATE_SAVED, Severity::Info, message, None, None);
            Ok(Ok(()))
        }
        Err(why) => Ok(Err(format!(
            "the state of the last apply, which the backend refused, is kept in Secret {secret} and not saved yet ({why}); nothing \
             runs until it is: fix the backend, driftless tries again on every reconcile"
        ))),
    }
}

/// After a run whose result carries the state its apply could not save: kept in the Secret
/// first, then saved when the backend takes it now. Says what became of it.
async fn keep_unsaved<S: ObjectStore, D: RunnerDispatch>(
    run: &mut Run<'_, Terraform, S, D>,
    inputs: &Inputs,
    state: UnsavedState,
) -> Result<String, ReconcileError> {
    let secret = unsaved::secret_name(&run.name);
    let kept = unsaved::keep(run, &state).await;
    if let Err(e) = &kept {
        tracing::error!("cannot keep the unsaved state in Secret {secret}: {e}");
    }
    let lost = |e: &crate::store::StoreError| {
        format!("and it could not be kept in Secret {secret} either ({e}), so it is lost: import the resources it recorded")
    };
    if own_backend(&run.object, inputs) {
        return Ok(match &kept {
            Ok(()) => format!(
                "driftless keeps it in Secret {secret}: push it to the module's own backend (`terraform state push`), then delete the Secret"
            ),
            Err(e) => lost(e),
        });
    }
    let note = match (save_state(run, inputs, state).await, &kept) {
        (Ok(()), Ok(())) => {
            unsaved::forget(run).await?;
            "the controller saved it to the backend since: nothing that was applied is lost".to_string()
        }
        (Ok(()), Err(_)) => "the controller saved it to the backend since: nothing that was applied is lost".to_string(),
        (Err(why), Ok(())) => {
            let message = format!("the state of the apply is kept in Secret {secret} until the backend takes it ({why})");
            run.event(reason::STATE_NOT_SAVED, Severity::Error, message, None, None);
            format!("driftless keeps it in Secret {secret} and saves it to the backend before anything else runs ({why})")
        }
        (Err(_), Err(e)) => lost(e),
    };
    Ok(note)
}

impl Reconcile for Terraform {
    async fn work<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        artifact: Option<Artifact>,
        forced: bool,
    ) -> Result<Done, ReconcileError> {
        let Some(artifact) = artifact else {
            return run.fail(reason::SOURCE_NOT_READY, "spec.sourceRef names no source").await;
        };
        let inputs = match inputs(run, artifact).await? {
            Ok(i) => i,
            Err((why, message)) => return run.fail(why, message).await,
        };
        if let Err(message) = save_kept(run, &inputs).await? {
            return run.fail(reason::STATE_NOT_SAVED, message).await;
        }
        let next = decide(&Observed {
            object: &run.object,
            inputs_digest: &inputs.digest,
            forced,
            since_drift_check: since_drift_check(&run.status),
        });
        tracing::debug!(?next, "decided");
        let (operation, apply_after_plan, plan_id, plan_digest) = match next {
            Next::Idle { after } => {
                // Nothing to run; failing (or new, or changed) health checks run again.
                let retry = super::health::check(run, None, forced).await?;
                return Ok(Done::after(retry.map_or(after, |r| r.min(after))));
            }
            Next::Wait { plan_id, stale } => {
                let at = now();
                for n in wait_for_approval(&mut run.status, &run.object.metadata, &at, &plan_id, stale) {
                    run.notice(n);
                }
                return Ok(Done::after(run.interval()));
            }
            Next::Plan { destroy } => {
                let op = if destroy { Operation::DestroyPlan } else { Operation::Plan };
                (op, auto_applies(&run.object, false), None, None)
            }
            Next::DriftCheck => (Operation::DriftCheck, auto_applies(&run.object, true), None, None),
            Next::Apply { plan_id, digest, approved_by } => {
                if let Some(p) = run.status.common.plan.as_mut() {
                    p.approved_by = Some(approved_by);
                }
                run.spend(&approval::of(&run.object));
                (Operation::Apply, false, Some(plan_id), digest)
            }
        };
        let revision = match operation {
            Operation::Apply => {
                run.status.common.plan.as_ref().map(|p| p.source_revision.clone()).unwrap_or_else(|| inputs.artifact.revision.clone())
            }
            _ => inputs.artifact.revision.clone(),
        };
        run.status.common.last_attempted_revision = Some(inputs.artifact.revision.clone());
        let verb = match operation {
            Operation::Apply => format!("applying {}", plan_id.as_deref().unwrap_or_default()),
            Operation::DriftCheck => "checking for drift".into(),
            _ => format!("planning revision {revision}"),
        };
        run.set(ct::RECONCILING, ConditionStatus::True, reason::PROGRESSING, &verb);
        run.save().await?;

        let backend = inputs.backend.clone();
        let digest = inputs.digest.clone();
        let spec = run_spec(run, operation, inputs.clone(), &revision, apply_after_plan, plan_id, plan_digest);
        let mut result = match run.ctx.dispatch.run(&spec).await {
            Ok(r) => r,
            Err(e) => e.into_result(),
        };
        if let Some(log) = result.log.take() {
            super::runlog::write(run, &log).await;
        }
        if let Some(state) = result.unsaved_state.take() {
            let note = keep_unsaved(run, &inputs, state).await?;
            if let Some(e) = result.error.as_mut() {
                e.message = format!("{}; {note}", e.message);
            }
        }
        // A plan without changes has no id of its own; its readable form is named by the
        // id it would have (tofu-controller stores every plan's).
        let readable = result.readable_plan.take().map(|text| {
            let id = result.plan_id.clone().unwrap_or_else(|| driftless_core::ids::PlanId::new(&revision, &digest, None).to_string());
            (id, text)
        });
        run.status.remove_condition(ct::RECONCILING);
        let key = run.key();
        let stored_in = |id: &str| backend.plan_location(&key, id);
        let at = now();
        let facts = Facts { object: &run.object, operation, revision: &revision, inputs: &digest, stored_in: &stored_in, at: &at };
        let applied = result.outcome == Outcome::Applied && result.error.is_none();
        let recorded = record(&mut run.status, &facts, result);
        for n in recorded.notices {
            run.notice(n);
        }
        if !recorded.outputs.is_empty() {
            super::outputs::write(run, &recorded.outputs).await;
        }
        if let Some((id, text)) = readable {
            super::readable_plan::write(run, &id, &text).await;
        }
        let retry = super::health::check(run, applied.then_some(recorded.outputs.as_slice()), forced).await?;
        Ok(Done::after(retry.unwrap_or(recorded.after)))
    }

    /// Deletion: destroy the resources first when asked to; then the outputs Secret goes.
    async fn finalize<S: ObjectStore, D: RunnerDispatch>(run: &mut Run<'_, Self, S, D>) -> Result<Option<Duration>, ReconcileError> {
        if run.object.spec.destroy_resources_on_deletion && run.status.common.last_applied_plan.is_some() {
            let reference = run.object.spec.source_ref.clone();
            let found = source_artifact(&run.ctx.store, &reference, &run.namespace, <Self as crate::api::Reconciled>::SOURCE_KINDS, |a| {
                run.ctx.artifacts.exists(&a.path)
            })
            .await?;
            let artifact = match found.and_then(|a| a.ok_or_else(|| "spec.sourceRef names a source without an artifact".to_string())) {
                Ok(a) => a,
                Err(message) => {
                    run.not_ready(reason::SOURCE_NOT_READY, &format!("cannot destroy on deletion: {message}"));
                    return Ok(Some(run.retry()));
                }
            };
            let mut inputs = match inputs(run, artifact).await? {
                Ok(i) => i,
                Err((why, message)) => {
                    run.not_ready(why, &format!("cannot destroy on deletion: {message}"));
                    return Ok(Some(run.retry()));
                }
            };
            // A destroy against a state without the last apply's resources would leave them.
            if let Err(message) = save_kept(run, &inputs).await? {
                run.not_ready(reason::STATE_NOT_SAVED, &format!("cannot destroy on deletion: {message}"));
                return Ok(Some(run.retry()));
            }
            // Deleting an object that asks for it is the approval.
            inputs.digest = format!("{}+destroy-on-deletion", inputs.digest);
            let revision = inputs.artifact.revision.clone();
            let spec = run_spec(run, Operation::DestroyPlan, inputs, &revision, true, None, None);
            let result = match run.ctx.dispatch.run(&spec).await {
                Ok(r) => r,
                Err(e) => e.into_result(),
            };
            if let Some(e) = result.error {
                let message = format!("destroy on deletion failed, object kept: {}: {}", e.message, e.diagnostics.join("; "));
                run.not_ready(reason::APPLY_FAILED, &message);
                run.event(reason::RECONCILIATION_FAILED, Severity::Error, message, None, None);
                return Ok(Some(run.retry()));
            }
            let message = format!("resources destroyed on deletion ({})", result.summary);
            run.event(reason::DESTROYED, Severity::Info, message, result.plan_id, None);
        }
        if unsaved::pending(run).await?.is_some() {
            let message = format!(
                "Secret {} keeps the state of an apply the backend refused, the only record of what it made; it stays after this Terraform is gone",
                unsaved::secret_name(&run.name)
            );
            run.event(reason::STATE_NOT_SAVED, Severity::Error, message, None, None);
        }
        // Only the outputs Secret this Terraform wrote goes with it; a Secret of that name
        // that is not its own stays.
        if let Some(target) = &run.object.spec.write_outputs_to_secret
            && let Some(existing) = run.ctx.store.get::<Secret>(&run.namespace, &target.name).await?
        {
            if super::outputs::owned_by(&existing, &run.object) {
                run.ctx.store.delete::<Secret>(&run.namespace, &target.name).await?;
            } else {
                tracing::warn!(secret = %target.name, "not deleting a Secret this Terraform did not write");
            }
        }
        if let Err(e) = super::runlog::remove(run).await {
            tracing::warn!("cannot delete the run's log: {e}");
        }
        // The readable plan goes with it too (a cluster collects it by its ownerReference;
        // a local store has no collector).
        for format in [crate::api::StoreReadablePlan::Json, crate::api::StoreReadablePlan::Human] {
            if let Err(e) = super::readable_plan::remove(run, format).await {
                tracing::warn!("cannot delete the readable plan: {e}");
            }
        }
        info!("finalized");
        Ok(None)
    }
}
