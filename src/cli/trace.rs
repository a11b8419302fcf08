//! `trace KIND NAME -n NS`: which driftless object manages an object of the cluster, from
//! which source and revision, and how its last reconcile went, as `flux trace` tells it.
//!
//! An object a Kustomization applied carries its labels (`kustomize.driftless.dev/name` and
//! `/namespace`, set by every apply); a Secret a Terraform wrote carries the
//! `driftless.dev/owner` annotation. The object is read from the cluster (any kind it
//! serves, found by discovery as kubectl does: kind, plural, singular or short name); the
//! driftless objects from the store, so on a local store the cluster is the kube context's
//! and the Kustomizations are the store's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, ObjectMeta};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use super::cluster::ClusterError;
use super::{CliError, Result};
use crate::api::{Conditions, Kind, Kustomization, Reconciled, StatusModel, condition_type as ct};
use crate::store::ObjectStore;
use driftless_core::names::{annotation, label};

/// A kind the cluster serves, as discovery describes it.
#[derive(Clone, Debug)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

/// Whether `typed` names this resource: its kind, plural, singular or a short name, in any case.
fn names(resource: &APIResource, typed: &str) -> bool {
    let typed = typed.to_ascii_lowercase();
    !resource.name.contains('/')
        && (resource.kind.to_ascii_lowercase() == typed
            || resource.name == typed
            || resource.singular_name == typed
            || resource.short_names.as_ref().is_some_and(|s| s.contains(&typed)))
}

fn served(group_version: &str, resource: &APIResource) -> Served {
    let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
    let gvk = GroupVersionKind::gvk(group, version, &resource.kind);
    Served { resource: ApiResource::from_gvk_with_plural(&gvk, &resource.name), namespaced: resource.namespaced }
}

/// Finds the kind a user typed among what the cluster serves: the core group first, then
/// every group at its preferred version (or only `api_version` when given).
async fn discover(client: &kube::Client, typed: &str, api_version: Option<&str>) -> Result<Served> {
    let failed = |what: String| move |e: kube::Error| CliError::from(ClusterError::api(what, e));
    let mut versions: Vec<String> = Vec::new();
    match api_version {
        Some(v) => versions.push(v.to_string()),
        None => {
            let core = client.list_core_api_versions().await.map_err(failed("discovering the cluster's kinds".into()))?;
            versions.extend(core.versions);
            let groups = client.list_api_groups().await.map_err(failed("discovering the cluster's kinds".into()))?;
            versions.extend(
                groups
                    .groups
                    .into_iter()
                    .filter_map(|g| g.preferred_version.or_else(|| g.versions.into_iter().next()))
                    .map(|v| v.group_version),
            );
        }
    }
    for gv in &versions {
        let listed = if gv.contains('/') { client.list_api_group_resources(gv).await } else { client.list_core_api_resources(gv).await };
        let list = match listed {
            Ok(list) => list,
            // An aggregated API that is down must not hide the kinds of the others.
            Err(_) if api_version.is_none() => continue,
            Err(e) => return Err(ClusterError::api(format!("discovering the kinds of {gv}"), e).into()),
        };
        if let Some(r) = list.resources.iter().find(|r| names(r, typed)) {
            return Ok(served(gv, r));
        }
    }
    let within = api_version.map(|v| format!(" in {v}")).unwrap_or_default();
    Err(CliError::Usage(format!(
        "the cluster serves no kind {typed:?}{within}; name it as kubectl does (deployment, cm, ...) or pass --api-version GROUP/VERSION"
    )))
}

/// Who manages an object, read from its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manager {
    /// Applied by this Kustomization (namespace, name).
    Kustomization(String, String),
    /// Written by a driftless object of this kind (its outputs or plan Secret), in the
    /// object's namespace.
    Owner(Kind, String, String),
}

/// The driftless object that manages an object with this metadata, if any.
pub fn manager_of(meta: &ObjectMeta) -> Option<Manager> {
    let labels = meta.labels.as_ref();
    if let Some(name) = labels.and_then(|l| l.get(label::KUSTOMIZATION_NAME)) {
        let ns = labels.and_then(|l| l.get(label::KUSTOMIZATION_NAMESPACE)).cloned().unwrap_or_default();
        return Some(Manager::Kustomization(ns, name.clone()));
    }
    let owner = meta.annotations.as_ref().and_then(|a| a.get(annotation::OWNER))?;
    let (kind, name) = owner.split_once('/')?;
    Some(Manager::Owner(Kind::from_api(kind)?, meta.namespace.clone().unwrap_or_default(), name.to_string()))
}

