//! What a reviewer runs: plan show, approve, drift list/show, unlock. The same on a local
//! store and on a cluster: each reads the object's status, and its backend where the plan
//! or the lock lives. Approving only sets `driftless.dev/approve-plan`; whoever reconciles
//! (`driftless run`, `reconcile`, the controller) applies the plan.

use std::io::{BufRead, IsTerminal, Write};

use super::objects::print_table;
use super::target::{ObjectBackend, Target, object_backend};
use super::{CliError, Result};
use crate::api::{Terraform, annotation};
use crate::backend::{PlanStore, StateKey, StateStore};
use crate::dispatch::ObjectKey;
use crate::store::ObjectStore;
use crate::terraform::{KIND, state_name};

async fn terraform<S: ObjectStore>(store: &S, namespace: &str, name: &str) -> Result<Terraform> {
    store.get::<Terraform>(namespace, name).await?.ok_or_else(|| CliError::Usage(format!("Terraform {namespace}/{name} not found")))
}

fn object_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey { kind: KIND.into(), namespace: namespace.into(), name: name.into() }
}

/// The pending (or last) plan of a Kustomization: its readable rendering from the Secret the
/// reconciler wrote beside it.
async fn kustomization_plan_show<S: ObjectStore>(store: &S, ks: crate::api::Kustomization, name: &str, namespace: &str) -> Result<()> {
    let plan = ks
        .status
        .and_then(|s| s.common.plan)
        .ok_or_else(|| CliError::Usage(format!("kustomization/{name} has no plan yet; run `driftless reconcile kustomization {name}`")))?;
    println!("Plan {} ({})", plan.id, if plan.pending { "pending approval" } else { "applied" });
    println!("  revision: {}", plan.source_revision);
    println!("  created:  {}\n", plan.created_at);
    let secret = store.get::<k8s_openapi::api::core::v1::Secret>(namespace, &crate::manifests::reconcile::plan_secret_name(name)).await?;
    let rendering = secret
        .filter(|s| s.metadata.annotations.as_ref().and_then(|a| a.get("driftless.dev/plan-id")) == Some(&plan.id))
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove("rendering"))
        .map(|b| String::from_utf8_lossy(&b.0).to_string());
    match rendering {
        Some(text) => print!("{text}"),
        None => println!("Plan: {}.", plan.summary),
    }
    if plan.pending {
        println!("\nApprove with: driftless approve {name} {}", plan.id);
    }
    Ok(())
}

pub async fn plan_show<T: Target>(target: &T, name: &str, namespace: &str) -> Result<()> {
    if target.store().get::<Terraform>(namespace, name).await?.is_none()
        && let Some(ks) = target.store().get::<crate::api::Kustomization>(namespace, name).await?
    {
        return kustomization_plan_show(target.store(), ks, name, namespace).await;
    }
    let tf = terraform(target.store(), namespace, name).await?;
    let backend = object_backend(target, &tf).await?;
    let plan = tf
        .status
        .and_then(|s| s.common.plan)
        .ok_or_else(|| CliError::Usage(format!("terraform/{name} has no plan yet; run `driftless reconcile terraform {name}`")))?;
    let key = object_key(namespace, name);
    let meta = match &backend {
        ObjectBackend::Local(b) => b.plan_meta(&key, &plan.id).await,
        ObjectBackend::S3(b) => b.plan_meta(&key, &plan.id).await,
        ObjectBackend::Kubernetes(b) => b.plan_meta(&key, &plan.id).await,
    };
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
    if let Some(d) = &plan.digest {
        println!("  digest:   {d}");
    }
    if plan.corrects_drift {
        println!("  corrects drift");
    }
    println!();
    match meta {
        Ok(Some(m)) => print!("{}", m.rendering),
        Ok(None) => println!("(the saved plan is no longer in the backend)\n\nPlan: {}.", plan.summary),
        Err(e) => println!("(the saved plan cannot be read: {e})\n\nPlan: {}.", plan.summary),
    }
    if plan.pending {
        println!("\nApprove with: driftless approve {name} {}", plan.id);
    }
    Ok(())
}

pub async fn approve<T: Target>(target: &T, name: &str, plan_id: Option<&str>, namespace: &str) -> Result<()> {
    if target.store().get::<Terraform>(namespace, name).await?.is_none()
        && let Some(ks) = target.store().get::<crate::api::Kustomization>(namespace, name).await?
    {
        let pending = ks.status.and_then(|s| s.common.plan).filter(|p| p.pending);
        let Some(pending) = pending else {
            return Err(CliError::Usage(format!("kustomization/{name} has no plan waiting for approval")));
        };
        let id = plan_id.unwrap_or(&pending.id).to_string();
        if id != pending.id {
            return Err(CliError::Usage(format!(
                "{id} is not the pending plan of kustomization/{name}; the pending plan is {} ({}); review it with `driftless plan show {name}`",
                pending.id, pending.summary
            )));
        }
        let marks = [(annotation::APPROVE_PLAN, id.clone()), (annotation::ACTED_BY, target.actor().await)];
        target.store().update::<crate::api::Kustomization>(namespace, name, |k| annotate(&mut k.metadata, &marks)).await?;
        println!("approved plan {id} of kustomization/{name} ({}); {}", pending.summary, target.after_approval(name));
        return Ok(());
    }
    let tf = terraform(target.store(), namespace, name).await?;
    let pending = tf.status.and_then(|s| s.common.plan).filter(|p| p.pending);
    let Some(pending) = pending else {
        return Err(CliError::Usage(format!("terraform/{name} has no plan waiting for approval")));
    };
    let id = plan_id.unwrap_or(&pending.id);
    if id != pending.id {
        return Err(CliError::Usage(format!(
            "{id} is not the pending plan of terraform/{name}; the pending plan is {} ({}); review it with `driftless plan show {name}`",
            pending.id, pending.summary
        )));
    }
    let id = id.to_string();
    let marks = [(annotation::APPROVE_PLAN, id.clone()), (annotation::ACTED_BY, target.actor().await)];
    target.store().update::<Terraform>(namespace, name, |t| annotate(&mut t.metadata, &marks)).await?;
    println!("approved plan {id} of terraform/{name} ({}); {}", pending.summary, target.after_approval(name));
    Ok(())
}

