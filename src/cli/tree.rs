//! `tree kustomization NAME`: what a Kustomization applied (its inventory), as a tree,
//! nested through the driftless objects it applied: a Kustomization's own inventory, a
//! Terraform's outputs Secret. Read from the store only (status), so it works the same on a
//! local store and on a cluster, and costs the API one read per driftless object.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use super::{CliError, CliKind, Result, kind_of};
use crate::api::{Conditions, Kind, Kustomization, Reconciled, Terraform, condition_type as ct};
use crate::kustomization::inventory::ObjectId;
use crate::store::ObjectStore;

/// One line of the tree and what hangs below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub label: String,
    pub children: Vec<Node>,
}

impl Node {
    fn leaf(label: String) -> Node {
        Node { label, children: Vec::new() }
    }
}

/// The tree as lines, with box-drawing branches as `flux tree` draws them.
pub fn render(root: &Node) -> String {
    fn below(node: &Node, prefix: &str, out: &mut String) {
        for (i, child) in node.children.iter().enumerate() {
            let last = i + 1 == node.children.len();
            out.push_str(&format!("{prefix}{}{}\n", if last { "└── " } else { "├── " }, child.label));
            below(child, &format!("{prefix}{}", if last { "    " } else { "│   " }), out);
        }
    }
    let mut out = format!("{}\n", root.label);
    below(root, "", &mut out);
    out
}

/// `Kind/namespace/name`, or `Kind/name` for a cluster-scoped object.
fn label(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() { format!("{kind}/{name}") } else { format!("{kind}/{namespace}/{name}") }
}

/// What a driftless object in the tree says of itself: Ready or why not, suspended.
fn state<K: Reconciled>(object: &K) -> String {
    let ready = match object.status().and_then(|s| s.condition(ct::READY)) {
        Some(c) if c.status == crate::api::ConditionStatus::True => "Ready".to_string(),
        Some(c) => format!("not ready: {}", c.reason),
        None => "not reconciled yet".to_string(),
    };
    if object.suspended() { format!("{ready}, suspended") } else { ready }
}

/// What a driftless object applied or wrote that the tree shows below it.
pub trait Owner: Reconciled {
    /// The objects below it: (kind, group, namespace, name).
    fn owned(&self) -> Vec<ObjectId> {
        Vec::new()
    }
}

impl Owner for Kustomization {
    fn owned(&self) -> Vec<ObjectId> {
        let entries = self.status.as_ref().and_then(|s| s.inventory.as_ref()).map(|i| i.entries.as_slice()).unwrap_or_default();
        let mut ids: Vec<ObjectId> = entries.iter().filter_map(ObjectId::parse).collect();
        // As flux tree: by kind, then namespace and name, so a listing reads the same each time.
        ids.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
        ids
    }
}

impl Owner for Terraform {
    /// The outputs Secret it writes, once it has written outputs.
    fn owned(&self) -> Vec<ObjectId> {
        let written = self.status.as_ref().is_some_and(|s| !s.available_outputs.is_empty());
        match (&self.spec.write_outputs_to_secret, written) {
            (Some(target), true) => vec![ObjectId {
                group: String::new(),
                kind: "Secret".into(),
                namespace: self.namespace_or_default(),
                name: target.name.clone(),
            }],
            _ => Vec::new(),
        }
    }
}

impl Owner for crate::api::GitRepository {}
impl Owner for crate::api::Bucket {}
impl Owner for crate::api::OciRepository {}
impl Owner for crate::api::HelmRepository {}
impl Owner for crate::api::HelmChart {}

type Built<'a> = Pin<Box<dyn Future<Output = Result<Node>> + Send + 'a>>;