/// Lines `Field:  value`, aligned.
struct Report(Vec<(String, String)>);

impl Report {
    fn line(&mut self, field: &str, value: impl Into<String>) {
        self.0.push((format!("{field}:"), value.into()));
    }
    fn blank(&mut self) {
        self.0.push((String::new(), String::new()));
    }
    fn text(&self) -> String {
        let width = self.0.iter().map(|(f, _)| f.len()).max().unwrap_or(0) + 2;
        self.0.iter().map(|(f, v)| if f.is_empty() { "\n".to_string() } else { format!("{f:<width$}{v}\n") }).collect()
    }
}

/// Where a driftless object reads from, for the report.
trait Origin: Reconciled {
    fn origin(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

impl Origin for Kustomization {
    fn origin(&self) -> Vec<(&'static str, String)> {
        vec![("Path", self.spec.path.clone().unwrap_or_else(|| "./".into()))]
    }
}

impl Origin for crate::api::Terraform {
    fn origin(&self) -> Vec<(&'static str, String)> {
        vec![("Path", self.spec.path.clone())]
    }
}

impl Origin for crate::api::GitRepository {
    fn origin(&self) -> Vec<(&'static str, String)> {
        let mut lines = vec![("URL", self.spec.url.clone())];
        if let Some(r) = &self.spec.reference {
            let picked = [("Commit", &r.commit), ("Tag", &r.tag), ("Semver", &r.semver), ("Ref", &r.name), ("Branch", &r.branch)];
            if let Some((field, Some(value))) = picked.into_iter().find(|(_, v)| v.is_some()) {
                lines.push((field, value.clone()));
            }
        }
        lines
    }
}

impl Origin for crate::api::Bucket {
    fn origin(&self) -> Vec<(&'static str, String)> {
        vec![("Endpoint", self.spec.endpoint.clone()), ("Bucket", self.spec.bucket_name.clone())]
    }
}

impl Origin for crate::api::OciRepository {
    fn origin(&self) -> Vec<(&'static str, String)> {
        let mut lines = vec![("URL", self.spec.url.clone())];
        if let Some(r) = &self.spec.reference {
            let picked = [("Digest", &r.digest), ("Semver", &r.semver), ("Tag", &r.tag)];
            if let Some((field, Some(value))) = picked.into_iter().find(|(_, v)| v.is_some()) {
                lines.push((field, value.clone()));
            }
        }
        lines
    }
}

impl Origin for crate::api::HelmRepository {
    fn origin(&self) -> Vec<(&'static str, String)> {
        vec![("URL", self.spec.url.clone())]
    }
}

impl Origin for crate::api::HelmChart {
    fn origin(&self) -> Vec<(&'static str, String)> {
        vec![("Chart", self.spec.chart.clone()), ("Version", self.spec.version.clone())]
    }
}

/// The lines of one driftless object: what it is, where it reads from, its revision, Ready.
fn describe<K: Origin>(report: &mut Report, object: &K) {
    report.line(K::KIND.as_str(), object.name_or_empty());
    report.line("Namespace", object.namespace_or_default());
    for (field, value) in object.origin() {
        report.line(field, value);
    }
    let revision = match object.status() {
        Some(s) if K::KIND.is_source() => s.artifact().map(|a| a.revision.clone()),
        Some(s) => s.common().and_then(|c| c.last_applied_revision.clone()),
        None => None,
    };
    report.line("Revision", revision.unwrap_or_else(|| "none yet".into()));
    match object.status().and_then(|s| s.condition(ct::READY)) {
        Some(c) => {
            report.line("Ready", format!("{:?} ({}) since {}", c.status, c.reason, c.last_transition_time));
            report.line("Message", c.message.clone());
        }
        None => report.line("Ready", "Unknown (not reconciled yet)"),
    }
    if object.suspended() {
        report.line("Suspended", "true");
    }
    if let Some(Manager::Kustomization(ns, name)) = manager_of(object.meta()) {
        report.line("Applied by", format!("Kustomization {ns}/{name}"));
    }
}

/// Reads a driftless object and adds its lines; says so when it is gone.
async fn manager_lines<K: Origin, S: ObjectStore>(store: &S, report: &mut Report, namespace: &str, name: &str) -> Result<Option<K>> {
    report.blank();
    match store.get::<K>(namespace, name).await? {
        Some(o) => {
            describe(report, &o);
            Ok(Some(o))
        }
        None => {
            report.line(K::KIND.as_str(), format!("{namespace}/{name} (not found: deleted, or in another store?)"));
            Ok(None)
        }
    }
}

/// `trace KIND NAME`: prints who manages the object.
///
/// # Errors
/// A kind the cluster does not serve, no such object, or an object driftless does not manage.
pub async fn run<S: ObjectStore>(
    store: &S,
    client: &kube::Client,
    kind: &str,
    name: &str,
    namespace: &str,
    api_version: Option<&str>,
) -> Result<()> {
    let served = discover(client, kind, api_version).await?;
    let api: Api<DynamicObject> = if served.namespaced {
        Api::namespaced_with(client.clone(), namespace, &served.resource)
    } else {
        Api::all_with(client.clone(), &served.resource)
    };
    let kind = served.resource.kind.clone();
    let shown = if served.namespaced { format!("{kind} {namespace}/{name}") } else { format!("{kind} {name}") };
    let object = api
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::api(format!("reading {shown}"), e))?
        .ok_or_else(|| CliError::Usage(format!("{shown} not found on the cluster; check the name and -n NAMESPACE")))?;
    let Some(manager) = manager_of(&object.metadata) else {
        return Err(CliError::Usage(format!(
            "{shown} is not managed by driftless: it carries no {} label (no Kustomization applied it) and no {} annotation",
            label::KUSTOMIZATION_NAME,
            annotation::OWNER
        )));
    };
    let mut report = Report(Vec::new());
    report.line("Object", format!("{kind}/{name}"));
    if served.namespaced {
        report.line("Namespace", namespace);
    }
    let source = match &manager {
        Manager::Kustomization(ns, ks) => {
            manager_lines::<Kustomization, S>(store, &mut report, ns, ks).await?.map(|k| (k.namespace_or_default(), k.spec.source_ref))
        }
        Manager::Owner(k, ns, owner) => crate::with_reconciled_kind!(*k, K => {
            manager_lines::<K, S>(store, &mut report, ns, owner).await?.and_then(|o| o.source_ref().cloned().map(|r| (o.namespace_or_default(), r)))
        }, _ => None),
    };
    if let Some((ns, source)) = source {
        let ns = source.namespace.clone().unwrap_or(ns);
        match Kind::from_api(&source.kind).filter(|k| k.is_source()) {
            Some(k) => {
                crate::with_reconciled_kind!(k, K => manager_lines::<K, S>(store, &mut report, &ns, &source.name).await.map(drop)?, _ => ())
            }
            None => {
                report.blank();
                report.line("Source", format!("{} {ns}/{} (not a source kind)", source.kind, source.name));
            }
        }
    }
    print!("{}", report.text());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(yaml: &str) -> ObjectMeta {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_kustomizations_labels_or_a_terraforms_owner_annotation_name_the_manager() {
        let applied =
            meta("name: web\nnamespace: apps\nlabels: {kustomize.driftless.dev/name: infra, kustomize.driftless.dev/namespace: ops}\n");
        assert_eq!(manager_of(&applied), Some(Manager::Kustomization("ops".into(), "infra".into())));
        let outputs = meta("name: db-outputs\nnamespace: apps\nannotations: {driftless.dev/owner: Terraform/db}\n");
        assert_eq!(manager_of(&outputs), Some(Manager::Owner(Kind::Terraform, "apps".into(), "db".into())));
        assert_eq!(manager_of(&meta("name: x\nannotations: {driftless.dev/owner: Widget/db}\n")), None, "not a driftless kind");
        assert_eq!(manager_of(&meta("name: x\nlabels: {app: web}\n")), None);
    }

    #[test]
    fn kinds_are_found_by_kind_plural_singular_or_short_name() {
        let deployment: APIResource = serde_json::from_value(serde_json::json!({
            "name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
            "verbs": ["get"], "shortNames": ["deploy"]
        }))
        .unwrap();
        for typed in ["Deployment", "deployments", "deployment", "deploy", "DEPLOY"] {
            assert!(names(&deployment, typed), "{typed}");
        }
        assert!(!names(&deployment, "dep"));
        let scale: APIResource = serde_json::from_value(serde_json::json!({
            "name": "deployments/scale", "singularName": "", "namespaced": true, "kind": "Scale", "verbs": ["get"]
        }))
        .unwrap();
        assert!(!names(&scale, "scale"), "subresources are not kinds");
    }

    #[test]
    fn report_fields_are_aligned() {
        let mut r = Report(Vec::new());
        r.line("Object", "ConfigMap/a");
        r.blank();
        r.line("Kustomization", "apps");
        assert_eq!(r.text(), "Object:         ConfigMap/a\n\nKustomization:  apps\n");
    }
}
