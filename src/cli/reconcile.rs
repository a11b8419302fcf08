//! `reconcile KIND NAME [--with-source]`: one complete reconcile now, and its outcome.
//!
//! On a local store this process runs the reconcilers. On a cluster the controller does, so
//! the CLI behaves as `flux reconcile`: it sets `driftless.dev/reconcile-requested-at` to
//! the current time, then waits until the object reports that very request handled
//! (`status.lastHandledReconcileAt`) and is no longer `Reconciling`. Both end with the same
//! report of the Ready condition.

use std::time::{Duration, Instant};

use super::cluster::ClusterError;
use super::run::LocalContext;
use super::{CliError, Result};
use crate::api::{Condition, ConditionStatus, Conditions, Kind, Reconciled, StatusModel, annotation, condition_type as ct, reason};
use crate::reconcile::Reconcile;
use crate::store::ObjectStore;

/// How often a cluster object is read while waiting: the controller's work takes seconds.
const POLL: Duration = Duration::from_millis(500);

fn condition<K: Reconciled>(object: &K, type_: &str) -> Option<Condition> {
    object.status().and_then(|s| s.condition(type_)).cloned()
}

fn name_of<K: Reconciled>(object: &K) -> String {
    format!("{}/{}", K::KIND.segment(), object.meta().name.as_deref().unwrap_or_default())
}

/// Reasons that mean "working as intended, waiting for a person", not failure.
pub(crate) fn is_waiting(reason: &str) -> bool {
    matches!(reason, reason::PLAN_PENDING | reason::SUCCEEDED | reason::DESTROYED | reason::NO_CHANGES)
}

/// Prints the outcome of a reconcile; an object that is not Ready (and not waiting for a
/// person, as PlanPending is) is an error.
pub(crate) fn report<K: Reconciled>(object: &K) -> Result<()> {
    let shown = name_of(object);
    if let Some(drift) = object.common_status().drift.filter(|d| d.detected) {
        eprintln!("⚠ drift: {}", drift.summary);
    }
    match condition(object, ct::READY) {
        Some(c) if is_waiting(&c.reason) => {
            println!("✔ {shown}: {}", c.message);
            Ok(())
        }
        Some(c) => Err(CliError::Usage(format!("✗ {shown}: {}: {}", c.reason, c.message))),
        None => Err(CliError::Usage(format!("✗ {shown}: not reconciled"))),
    }
}

async fn existing<K: Reconciled, S: ObjectStore>(store: &S, namespace: &str, name: &str) -> Result<K> {
    store.get::<K>(namespace, name).await?.ok_or_else(|| CliError::Usage(format!("{} {namespace}/{name} not found", K::KIND)))
}

fn refuse_suspended<K: Reconciled>(object: &K) -> Result<()> {
    if !object.suspended() {
        return Ok(());
    }
    let kind = K::KIND.segment();
    let name = object.meta().name.clone().unwrap_or_default();
    Err(CliError::Usage(format!("{kind}/{name} is suspended; resume it with `driftless resume {kind} {name}`")))
}

/// Reconciles in this process (local store), the source first with `with_source`.
pub async fn here(ctx: &LocalContext, kind: Kind, namespace: &str, name: &str, with_source: bool) -> Result<()> {
    crate::with_reconciled_kind!(kind, K => here_typed::<K>(ctx, namespace, name, with_source).await,
        _ => Err(CliError::Usage(format!("{kind} is not reconciled"))))
}

async fn here_typed<K: Reconcile>(ctx: &LocalContext, namespace: &str, name: &str, with_source: bool) -> Result<()> {
    let object = existing::<K, _>(&ctx.store, namespace, name).await?;
    refuse_suspended(&object)?;
    if with_source && let Some((kind, ns, source)) = source_of(&object, namespace) {
        eprintln!("► fetching source {}/{source}", kind.segment());
        crate::reconcile::reconcile(ctx, kind, &ns, &source, true).await?;
    }
    if !K::KIND.is_source() {
        eprintln!("► reconciling {}/{name}", K::KIND.segment());
    }
    crate::reconcile::object::<K, _, _>(ctx, namespace, name, true).await?;
    report(&existing::<K, _>(&ctx.store, namespace, name).await?)
}

/// The source an object reads: its kind, namespace and name.
fn source_of<K: Reconciled>(object: &K, namespace: &str) -> Option<(Kind, String, String)> {
    let source = object.source_ref()?;
    let kind = Kind::from_api(&source.kind).filter(|k| k.is_source())?;
    Some((kind, source.namespace.clone().unwrap_or_else(|| namespace.to_string()), source.name.clone()))
}

