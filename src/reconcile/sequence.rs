//! The one reconcile sequence, in Flux's order, for every reconciled kind:
//!
//! finalizer (a deleted object is cleaned up, then let go; a live one gets the finalizer)
//! -> suspend -> requested-at (a new `reconcile-requested-at` forces a complete reconcile)
//! -> validate (`Stalled` on an invalid spec, or on a reference the cluster owner refuses)
//! -> acknowledge (a drift acknowledgement set
//! since the last check) -> source (its artifact) -> dependencies (Ready at their
//! generation) -> the kind's own work -> status and requeue.
//!
//! A kind supplies only its work and its cleanup ([`Reconcile`]); every status write, event
//! and failure report goes through [`Run`], so they look the same for every kind.

use std::future::Future;
use std::time::Duration;

use tracing::{info, instrument};

use super::context::Context;
use super::schedule::Requeue;
use super::{ReconcileError, references};
use crate::api::{Artifact, ConditionStatus, Conditions, PlanApprover, Reconciled, StatusModel, annotation, condition_type as ct, reason};
use crate::dispatch::{ObjectKey, RunnerDispatch};
use crate::store::{Event, Notice, ObjectStore, Severity};

/// The log target of the line each reconcile ends with.
pub const RECONCILED: &str = "reconciled";

/// A kind's own steps.
pub trait Reconcile: Reconciled {
    /// The kind's work once the shared steps passed: `artifact` is the source's (kinds with
    /// a `sourceRef`), `forced` says a person asked for a complete reconcile now. Everything
    /// it meets becomes status through `run`; an error is only for a store that failed.
    fn work<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
        artifact: Option<Artifact>,
        forced: bool,
    ) -> impl Future<Output = Result<Done, ReconcileError>> + Send;

    /// Cleanup before a deleted object goes (destroy, prune, artifacts): `None` when it may
    /// go now, `Some(retry)` when it must stay (its status says why).
    fn finalize<S: ObjectStore, D: RunnerDispatch>(
        run: &mut Run<'_, Self, S, D>,
    ) -> impl Future<Output = Result<Option<Duration>, ReconcileError>> + Send {
        let _ = run;
        async { Ok(None) }
    }
}

/// What a kind's work asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// When to come back.
    pub after: Duration,
    /// A new artifact (or output) the objects reading this one should see now.
    pub new_artifact: bool,
}

impl Done {
    pub fn after(after: Duration) -> Self {
        Self { after, new_artifact: false }
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// One reconcile of one object: the object as read, the status being built, and the steps
/// every kind shares to report through it.
pub struct Run<'a, K: Reconciled, S, D> {
    pub ctx: &'a Context<S, D>,
    pub object: K,
    pub status: K::Status,
    pub namespace: String,
    pub name: String,
    /// The status as stored: a save that would change nothing is not written.
    saved: Option<K::Status>,
    /// Secret values this reconcile met (a build's Secrets): no condition or event shows them.
    scrubber: driftless_core::scrub::Scrubber,
    /// An approval annotation an apply attempt spent: removed when this reconcile ends.
    spent_annotation: Option<String>,
}

impl<K: Reconciled, S: ObjectStore, D: RunnerDispatch> Run<'_, K, S, D> {
    pub fn generation(&self) -> Option<i64> {
        self.object.meta().generation
    }

    /// The key state, plans and runs are filed under.
    pub fn key(&self) -> ObjectKey {
        ObjectKey { kind: K::KIND.as_str().into(), namespace: self.namespace.clone(), name: self.name.clone() }
    }

    pub fn interval(&self) -> Duration {
        self.object.interval()
    }

    pub fn retry(&self) -> Duration {
        self.object.retry_interval()
    }

    /// Sets a condition at this generation.
    pub fn set(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: &str) {
        let generation = self.generation();
        let message = self.scrubber.scrub(message);
        self.status.set_condition(type_, status, reason, &message, generation, &now());
    }

