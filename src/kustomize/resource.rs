//! One object in a build, with what kustomize remembers about it while it is transformed:
//! every id it had (so references and patches written against an old name still find it),
//! the name prefixes and suffixes it received, and whether a generator asked for a hash.

use std::cmp::Ordering;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Group, version and kind of an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() }
    }

    /// True when every non-empty part of `selector` equals ours (kustomize's `IsSelected`).
    pub fn is_selected_by(&self, group: &str, version: &str, kind: &str) -> bool {
        (group.is_empty() || group == self.group)
            && (version.is_empty() || version == self.version)
            && (kind.is_empty() || kind == self.kind)
    }

    /// Known cluster-scoped built-in kinds; everything else (CRDs included) is namespaced.
    pub fn is_cluster_scoped(&self) -> bool {
        CLUSTER_SCOPED.iter().any(|(g, k)| *g == self.group && *k == self.kind)
    }
}

/// Cluster-scoped kinds of the Kubernetes API, by group and kind.
pub(crate) const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
];

/// The identity of an object: its kind and name, and its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResId {
    pub gvk: Gvk,
    pub name: String,
    pub namespace: String,
}

impl ResId {
    pub fn of(object: &Value) -> ResId {
        ResId {
            gvk: gvk_of(object),
            name: str_at(object, &["metadata", "name"]).to_string(),
            namespace: str_at(object, &["metadata", "namespace"]).to_string(),
        }
    }

    /// The namespace used to compare ids: `default` for a namespaced object without one, and a
    /// marker for cluster-scoped kinds (whose namespace field means nothing).
    pub fn effective_namespace(&self) -> &str {
        if self.gvk.is_cluster_scoped() {
            "_non_namespaceable_"
        } else if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    pub fn same_namespace(&self, other: &ResId) -> bool {
        self.effective_namespace() == other.effective_namespace()
    }

    /// Same kind (group, version, kind), name and namespace.
    pub fn equals(&self, other: &ResId) -> bool {
        self.gvk == other.gvk && self.name == other.name && self.same_namespace(other)
    }

    /// `Kind/name` (with `namespace/` when set) for messages.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.gvk.kind, self.name)
        } else {
            format!("{}/{}/{}", self.gvk.kind, self.namespace, self.name)
        }
    }

    /// kustomize's legacy sort string within one kind: `Kind.version.group|namespace|name`.
    pub fn legacy_sort_key(&self) -> String {
        let or = |s: &str, d: &str| if s.is_empty() { d.to_string() } else { s.to_string() };
        format!(
            "{}.{}.{}|{}|{}",
            or(&self.gvk.kind, "[noKind]"),
            or(&self.gvk.version, "[noVer]"),
            or(&self.gvk.group, "[noGrp]"),
            or(&self.namespace, "~X"),
            or(&self.name, "~N")
        )
    }
}

/// How a generated object joins objects already there with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Behavior {
    #[default]
    Create,
    Merge,
    Replace,
}

/// An object plus its build history.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub object: Value,
    /// Ids the object had before its current one, oldest first.
    pub prev_ids: Vec<ResId>,
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// A generator asked for a content hash suffix on the name.
    pub needs_hash: bool,
    pub behavior: Behavior,
    /// The file (or kustomization) the object came from, for messages.
    pub origin: PathBuf,
}

impl Resource {
    pub fn new(object: Value, origin: PathBuf) -> Resource {
        Resource {
            object,
            prev_ids: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            needs_hash: false,
            behavior: Behavior::Create,
            origin,
        }
    }

    pub fn cur_id(&self) -> ResId {
        ResId::of(&self.object)
    }

    /// The id the object was first loaded or generated with.
    pub fn org_id(&self) -> ResId {
        self.prev_ids.first().cloned().unwrap_or_else(|| self.cur_id())
    }

    /// Every id, old and current.
    pub fn all_ids(&self) -> impl Iterator<Item = ResId> + '_ {
        self.prev_ids.iter().cloned().chain(std::iter::once(self.cur_id()))
    }

    pub fn store_previous_id(&mut self) {
        let id = self.cur_id();
        self.prev_ids.push(id);
    }

    pub fn gvk(&self) -> Gvk {
        gvk_of(&self.object)
    }

    pub fn kind(&self) -> &str {
        str_at(&self.object, &["kind"])
    }

    pub fn name(&self) -> &str {
        str_at(&self.object, &["metadata", "name"])
    }

    pub fn namespace(&self) -> &str {
        str_at(&self.object, &["metadata", "namespace"])
    }

    pub fn set_name(&mut self, name: &str) {
        set_metadata(&mut self.object, "name", Value::String(name.to_string()));
    }

    /// Sets the namespace; an empty one removes the field.
    pub fn set_namespace(&mut self, namespace: &str) {
        if namespace.is_empty() {
            if let Some(meta) = self.object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("namespace");
            }
        } else {
            set_metadata(&mut self.object, "namespace", Value::String(namespace.to_string()));
        }
    }

    pub fn string_map(&self, field: &str) -> Map<String, Value> {
        self.object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_object).cloned().unwrap_or_default()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.object.pointer(&format!("/metadata/labels/{}", pointer_escape(key))).and_then(Value::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.object.pointer(&format!("/metadata/annotations/{}", pointer_escape(key))).and_then(Value::as_str)
    }

    /// Writes every annotation back as a string (a number or boolean as its text, null as
    /// empty), as kustomize does at the end of a build; the API server takes only strings,
    /// and a replacement may have created, say, the number 3 from the string `"3"`.
    pub fn annotations_to_strings(&mut self) {
        let Some(annotations) = self.object.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else { return };
        for value in annotations.values_mut().filter(|v| !v.is_string()) {
            *value = Value::String(super::yaml::value_text(value));
        }
    }

    /// An object emptied by a `$patch: delete`.
    pub fn is_empty(&self) -> bool {
        self.object.as_object().is_none_or(Map::is_empty)
    }

    /// kustomize's check that the referrer and a candidate got the same prefixes and
    /// suffixes, used to pick between several objects once called by the same name.
    pub fn prefixes_suffixes_equal(&self, other: &Resource, allow_empty: bool) -> bool {
        let same = |a: &[String], b: &[String]| same_ending(a, b);
        if allow_empty {
            (self.prefixes.is_empty() || other.prefixes.is_empty() || same(&self.prefixes, &other.prefixes))
                && (self.suffixes.is_empty() || other.suffixes.is_empty() || same(&self.suffixes, &other.suffixes))
        } else {
            same(&self.prefixes, &other.prefixes) && same(&self.suffixes, &other.suffixes)
        }
    }
}