/// Asks the controller (cluster) and waits for its answer, the source first with
/// `with_source`. The whole command gives up after `timeout`.
pub async fn on_cluster<S: ObjectStore>(
    store: &S,
    kind: Kind,
    namespace: &str,
    name: &str,
    with_source: bool,
    timeout: Duration,
) -> Result<()> {
    let deadline = Deadline { at: Instant::now() + timeout, timeout };
    crate::with_reconciled_kind!(kind, K => on_cluster_typed::<K, S>(store, namespace, name, with_source, &deadline).await,
        _ => Err(CliError::Usage(format!("{kind} is not reconciled"))))
}

async fn on_cluster_typed<K: Reconciled, S: ObjectStore>(
    store: &S,
    namespace: &str,
    name: &str,
    with_source: bool,
    deadline: &Deadline,
) -> Result<()> {
    let object = existing::<K, _>(store, namespace, name).await?;
    refuse_suspended(&object)?;
    // As flux: a source that fails stops here, its error is the useful one.
    if with_source && let Some((kind, ns, source)) = source_of(&object, namespace) {
        crate::with_reconciled_kind!(kind, Src => report(&request::<Src, _>(store, &ns, &source, deadline).await?)?, _ => {});
    }
    report(&request::<K, _>(store, namespace, name, deadline).await?)
}

struct Deadline {
    at: Instant,
    timeout: Duration,
}

/// Whether the controller has finished handling the request made at `requested_at`.
fn handled<K: Reconciled>(object: &K, requested_at: &str) -> bool {
    let reconciling = condition(object, ct::RECONCILING).is_some_and(|c| c.status == ConditionStatus::True);
    object.status().and_then(|s| s.last_handled_reconcile_at()) == Some(requested_at) && !reconciling
}

/// Requests a reconcile of one object and waits until the controller has handled it.
async fn request<K: Reconciled, S: ObjectStore>(store: &S, namespace: &str, name: &str, deadline: &Deadline) -> Result<K> {
    let object = existing::<K, _>(store, namespace, name).await?;
    refuse_suspended(&object)?;
    let shown = name_of(&object);
    // RFC 3339 with nanoseconds: a new value for every request, as flux's requestedAt.
    let requested_at = jiff::Timestamp::now().to_string();
    eprintln!("► annotating {shown} in namespace {namespace}");
    store
        .update::<K>(namespace, name, |o| {
            o.meta_mut()
                .annotations
                .get_or_insert_with(Default::default)
                .insert(annotation::RECONCILE_REQUESTED_AT.into(), requested_at.clone());
        })
        .await?;
    eprintln!("◎ waiting for {shown} to be reconciled");
    loop {
        let Some(object) = store.get::<K>(namespace, name).await? else {
            return Err(CliError::Usage(format!("{shown} was deleted while waiting for its reconcile")));
        };
        if handled(&object, &requested_at) {
            return Ok(object);
        }
        if Instant::now() >= deadline.at {
            return Err(ClusterError::Timeout(format!(
                "{shown}: the reconcile requested at {requested_at} was not handled within {}; is the controller running? (`driftless check`)",
                humantime::format_duration(deadline.timeout)
            ))
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terraform(handled_at: Option<&str>, reconciling: Option<ConditionStatus>) -> crate::api::Terraform {
        let mut tf: crate::api::Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "default" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "app" }, "path": "./", "interval": "1h" }
        }))
        .unwrap();
        let mut status = crate::api::TerraformStatus::default();
        status.common.last_handled_reconcile_at = handled_at.map(str::to_owned);
        if let Some(s) = reconciling {
            crate::api::Conditions::set_condition(&mut status, ct::RECONCILING, s, reason::PROGRESSING, "", None, "t");
        }
        tf.status = Some(status);
        tf
    }

    #[test]
    fn a_request_is_handled_once_its_time_is_recorded_and_reconciling_is_over() {
        assert!(!handled(&terraform(None, None), "t1"), "nothing handled yet");
        assert!(!handled(&terraform(Some("t0"), None), "t1"), "an older request");
        assert!(!handled(&terraform(Some("t1"), Some(ConditionStatus::True)), "t1"), "still reconciling");
        assert!(handled(&terraform(Some("t1"), Some(ConditionStatus::False)), "t1"));
        assert!(handled(&terraform(Some("t1"), None), "t1"));
    }

    #[test]
    fn plan_pending_is_a_success_and_a_failure_is_an_error_with_its_reason() {
        let mut tf = terraform(Some("t1"), None);
        let status = tf.status.as_mut().unwrap();
        let pending = "plan plan-abc waits for approval";
        crate::api::Conditions::set_condition(status, ct::READY, ConditionStatus::False, reason::PLAN_PENDING, pending, None, "t");
        assert!(report(&tf).is_ok());
        let status = tf.status.as_mut().unwrap();
        crate::api::Conditions::set_condition(status, ct::READY, ConditionStatus::False, reason::PLAN_FAILED, "bad module", None, "t");
        let err = report(&tf).unwrap_err().to_string();
        assert!(err.contains("terraform/app") && err.contains("PlanFailed") && err.contains("bad module"), "{err}");
    }
}