    /// Records that an apply attempt uses `approval`: it is spent, whatever the attempt's
    /// outcome, so it never applies another plan (not even one re-made under the same id).
    /// An annotation is removed when the reconcile ends, so approving again is a new write;
    /// an approval in the spec stays spent in `status.spentApproval`.
    pub fn spend(&mut self, approval: &super::approval::Approval) {
        let Some(raw) = approval.raw() else { return };
        if let Some(common) = self.status.common_mut() {
            common.spent_approval = Some(raw.clone());
        }
        if matches!(approval, super::approval::Approval::Plan { by: PlanApprover::Annotation, .. }) {
            self.spent_annotation = Some(raw);
        }
    }

    /// From now on, every condition and event of this reconcile is scrubbed of `secrets`.
    pub fn scrub_with(&mut self, secrets: driftless_core::scrub::Scrubber) {
        self.scrubber = secrets;
    }

    pub fn not_ready(&mut self, reason: &str, message: &str) {
        self.set(ct::READY, ConditionStatus::False, reason, message);
    }

    /// Emits `notice` as an event about this object and keeps it in `status.history` (kinds
    /// that plan), so the review page shows what alerts said; a `PlanApplied` entry names
    /// who approved the plan.
    pub fn notice(&mut self, notice: Notice) {
        let event = Event {
            time: now(),
            kind: K::KIND.as_str().into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason: notice.reason.into(),
            severity: notice.severity,
            message: self.scrubber.scrub(&notice.message),
            revision: self.status.revision().map(str::to_string),
            plan_id: notice.plan_id,
            drift_id: notice.drift_id,
        };
        let meta = self.object.meta().clone();
        if let Some(common) = self.status.common_mut() {
            let by =
                (notice.reason == reason::PLAN_APPLIED).then(|| approver_name(common.plan.as_ref().and_then(|p| p.approved_by), &meta));
            common.record(event.history_entry(by));
        }
        self.ctx.events.emit(&event);
    }

    pub fn event(&mut self, reason: &'static str, severity: Severity, message: String, plan_id: Option<String>, drift_id: Option<String>) {
        self.notice(Notice { reason, severity, message, plan_id, drift_id });
    }

    /// Writes the status (with the generation it describes), unless it is what is stored.
    pub async fn save(&mut self) -> Result<(), ReconcileError> {
        self.status.set_observed_generation(self.generation());
        if self.saved.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let status = self.status.clone();
        self.ctx.store.update::<K>(&self.namespace, &self.name, move |o| *o.status_mut() = Some(status.clone())).await?;
        self.saved = Some(self.status.clone());
        Ok(())
    }

    /// Reports a failure: Ready False with `why`, one `ReconciliationFailed` event per
    /// distinct failure (a retry of the same one stays quiet), no longer Reconciling.
    pub fn report_failure(&mut self, why: &'static str, message: &str) {
        self.status.remove_condition(ct::RECONCILING);
        let message = &self.scrubber.scrub(message);
        let already = self.status.condition(ct::READY).is_some_and(|c| c.reason == why && c.message == *message);
        self.not_ready(why, message);
        if !already {
            self.event(reason::RECONCILIATION_FAILED, Severity::Error, format!("{why}: {message}"), None, None);
        }
    }

    /// Fails this reconcile: reports it, saves, and comes back after the retry interval.
    pub async fn fail(&mut self, why: &'static str, message: impl Into<String>) -> Result<Done, ReconcileError> {
        self.report_failure(why, &message.into());
        self.save().await?;
        Ok(Done::after(self.retry()))
    }

    /// Records a drift acknowledgement asked for since the last check (the annotation names
    /// the current drift id); true when status changed.
    fn acknowledge_drift(&mut self) -> bool {
        let ack = super::drift::AckRequest::from_annotations(self.object.meta().annotations.as_ref());
        let Some(common) = self.status.common_mut() else { return false };
        let Some(n) = super::drift::acknowledge(common.drift.as_mut(), ack.as_ref(), &now()) else { return false };
        self.notice(n);
        true
    }

