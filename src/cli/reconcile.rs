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
use crate::api::{
    Bucket, Condition, ConditionStatus, DriftStatus, GitRepository, Kustomization, Terraform, annotation, condition_type as ct, reason,
};
use crate::source::reconcile::Source;
use crate::store::{ObjectStore, StoredObject};

/// How often a cluster object is read while waiting: the controller's work takes seconds.
const POLL: Duration = Duration::from_millis(500);

/// What `reconcile` reads of a kind it reconciles.
pub(crate) trait Reconciled: StoredObject {
    const KIND: &'static str;
    fn suspended(&self) -> bool;
    /// `status.lastHandledReconcileAt`: the last reconcile request the controller handled.
    fn handled_at(&self) -> Option<&str>;
    fn conditions(&self) -> &[Condition];
    fn drift(&self) -> Option<&DriftStatus> {
        None
    }
}

impl<K: Source> Reconciled for K {
    const KIND: &'static str = <K as Source>::KIND;

    fn suspended(&self) -> bool {
        Source::suspended(self)
    }

    fn handled_at(&self) -> Option<&str> {
        self.source_status().and_then(|s| s.last_handled_reconcile_at.as_deref())
    }

    fn conditions(&self) -> &[Condition] {
        self.source_status().map(|s| s.conditions.as_slice()).unwrap_or_default()
    }
}

impl Reconciled for Terraform {
    const KIND: &'static str = crate::terraform::KIND;

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn handled_at(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.common.last_handled_reconcile_at.as_deref())
    }

    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.common.conditions.as_slice()).unwrap_or_default()
    }

    fn drift(&self) -> Option<&DriftStatus> {
        self.status.as_ref().and_then(|s| s.common.drift.as_ref())
    }
}

impl Reconciled for Kustomization {
    const KIND: &'static str = crate::kustomization::reconcile::KIND;

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn handled_at(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.common.last_handled_reconcile_at.as_deref())
    }

    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.common.conditions.as_slice()).unwrap_or_default()
    }

    fn drift(&self) -> Option<&DriftStatus> {
        self.status.as_ref().and_then(|s| s.common.drift.as_ref())
    }
}

fn condition<'a, K: Reconciled>(object: &'a K, type_: &str) -> Option<&'a Condition> {
    object.conditions().iter().find(|c| c.type_ == type_)
}

fn name_of<K: Reconciled>(object: &K) -> String {
    format!("{}/{}", K::KIND.to_lowercase(), object.meta().name.as_deref().unwrap_or_default())
}

/// Reasons that mean "working as intended, waiting for a person", not failure.
pub(crate) fn is_waiting(reason: &str) -> bool {
    matches!(reason, reason::PLAN_PENDING | reason::SUCCEEDED | reason::DESTROYED | reason::NO_CHANGES)
}