/// The node of a driftless object and everything below it; `seen` stops a cycle (a
/// Kustomization that applies itself, or two that apply each other).
fn node_of<'a, K: Owner, S: ObjectStore>(store: &'a S, namespace: String, name: String, seen: &'a mut BTreeSet<String>) -> Built<'a> {
    Box::pin(async move {
        let kind = K::KIND.as_str();
        let shown = label(kind, &namespace, &name);
        let Some(object) = store.get::<K>(&namespace, &name).await? else {
            return Ok(Node::leaf(format!("{shown} (not found)")));
        };
        if !seen.insert(shown.clone()) {
            return Ok(Node::leaf(format!("{shown} (already shown above)")));
        }
        let mut node = Node::leaf(format!("{shown} ({})", state(&object)));
        for id in object.owned() {
            let child = match Kind::from_api(&id.kind).filter(|k| id.group == crate::api::GROUP && k.is_reconciled()) {
                Some(k) => {
                    // A driftless object without a namespace in the source lands in its
                    // applier's namespace.
                    let ns = if id.namespace.is_empty() { namespace.clone() } else { id.namespace.clone() };
                    crate::with_reconciled_kind!(k, T => node_of::<T, S>(store, ns, id.name.clone(), &mut *seen).await?, _ => unreachable!("reconciled"))
                }
                None => Node::leaf(label(&id.kind, &id.namespace, &id.name)),
            };
            node.children.push(child);
        }
        Ok(node)
    })
}

/// `tree KIND NAME`: prints the tree of what the object applied.
///
/// # Errors
/// A kind that applies nothing, or no such object.
pub async fn run<S: ObjectStore>(store: &S, kind: &str, name: &str, namespace: &str) -> Result<()> {
    let kind = match kind_of(kind)? {
        CliKind::Api(Kind::Kustomization) => Kind::Kustomization,
        other => {
            return Err(CliError::Usage(format!("{other} applies no objects to show as a tree; use `driftless tree kustomization NAME`")));
        }
    };
    if store.get::<Kustomization>(namespace, name).await?.is_none() {
        return Err(CliError::Usage(format!(
            "{kind} {namespace}/{name} not found; `driftless get kustomization -n {namespace}` lists what there is"
        )));
    }
    let mut seen = BTreeSet::new();
    let root = node_of::<Kustomization, S>(store, namespace.to_string(), name.to_string(), &mut seen).await?;
    print!("{}", render(&root));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_draws_its_branches_as_flux_tree_does() {
        let tree = Node {
            label: "Kustomization/ops/infra (Ready)".into(),
            children: vec![
                Node::leaf("ConfigMap/ops/a".into()),
                Node {
                    label: "Kustomization/ops/apps (Ready)".into(),
                    children: vec![Node::leaf("ConfigMap/ops/b".into()), Node::leaf("Namespace/web".into())],
                },
                Node::leaf("Terraform/ops/db (not ready: PlanPending)".into()),
            ],
        };
        assert_eq!(
            render(&tree),
            "Kustomization/ops/infra (Ready)\n\
             ├── ConfigMap/ops/a\n\
             ├── Kustomization/ops/apps (Ready)\n\
             │   ├── ConfigMap/ops/b\n\
             │   └── Namespace/web\n\
             └── Terraform/ops/db (not ready: PlanPending)\n"
        );
    }

    #[test]
    fn a_kustomization_owns_its_inventory_sorted_by_kind_then_name() {
        let ks: Kustomization = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Kustomization",
            "metadata": {"name": "infra", "namespace": "ops"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "interval": "1h", "prune": true},
            "status": {"inventory": {"entries": [
                {"id": "ops_b_apps_Deployment", "v": "v1"},
                {"id": "_web__Namespace", "v": "v1"},
                {"id": "ops_a__ConfigMap", "v": "v1"},
            ]}}
        }))
        .unwrap();
        let owned: Vec<String> = ks.owned().iter().map(|id| label(&id.kind, &id.namespace, &id.name)).collect();
        assert_eq!(owned, ["ConfigMap/ops/a", "Deployment/ops/b", "Namespace/web"]);
    }
}