    /// The requeue after `done`, saving what is not saved yet.
    async fn finish(&mut self, before: &Before, done: Done) -> Result<Requeue, ReconcileError> {
        self.save().await?;
        if let Some(spent) = self.spent_annotation.take() {
            // Only the very approval spent: one a person set meanwhile stays.
            self.ctx
                .store
                .update::<K>(&self.namespace, &self.name, |o| {
                    if let Some(a) = o.meta_mut().annotations.as_mut()
                        && a.get(annotation::APPROVE_PLAN).map(|v| v.trim()) == Some(spent.as_str())
                    {
                        a.remove(annotation::APPROVE_PLAN);
                    }
                })
                .await?;
        }
        let ready = self.status.is_true(ct::READY);
        let failing = !ready && !self.status.is_true(ct::PLAN_PENDING) && !self.object.suspended();
        // One line per reconcile, as Flux's controllers log theirs (`driftless logs`): the
        // Ready condition, scrubbed as every condition is, and when it comes back. Its own
        // target, so a terminal that shows warnings is not also told what the CLI prints.
        let (why, said) = self.status.condition(ct::READY).map(|c| (c.reason.clone(), c.message.clone())).unwrap_or_default();
        let next = done.after.as_secs();
        if failing {
            tracing::error!(target: RECONCILED, reason = %why, "{said}; next try in {next}s");
        } else {
            info!(target: RECONCILED, reason = %why, "{said}; next in {next}s");
        }
        // Dependents look again when this object becomes Ready, when a source has a new
        // artifact, and when a plan was applied: what they read of it (a Terraform's outputs,
        // the objects a Kustomization applies) may have changed while it stayed Ready.
        let applied = ready && self.status.common().and_then(|c| c.last_applied_plan.as_ref()) != before.applied.as_ref();
        Ok(Requeue { after: Some(done.after), wake_dependents: (!before.ready && ready) || applied || done.new_artifact, failing })
    }
}

/// What an object's status said before this reconcile, for what its dependents need to know.
struct Before {
    ready: bool,
    applied: Option<String>,
}

/// Who let a plan through, for the object's history: the user named by
/// `driftless.dev/acted-by` when it was approved by annotation (the CLI and the review page
/// set it), else `spec` or `auto`.
/// The reconcile request an object carries: driftless's annotation or Flux's
/// (`reconcile.fluxcd.io/requestedAt`, which `flux reconcile` and scripts set), whichever is
/// new; when neither is, the one already handled.
fn requested_at(annotations: Option<&std::collections::BTreeMap<String, String>>, handled: Option<&str>) -> Option<String> {
    let values: Vec<&String> =
        [annotation::RECONCILE_REQUESTED_AT, annotation::FLUX_RECONCILE_REQUESTED_AT].iter().filter_map(|k| annotations?.get(*k)).collect();
    values.iter().find(|v| Some(v.as_str()) != handled).or(values.first()).map(|v| v.to_string())
}

pub fn approver_name(approver: Option<PlanApprover>, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    match approver {
        Some(PlanApprover::Annotation) => {
            meta.annotations.as_ref().and_then(|a| a.get(annotation::ACTED_BY)).cloned().unwrap_or_else(|| "annotation".into())
        }
        Some(PlanApprover::Spec) => "spec".into(),
        Some(PlanApprover::Auto) | None => "auto".into(),
    }
}