/// Prints the outcome of a reconcile; an object that is not Ready (and not waiting for a
/// person, as PlanPending is) is an error.
pub(crate) fn report<K: Reconciled>(object: &K) -> Result<()> {
    let shown = name_of(object);
    if let Some(drift) = object.drift().filter(|d| d.detected) {
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
    let kind = K::KIND.to_lowercase();
    let name = object.meta().name.clone().unwrap_or_default();
    Err(CliError::Usage(format!("{kind}/{name} is suspended; resume it with `driftless resume {kind} {name}`")))
}

/// Reconciles in this process (local store).
pub async fn here(ctx: &LocalContext, kind: &str, namespace: &str, name: &str, with_source: bool) -> Result<()> {
    match kind {
        "GitRepository" => {
            existing::<GitRepository, _>(&ctx.store, namespace, name).await?;
            crate::source::reconcile::reconcile(ctx, namespace, name, true).await?;
            report(&existing::<GitRepository, _>(&ctx.store, namespace, name).await?)
        }
        "Bucket" => {
            refuse_suspended(&existing::<Bucket, _>(&ctx.store, namespace, name).await?)?;
            crate::source::reconcile::reconcile_bucket(ctx, namespace, name, true).await?;
            report(&existing::<Bucket, _>(&ctx.store, namespace, name).await?)
        }
        "Terraform" => {
            let tf = existing::<Terraform, _>(&ctx.store, namespace, name).await?;
            refuse_suspended(&tf)?;
            if with_source {
                let source = &tf.spec.source_ref;
                let ns = source.namespace.clone().unwrap_or_else(|| namespace.to_string());
                match source.kind.as_str() {
                    "GitRepository" => {
                        eprintln!("► fetching source gitrepository/{}", source.name);
                        crate::source::reconcile::reconcile(ctx, &ns, &source.name, true).await?;
                    }
                    "Bucket" => {
                        eprintln!("► fetching source bucket/{}", source.name);
                        crate::source::reconcile::reconcile_bucket(ctx, &ns, &source.name, true).await?;
                    }
                    _ => {}
                }
            }
            eprintln!("► reconciling terraform/{name}");
            crate::terraform::reconcile(ctx, namespace, name, true).await?;
            report(&existing::<Terraform, _>(&ctx.store, namespace, name).await?)
        }
        "Kustomization" => {
            let ks = existing::<Kustomization, _>(&ctx.store, namespace, name).await?;
            refuse_suspended(&ks)?;
            let client = super::run::kube_client().await?;
            if with_source && ks.spec.source_ref.kind == "GitRepository" {
                let ns = ks.spec.source_ref.namespace.clone().unwrap_or_else(|| namespace.to_string());
                eprintln!("► fetching source gitrepository/{}", ks.spec.source_ref.name);
                crate::source::reconcile::reconcile(ctx, &ns, &ks.spec.source_ref.name, true).await?;
            }
            eprintln!("► reconciling kustomization/{name}");
            crate::kustomization::reconcile(ctx, &client, namespace, name, true).await?;
            report(&existing::<Kustomization, _>(&ctx.store, namespace, name).await?)
        }
        other => Err(CliError::Usage(format!("{other} is not reconciled"))),
    }
}

/// Asks the controller (cluster) and waits for its answer, the source first with
/// `with_source`. The whole command gives up after `timeout`.
pub async fn on_cluster<S: ObjectStore>(
    store: &S,
    kind: &str,
    namespace: &str,
    name: &str,
    with_source: bool,
    timeout: Duration,
) -> Result<()> {
    let deadline = Deadline { at: Instant::now() + timeout, timeout };
    match kind {
        "GitRepository" => report(&request::<GitRepository, _>(store, namespace, name, &deadline).await?),
        "Bucket" => report(&request::<Bucket, _>(store, namespace, name, &deadline).await?),
        "Terraform" => {
            let tf = existing::<Terraform, _>(store, namespace, name).await?;
            refuse_suspended(&tf)?;
            if with_source {
                let source = &tf.spec.source_ref;
                let ns = source.namespace.clone().unwrap_or_else(|| namespace.to_string());
                // As flux: a source that fails stops here, its error is the useful one.
                match source.kind.as_str() {
                    "GitRepository" => report(&request::<GitRepository, _>(store, &ns, &source.name, &deadline).await?)?,
                    "Bucket" => report(&request::<Bucket, _>(store, &ns, &source.name, &deadline).await?)?,
                    _ => {}
                }
            }
            report(&request::<Terraform, _>(store, namespace, name, &deadline).await?)
        }
        "Kustomization" => {
            let ks = existing::<Kustomization, _>(store, namespace, name).await?;
            refuse_suspended(&ks)?;
            if with_source {
                let source = &ks.spec.source_ref;
                let ns = source.namespace.clone().unwrap_or_else(|| namespace.to_string());
                match source.kind.as_str() {
                    "GitRepository" => report(&request::<GitRepository, _>(store, &ns, &source.name, &deadline).await?)?,
                    "Bucket" => report(&request::<Bucket, _>(store, &ns, &source.name, &deadline).await?)?,
                    _ => {}
                }
            }
            report(&request::<Kustomization, _>(store, namespace, name, &deadline).await?)
        }
        other => Err(CliError::Usage(format!("{other} is not reconciled"))),
    }
}

struct Deadline {
    at: Instant,
    timeout: Duration,
}

/// Whether the controller has finished handling the request made at `requested_at`.
fn handled<K: Reconciled>(object: &K, requested_at: &str) -> bool {
    let reconciling = condition(object, ct::RECONCILING).is_some_and(|c| c.status == ConditionStatus::True);
    object.handled_at() == Some(requested_at) && !reconciling
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

    fn terraform(handled_at: Option<&str>, reconciling: Option<ConditionStatus>) -> Terraform {
        let mut tf: Terraform = serde_json::from_value(serde_json::json!({
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