/// Sets annotations: how a reviewer's decision reaches whoever reconciles.
pub(crate) fn annotate(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, marks: &[(&str, String)]) {
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    for (key, value) in marks {
        annotations.insert((*key).to_string(), value.clone());
    }
}

/// `drift ack NAME [DRIFT_ID]`: acknowledges the current drift of a Terraform or a
/// Kustomization (the exact id; defaults to the current one). Its alerts stop; a drift that
/// changes gets a new id and alerts again.
pub async fn drift_ack<T: Target>(target: &T, name: &str, drift_id: Option<&str>, namespace: &str) -> Result<()> {
    let store = target.store();
    let (kind, drift) = match store.get::<Terraform>(namespace, name).await? {
        Some(t) => ("terraform", t.status.and_then(|s| s.common.drift)),
        None => match store.get::<crate::api::Kustomization>(namespace, name).await? {
            Some(k) => ("kustomization", k.status.and_then(|s| s.common.drift)),
            None => return Err(CliError::Usage(format!("no Terraform or Kustomization {namespace}/{name}"))),
        },
    };
    let current = drift.filter(|d| d.detected).and_then(|d| d.id.map(|id| (id, d.summary)));
    let Some((current, summary)) = current else {
        return Err(CliError::Usage(format!("{kind}/{name} has no drift to acknowledge")));
    };
    let id = drift_id.unwrap_or(&current).to_string();
    if id != current {
        return Err(CliError::Usage(format!(
            "{id} is not the current drift of {kind}/{name}; the current drift is {current} ({summary}); see `driftless drift show {name}`"
        )));
    }
    let marks = [(annotation::ACKNOWLEDGE_DRIFT, id.clone()), (annotation::ACTED_BY, target.actor().await)];
    match kind {
        "terraform" => store.update::<Terraform>(namespace, name, |t| annotate(&mut t.metadata, &marks)).await.map(|_| ())?,
        _ => store.update::<crate::api::Kustomization>(namespace, name, |k| annotate(&mut k.metadata, &marks)).await.map(|_| ())?,
    }
    println!("acknowledged drift {id} of {kind}/{name} ({summary}); its alerts stop, a changed drift alerts again");
    Ok(())
}

/// The drift state of every Terraform of `namespace` (`None`: of all namespaces).
pub async fn drift_list<S: ObjectStore>(store: &S, namespace: Option<&str>) -> Result<()> {
    let objects = match namespace {
        Some(ns) => store.list_in::<Terraform>(ns).await?,
        None => store.list::<Terraform>().await?,
    };
    let rows: Vec<Vec<String>> = objects
        .into_iter()
        .map(|t| {
            let d = t.status.and_then(|s| s.common.drift).unwrap_or_default();
            let state = if d.detected {
                "Drifted"
            } else if d.last_checked_at.is_some() {
                "Checked"
            } else {
                "Unchecked"
            };
            vec![
                KIND.to_string(),
                t.metadata.namespace.unwrap_or_default(),
                t.metadata.name.unwrap_or_default(),
                state.to_string(),
                d.last_checked_at.unwrap_or_default(),
                d.plan_id.unwrap_or_default(),
                d.summary,
            ]
        })
        .collect();
    print_table(&["KIND", "NAMESPACE", "NAME", "DRIFT", "LAST CHECK", "CORRECTION PLAN", "SUMMARY"], &rows);
    Ok(())
}

pub async fn drift_show<S: ObjectStore>(store: &S, name: &str, namespace: &str) -> Result<()> {
    let tf = terraform(store, namespace, name).await?;
    let d = tf.status.and_then(|s| s.common.drift).unwrap_or_default();
    if !d.detected {
        match d.last_checked_at {
            Some(at) => println!("terraform/{name}: no drift (last checked {at}); {}", d.summary),
            None => println!("terraform/{name}: not checked for drift yet"),
        }
        return Ok(());
    }
    println!("terraform/{name}: drift {} detected {}", d.id.unwrap_or_default(), d.detected_at.unwrap_or_default());
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
    let key = StateKey { object: object_key(namespace, name), state_name: state_name(&tf) };
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