/// True when the shorter slice is the end of the longer one.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[a.len() - n..] == b[b.len() - n..]
}

pub(crate) fn gvk_of(object: &Value) -> Gvk {
    Gvk::from_api_version(str_at(object, &["apiVersion"]), str_at(object, &["kind"]))
}

pub(crate) fn str_at<'a>(object: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = object;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn set_metadata(object: &mut Value, key: &str, value: Value) {
    if let Some(obj) = object.as_object_mut() {
        let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(key.to_string(), value);
        }
    }
}

pub(crate) fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// kustomize's legacy output order: kinds listed in `first` lead in that order, kinds in
/// `last` close, everything else sits between ordered by group, version and kind; within one
/// kind, by namespace and name.
pub(crate) fn legacy_order(a: &ResId, b: &ResId, first: &[String], last: &[String]) -> Ordering {
    if a.gvk != b.gvk {
        let rank = |kind: &str| -> i64 {
            if let Some(i) = first.iter().position(|k| k == kind) {
                return i as i64 - first.len() as i64;
            }
            if let Some(i) = last.iter().position(|k| k == kind) {
                return 1 + i as i64;
            }
            0
        };
        let (ra, rb) = (rank(&a.gvk.kind), rank(&b.gvk.kind));
        if ra != rb {
            return ra.cmp(&rb);
        }
        let key = |g: &Gvk| {
            let or = |s: &str, d: &str| if s.is_empty() { d.to_string() } else { s.to_string() };
            format!("{}_{}_{}", or(&g.group, "~G"), or(&g.version, "~V"), or(&g.kind, "~K"))
        };
        // kustomize puts a core Namespace after a grouped one, reversing the order here.
        if a.gvk.kind == "Namespace" && b.gvk.kind == "Namespace" && (a.gvk.group.is_empty() || b.gvk.group.is_empty()) {
            return key(&b.gvk).cmp(&key(&a.gvk));
        }
        return key(&a.gvk).cmp(&key(&b.gvk));
    }
    a.legacy_sort_key().cmp(&b.legacy_sort_key())
}

/// The kinds kustomize orders first and last by default.
pub(crate) const DEFAULT_ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
pub(crate) const DEFAULT_ORDER_LAST: &[&str] = &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::Resource as _;

    fn scope_is_cluster<K: k8s_openapi::Resource>() -> bool {
        std::any::type_name::<K::Scope>().ends_with("ClusterResourceScope")
    }

    #[test]
    fn cluster_scoped_table_agrees_with_the_api_types() {
        use k8s_openapi::api::{admissionregistration::v1 as adm, core::v1 as core, rbac::v1 as rbac, storage::v1 as storage};
        macro_rules! check {
            ($($t:ty),*) => {$(
                let gvk = Gvk { group: <$t>::GROUP.to_string(), version: <$t>::VERSION.to_string(), kind: <$t>::KIND.to_string() };
                assert_eq!(gvk.is_cluster_scoped(), scope_is_cluster::<$t>(), "{}", <$t>::KIND);
            )*};
        }
        check!(
            core::Namespace,
            core::Node,
            core::PersistentVolume,
            core::ConfigMap,
            core::Secret,
            core::Service,
            core::ServiceAccount,
            rbac::ClusterRole,
            rbac::ClusterRoleBinding,
            rbac::Role,
            rbac::RoleBinding,
            storage::StorageClass,
            storage::CSIDriver,
            adm::ValidatingWebhookConfiguration,
            adm::MutatingWebhookConfiguration,
            adm::ValidatingAdmissionPolicy,
            k8s_openapi::api::scheduling::v1::PriorityClass,
            k8s_openapi::api::networking::v1::IngressClass,
            k8s_openapi::api::networking::v1::Ingress,
            k8s_openapi::api::node::v1::RuntimeClass,
            k8s_openapi::api::apps::v1::Deployment,
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService
        );
    }

    #[test]
    fn legacy_order_puts_namespaces_first_and_webhooks_last() {
        let id = |api: &str, kind: &str, name: &str| ResId {
            gvk: Gvk::from_api_version(api, kind),
            name: name.into(),
            namespace: String::new(),
        };
        let first: Vec<String> = DEFAULT_ORDER_FIRST.iter().map(|s| s.to_string()).collect();
        let last: Vec<String> = DEFAULT_ORDER_LAST.iter().map(|s| s.to_string()).collect();
        let mut ids = [
            id("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "w"),
            id("example.com/v1", "Thing", "t"),
            id("apps/v1", "Deployment", "b"),
            id("apps/v1", "Deployment", "a"),
            id("v1", "Namespace", "n"),
        ];
        ids.sort_by(|a, b| legacy_order(a, b, &first, &last));
        let names: Vec<&str> = ids.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["n", "a", "b", "t", "w"]);
    }
}
