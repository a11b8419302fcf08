//! `driftless uninstall`: takes away what `install` put on the cluster without touching
//! what driftless manages. Every driftless object is suspended first and the controller's
//! Deployment removed, then the driftless finalizer is taken off every object (so nothing
//! is destroyed, pruned or left hanging), then the rest of the installation goes, in the
//! reverse order of install; the CRDs (and with them the driftless objects, never what
//! they applied) only with `--yes` or a yes at the prompt; the namespace unless
//! `--keep-namespace`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::cluster::{self, ClusterError};
use super::install::{Manifest, Placement, Workload, manifests};
use crate::api::Kind;
use driftless_core::names::FINALIZER;

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub placement: Placement,
    /// Leave the controller's namespace in place.
    #[arg(long)]
    pub keep_namespace: bool,
    /// Delete the CRDs too, without asking: every driftless object goes with them (what they
    /// applied or created stays).
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(args: &UninstallArgs, kubeconfig: Option<&Path>, context: Option<&str>) -> super::Result<()> {
    let placement = args.placement.validated()?;
    let client = cluster::client(kubeconfig, context).await?;
    // The images do not matter for deleting: the objects are found by kind and name.
    let workload = Workload {
        image: "",
        runner_image: "",
        replicas: 0,
        review_url: None,
        allow_cross_namespace_refs: false,
        default_service_account: None,
    };
    let all = manifests(&placement, &workload)?;

    let objects = driftless_objects(&client).await?;
    for (kind, object) in &objects {
        suspend(&client, *kind, object).await?;
    }
    println!("suspended {} driftless objects", objects.len());
    let (workload_last, rest): (Vec<&Manifest>, Vec<&Manifest>) = all.iter().partition(|m| m.resource.kind == "Deployment");
    for m in workload_last {
        delete(&client, m).await?;
    }
    for (kind, object) in &objects {
        release(&client, *kind, object).await?;
    }
    let delete_crds = args.yes || confirm()?;
    for m in rest.into_iter().rev() {
        match m.resource.kind.as_str() {
            "CustomResourceDefinition" if !delete_crds => {}
            "Namespace" if args.keep_namespace => println!("kept {}", m.describe()),
            _ => delete(&client, m).await?,
        }
    }
    if !delete_crds {
        println!("kept the CRDs and the driftless objects (suspended); `driftless uninstall --yes` deletes them too");
    }
    println!("driftless uninstalled; what its objects applied and created is left in place");
    Ok(())
}

/// Every object of every kind driftless reconciles, in every namespace (none for a kind
/// whose CRD is gone).
async fn driftless_objects(client: &Client) -> Result<Vec<(Kind, DynamicObject)>, ClusterError> {
    let mut out = Vec::new();
    for kind in Kind::RECONCILED {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind));
        match api.list(&Default::default()).await {
            Ok(list) => out.extend(list.items.into_iter().map(|o| (kind, o))),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ClusterError::api(format!("listing {}", kind.plural()), e)),
        }
    }
    Ok(out)
}

fn resource(kind: Kind) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: crate::api::GROUP.into(),
        version: crate::api::VERSION.into(),
        api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        kind: kind.as_str().into(),
        plural: kind.plural().into(),
    }
}

fn api_of(client: &Client, kind: Kind, object: &DynamicObject) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &object.namespace().unwrap_or_default(), &resource(kind))
}

fn shown(kind: Kind, object: &DynamicObject) -> String {
    format!("{kind} {}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

async fn suspend(client: &Client, kind: Kind, object: &DynamicObject) -> Result<(), ClusterError> {
    let patch = serde_json::json!({"spec": {"suspend": true}});
    match api_of(client, kind, object).patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::api(format!("suspending {}", shown(kind, object)), e)),
    }
}

/// Takes driftless's finalizer off: with no controller, deleting the object must neither
/// hang nor wait for a destroy or prune.
async fn release(client: &Client, kind: Kind, object: &DynamicObject) -> Result<(), ClusterError> {
    let finalizers: Vec<String> = object.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    if finalizers.len() == object.finalizers().len() {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    match api_of(client, kind, object).patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        // Changed since it was listed (suspend bumped it): take the current one.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let current = api_of(client, kind, object).get(&object.name_any()).await;
            match current {
                Ok(current) => Box::pin(release(client, kind, &current)).await,
                Err(e) => Err(ClusterError::api(format!("reading {}", shown(kind, object)), e)),
            }
        }
        Err(e) => Err(ClusterError::api(format!("releasing {}", shown(kind, object)), e)),
    }
}

async fn delete(client: &Client, m: &Manifest) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> = match &m.object.metadata.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &m.resource),
        None => Api::all_with(client.clone(), &m.resource),
    };
    match api.delete(m.object.metadata.name.as_deref().unwrap_or_default(), &DeleteParams::background()).await {
        Ok(_) => println!("deleted {}", m.describe()),
        Err(kube::Error::Api(s)) if s.code == 404 => println!("already gone: {}", m.describe()),
        Err(e) => return Err(ClusterError::api(format!("deleting {}", m.describe()), e)),
    }
    Ok(())
}

/// Asks on a terminal whether to delete the CRDs; anywhere else the answer is no.
fn confirm() -> Result<bool, ClusterError> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("Delete the CRDs too? Every driftless object goes with them (what they applied stays). [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