/// Reconciles the `K` object `namespace/name`. `forced`: a person asked for a complete
/// reconcile now (it also reconciles a suspended object).
#[instrument(skip(ctx), fields(kind = %K::KIND))]
pub async fn reconcile<K: Reconcile, S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    let Some(object) = ctx.store.get::<K>(namespace, name).await? else {
        return Ok(Requeue::GONE);
    };
    let saved = object.status().cloned();
    let status = saved.clone().unwrap_or_default();
    let before = Before { ready: status.is_true(ct::READY), applied: status.common().and_then(|c| c.last_applied_plan.clone()) };
    let scrubber = driftless_core::scrub::Scrubber::default();
    let mut run =
        Run { ctx, object, status, namespace: namespace.to_string(), name: name.to_string(), saved, scrubber, spent_annotation: None };

    // Finalizer.
    if run.object.meta().deletion_timestamp.is_some() {
        return match K::finalize(&mut run).await? {
            None => {
                ctx.store.delete::<K>(namespace, name).await?;
                info!("deleted");
                Ok(Requeue::GONE)
            }
            Some(retry) => {
                run.save().await?;
                Ok(Requeue { after: Some(retry), wake_dependents: false, failing: true })
            }
        };
    }
    ctx.store.ensure_finalizer(&run.object).await?;

    // Suspend.
    if run.object.suspended() && !forced {
        info!("suspended; nothing done");
        return Ok(Requeue { after: Some(run.interval()), wake_dependents: false, failing: false });
    }

    // Requested-at: recorded before validation, so `driftless reconcile` on a cluster hears
    // back about an invalid object too.
    let requested = requested_at(run.object.meta().annotations.as_ref(), run.status.last_handled_reconcile_at());
    let forced = forced || (requested.is_some() && requested.as_deref() != run.status.last_handled_reconcile_at());
    if requested.is_some() {
        run.status.set_last_handled_reconcile_at(requested);
    }

    // Validate.
    if let Err(e) = run.object.validate() {
        let message = e.to_string();
        run.set(ct::STALLED, ConditionStatus::True, reason::INVALID_SPEC, &message);
        run.report_failure(reason::INVALID_SPEC, &message);
        let after = run.interval();
        return run.finish(&before, Done::after(after)).await;
    }
    // Tenancy: what the cluster owner refuses is as final as an invalid spec.
    if let Some(message) = run.object.refused_by(&ctx.tenancy) {
        run.set(ct::STALLED, ConditionStatus::True, reason::ACCESS_DENIED, &message);
        run.report_failure(reason::ACCESS_DENIED, &message);
        let after = run.interval();
        return run.finish(&before, Done::after(after)).await;
    }
    run.status.remove_condition(ct::STALLED);

    // Acknowledge.
    if run.acknowledge_drift() {
        run.save().await?;
    }

    // Source.
    let artifact = match run.object.source_ref().cloned() {
        None => None,
        Some(reference) => {
            match references::source_artifact(&ctx.store, &reference, namespace, K::SOURCE_KINDS, |a| ctx.artifacts.exists(&a.path)).await?
            {
                Ok(artifact) => artifact,
                Err(message) => {
                    let done = run.fail(reason::SOURCE_NOT_READY, message).await?;
                    return run.finish(&before, done).await;
                }
            }
        }
    };

    // Dependencies.
    let dependencies = run.object.depends_on().to_vec();
    if let Some(message) = references::unready_dependency(&ctx.store, namespace, &dependencies, K::KIND).await? {
        let done = run.fail(reason::DEPENDENCY_NOT_READY, message).await?;
        return run.finish(&before, done).await;
    }

    // The kind's work.
    let done = K::work(&mut run, artifact, forced).await?;
    run.finish(&before, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_flux_reconcile_request_is_honoured_like_driftless_own() {
        let flux = annotations(&[(annotation::FLUX_RECONCILE_REQUESTED_AT, "2026-12-02T10:00:00Z")]);
        assert_eq!(requested_at(Some(&flux), None).as_deref(), Some("2026-12-02T10:00:00Z"));
        let both = annotations(&[(annotation::RECONCILE_REQUESTED_AT, "a"), (annotation::FLUX_RECONCILE_REQUESTED_AT, "b")]);
        assert_eq!(requested_at(Some(&both), Some("a")).as_deref(), Some("b"), "the new one of the two");
        assert_eq!(requested_at(Some(&both), Some("b")).as_deref(), Some("a"));
        assert_eq!(requested_at(Some(&annotations(&[(annotation::RECONCILE_REQUESTED_AT, "a")])), Some("a")).as_deref(), Some("a"));
        assert_eq!(requested_at(None, Some("a")), None);
    }
}
