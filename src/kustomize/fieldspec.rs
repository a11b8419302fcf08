//! Field specs: where in which kinds a transformer writes (labels, annotations, namespaces,
//! images, replicas, name references), and the walk that finds those fields.
//!
//! A path is `/`-separated (`\/` for a slash inside a key); `name[]` marks a list, and a list
//! met on the way is entered element by element with the rest of the path, as kustomize does.
//! The tables below hold the places kustomize v5 writes by default, so a build touches the
//! same fields `kubectl kustomize` touches.

use serde_json::{Map, Value};

use super::resource::gvk_of;

/// One place a transformer writes: a path, in objects of a kind (empty parts match any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: String,
    /// Create the field (and the maps on the way) when it is missing.
    pub create: bool,
}

/// What to create at the end of a path when the field is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Scalar,
    Map,
}

impl FieldSpec {
    pub fn new(group: &str, version: &str, kind: &str, path: &str, create: bool) -> FieldSpec {
        FieldSpec { group: group.into(), version: version.into(), kind: kind.into(), path: path.into(), create }
    }

    pub fn applies_to(&self, object: &Value) -> bool {
        let gvk = gvk_of(object);
        (self.kind.is_empty() || self.kind == gvk.kind)
            && (self.group.is_empty() || self.group == gvk.group)
            && (self.version.is_empty() || self.version == gvk.version)
    }

    /// Calls `set` on every field this spec leads to in `object`, creating missing fields of
    /// kind `create` when the spec allows it.
    ///
    /// # Errors
    /// The path runs into a scalar before its end, or `set` fails.
    pub fn apply(
        &self,
        object: &mut Value,
        create: Option<Create>,
        set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.applies_to(object) {
            return Ok(());
        }
        let path = split_path(&self.path);
        walk(object, &path, self.create, create, set).map_err(|e| format!("field {:?}: {e}", self.path))
    }
}

pub(crate) fn split_path(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn walk(
    node: &mut Value,
    path: &[String],
    may_create: bool,
    create: Option<Create>,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return set(node);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                walk(item, path, may_create, create, set)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let (name, is_list) = match head.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (head.as_str(), false),
            };
            // What a missing (or null) field becomes: nothing, a list (only named so), the
            // requested kind at the end of the path, or a map on the way.
            let made: Option<Value> = if !may_create || create.is_none() || is_list {
                if is_list { Some(Value::Array(Vec::new())) } else { None }
            } else if rest.is_empty() {
                Some(match create {
                    Some(Create::Map) => Value::Object(Map::new()),
                    _ => Value::String(String::new()),
                })
            } else {
                Some(Value::Object(Map::new()))
            };
            let creating = may_create && create.is_some() && !is_list;
            match map.get_mut(name) {
                Some(field) => {
                    if field.is_null()
                        && let Some(m) = made
                    {
                        *field = m;
                    }
                    walk(field, rest, may_create, create, set)
                }
                None if creating => {
                    let field = map.entry(name.to_string()).or_insert(made.unwrap_or(Value::Null));
                    walk(field, rest, may_create, create, set)
                }
                None => Ok(()),
            }
        }
        _ => Err("expected a list or a map on the way".to_string()),
    }
}

fn specs(table: &[(&str, &str, &str, &str, bool)]) -> Vec<FieldSpec> {
    table.iter().map(|(g, v, k, p, c)| FieldSpec::new(g, v, k, p, *c)).collect()
}

/// `metadata/labels` and the pod template labels of workload kinds.
const METADATA_LABELS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "", "", "metadata/labels", true),
    ("", "v1", "ReplicationController", "spec/template/metadata/labels", true),
    ("", "", "Deployment", "spec/template/metadata/labels", true),
    ("", "", "ReplicaSet", "spec/template/metadata/labels", true),
    ("", "", "DaemonSet", "spec/template/metadata/labels", true),
    ("apps", "", "StatefulSet", "spec/template/metadata/labels", true),
    ("apps", "", "StatefulSet", "spec/volumeClaimTemplates[]/metadata/labels", true),
    ("batch", "", "Job", "spec/template/metadata/labels", true),
    ("batch", "", "CronJob", "spec/jobTemplate/metadata/labels", true),
    ("batch", "", "CronJob", "spec/jobTemplate/spec/template/metadata/labels", true),
];

/// Selectors `commonLabels` (and `labels` with `includeSelectors`) also write.
const SELECTOR_LABELS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Service", "spec/selector", true),
    ("", "v1", "ReplicationController", "spec/selector", true),
    ("", "", "Deployment", "spec/selector/matchLabels", true),
    (
        "apps",
        "",
        "Deployment",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "Deployment",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "Deployment",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    ("apps", "", "Deployment", "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
    ("", "", "ReplicaSet", "spec/selector/matchLabels", true),
    ("", "", "DaemonSet", "spec/selector/matchLabels", true),
    ("apps", "", "StatefulSet", "spec/selector/matchLabels", true),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    ("apps", "", "StatefulSet", "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
    ("batch", "", "Job", "spec/selector/matchLabels", false),
    ("batch", "", "CronJob", "spec/jobTemplate/spec/selector/matchLabels", false),
    ("policy", "", "PodDisruptionBudget", "spec/selector/matchLabels", false),
    ("networking.k8s.io", "", "NetworkPolicy", "spec/podSelector/matchLabels", false),
    ("networking.k8s.io", "", "NetworkPolicy", "spec/ingress/from/podSelector/matchLabels", false),
    ("networking.k8s.io", "", "NetworkPolicy", "spec/egress/to/podSelector/matchLabels", false),
];

/// Where `commonLabels` and `labels[].includeSelectors` write: selectors and metadata.
pub(crate) fn common_labels() -> Vec<FieldSpec> {
    let mut out = specs(SELECTOR_LABELS);
    out.extend(specs(METADATA_LABELS));
    out
}

/// Where `labels[].includeTemplates` writes: metadata and pod templates, not selectors.
pub(crate) fn template_labels() -> Vec<FieldSpec> {
    specs(METADATA_LABELS)
}

pub(crate) fn common_annotations() -> Vec<FieldSpec> {
    specs(&[
        ("", "", "", "metadata/annotations", true),
        ("", "v1", "ReplicationController", "spec/template/metadata/annotations", true),
        ("", "", "Deployment", "spec/template/metadata/annotations", true),
        ("", "", "ReplicaSet", "spec/template/metadata/annotations", true),
        ("", "", "DaemonSet", "spec/template/metadata/annotations", true),
        ("", "", "StatefulSet", "spec/template/metadata/annotations", true),
        ("batch", "", "Job", "spec/template/metadata/annotations", true),
        ("batch", "", "CronJob", "spec/jobTemplate/metadata/annotations", true),
        ("batch", "", "CronJob", "spec/jobTemplate/spec/template/metadata/annotations", true),
    ])
}

/// Namespace fields besides `metadata/namespace` (which the namespace transformer sets on
/// every namespaced object itself).
pub(crate) fn namespace_fields() -> Vec<FieldSpec> {
    specs(&[
        ("apiregistration.k8s.io", "", "APIService", "spec/service/namespace", true),
        ("apiextensions.k8s.io", "", "CustomResourceDefinition", "spec/conversion/webhook/clientConfig/service/namespace", false),
    ])
}

pub(crate) fn images() -> Vec<FieldSpec> {
    specs(&[
        ("", "", "", "spec/containers[]/image", true),
        ("", "", "", "spec/initContainers[]/image", true),
        ("", "", "", "spec/template/spec/containers[]/image", true),
        ("", "", "", "spec/template/spec/initContainers[]/image", true),
    ])
}

pub(crate) fn replicas() -> Vec<FieldSpec> {
    specs(&[
        ("", "", "Deployment", "spec/replicas", true),
        ("", "", "ReplicationController", "spec/replicas", true),
        ("", "", "ReplicaSet", "spec/replicas", true),
        ("", "", "StatefulSet", "spec/replicas", true),
    ])
}

/// A kind whose name other objects refer to, and where they do.
pub(crate) struct NameReference {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub referrers: Vec<FieldSpec>,
}

/// The pod spec places of each workload kind, as (kind, prefix of the pod spec).
const POD_SPECS: &[(&str, &str, &str)] = &[
    ("v1", "Pod", "spec"),
    ("", "PodTemplate", "template/spec"),
    ("", "Deployment", "spec/template/spec"),
    ("", "ReplicaSet", "spec/template/spec"),
    ("", "DaemonSet", "spec/template/spec"),
    ("", "StatefulSet", "spec/template/spec"),
    ("", "Job", "spec/template/spec"),
    ("", "CronJob", "spec/jobTemplate/spec/template/spec"),
];

fn in_pod_specs(suffixes: &[&str], out: &mut Vec<FieldSpec>) {
    for (version, kind, prefix) in POD_SPECS {
        for suffix in suffixes {
            out.push(FieldSpec::new("", version, kind, &format!("{prefix}/{suffix}"), false));
        }
    }
}

fn refs(table: &[(&str, &str, &str, &str)]) -> Vec<FieldSpec> {
    table.iter().map(|(g, v, k, p)| FieldSpec::new(g, v, k, p, false)).collect()
}

/// Where objects refer to other objects by name, so renamed objects (prefix, suffix, hash)
/// are followed. The common places kustomize fixes: pod specs (config maps, secrets,
/// service accounts, claims, priority classes), RBAC, HPAs, Ingresses, StatefulSet services.
pub(crate) fn name_references() -> Vec<NameReference> {
    let mut config_map = Vec::new();
    in_pod_specs(
        &[
            "volumes/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
            "volumes/projected/sources/configMap/name",
        ],
        &mut config_map,
    );
    config_map.extend(refs(&[
        ("", "", "Node", "spec/configSource/configMap"),
        ("", "", "Role", "rules/resourceNames"),
        ("", "", "ClusterRole", "rules/resourceNames"),
        ("", "", "Ingress", "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap"),
    ]));
    let mut secret = Vec::new();
    in_pod_specs(
        &[
            "volumes/secret/secretName",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
            "volumes/projected/sources/secret/name",
        ],
        &mut secret,
    );
    secret.extend(refs(&[
        ("", "", "Ingress", "spec/tls/secretName"),
        ("", "", "Ingress", "metadata/annotations/ingress.kubernetes.io\\/auth-secret"),
        ("", "", "Ingress", "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret"),
        ("", "", "Ingress", "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret"),
        ("", "", "ServiceAccount", "imagePullSecrets/name"),
        ("", "", "StorageClass", "parameters/secretName"),
        ("", "", "StorageClass", "parameters/adminSecretName"),
        ("", "", "StorageClass", "parameters/userSecretName"),
        ("", "", "StorageClass", "parameters/secretRef"),
        ("", "", "Role", "rules/resourceNames"),
        ("", "", "ClusterRole", "rules/resourceNames"),
        ("serving.knative.dev", "v1", "Service", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name"),
        ("", "", "PersistentVolume", "spec/azureFile/secretName"),
    ]));
    let workloads_field = |field: &str| -> Vec<FieldSpec> {
        refs(&[
            ("", "", "Pod", &format!("spec/{field}")),
            ("", "", "StatefulSet", &format!("spec/template/spec/{field}")),
            ("", "", "Deployment", &format!("spec/template/spec/{field}")),
            ("", "", "ReplicationController", &format!("spec/template/spec/{field}")),
            ("", "", "CronJob", &format!("spec/jobTemplate/spec/template/spec/{field}")),
            ("", "", "Job", &format!("spec/template/spec/{field}")),
            ("", "", "DaemonSet", &format!("spec/template/spec/{field}")),
        ])
    };
    let mut service_account = refs(&[
        ("rbac.authorization.k8s.io", "", "RoleBinding", "subjects"),
        ("rbac.authorization.k8s.io", "", "ClusterRoleBinding", "subjects"),
    ]);
    service_account.extend(workloads_field("serviceAccountName"));
    let hpa = || refs(&[("", "", "HorizontalPodAutoscaler", "spec/scaleTargetRef/name")]);
    vec![
        NameReference { group: "", version: "", kind: "Deployment", referrers: hpa() },
        NameReference { group: "", version: "", kind: "ReplicationController", referrers: hpa() },
        NameReference { group: "", version: "", kind: "ReplicaSet", referrers: hpa() },
        NameReference { group: "", version: "", kind: "StatefulSet", referrers: hpa() },
        NameReference { group: "", version: "v1", kind: "ConfigMap", referrers: config_map },
        NameReference { group: "", version: "v1", kind: "Secret", referrers: secret },
        NameReference {
            group: "",
            version: "v1",
            kind: "Service",
            referrers: refs(&[
                ("apps", "", "StatefulSet", "spec/serviceName"),
                ("", "", "Ingress", "spec/rules/http/paths/backend/serviceName"),
                ("", "", "Ingress", "spec/backend/serviceName"),
                ("", "", "Ingress", "spec/rules/http/paths/backend/service/name"),
                ("", "", "Ingress", "spec/defaultBackend/service/name"),
                ("apiregistration.k8s.io", "", "APIService", "spec/service/name"),
                ("admissionregistration.k8s.io", "", "ValidatingWebhookConfiguration", "webhooks/clientConfig/service"),
                ("admissionregistration.k8s.io", "", "MutatingWebhookConfiguration", "webhooks/clientConfig/service"),
            ]),
        },
        NameReference {
            group: "rbac.authorization.k8s.io",
            version: "",
            kind: "Role",
            referrers: refs(&[("rbac.authorization.k8s.io", "", "RoleBinding", "roleRef/name")]),
        },
        NameReference {
            group: "rbac.authorization.k8s.io",
            version: "",
            kind: "ClusterRole",
            referrers: refs(&[
                ("rbac.authorization.k8s.io", "", "RoleBinding", "roleRef/name"),
                ("rbac.authorization.k8s.io", "", "ClusterRoleBinding", "roleRef/name"),
            ]),
        },
        NameReference { group: "", version: "v1", kind: "ServiceAccount", referrers: service_account },
        NameReference {
            group: "",
            version: "v1",
            kind: "PersistentVolumeClaim",
            referrers: workloads_field("volumes/persistentVolumeClaim/claimName"),
        },
        NameReference {
            group: "",
            version: "v1",
            kind: "PersistentVolume",
            referrers: refs(&[("", "", "PersistentVolumeClaim", "spec/volumeName"), ("", "", "ClusterRole", "rules/resourceNames")]),
        },
        NameReference {
            group: "storage.k8s.io",
            version: "v1",
            kind: "StorageClass",
            referrers: refs(&[
                ("", "", "PersistentVolume", "spec/storageClassName"),
                ("", "", "PersistentVolumeClaim", "spec/storageClassName"),
                ("", "", "StatefulSet", "spec/volumeClaimTemplates/spec/storageClassName"),
            ]),
        },
        NameReference { group: "scheduling.k8s.io", version: "v1", kind: "PriorityClass", referrers: workloads_field("priorityClassName") },
        NameReference {
            group: "admissionregistration.k8s.io",
            version: "",
            kind: "ValidatingAdmissionPolicy",
            referrers: refs(&[("admissionregistration.k8s.io", "", "ValidatingAdmissionPolicyBinding", "spec/policyName")]),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_split_on_unescaped_slashes() {
        assert_eq!(split_path("metadata/annotations/a.io\\/b"), ["metadata", "annotations", "a.io/b"]);
    }

    #[test]
    fn walk_enters_lists_and_creates_only_when_allowed() {
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}}});
        let spec = FieldSpec::new("", "", "", "spec/template/spec/containers/image", false);
        let mut seen = Vec::new();
        spec.apply(&mut obj, None, &mut |v| {
            seen.push(v.as_str().unwrap_or_default().to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a", "b"]);
        let create = FieldSpec::new("", "", "Deployment", "spec/selector/matchLabels", true);
        create.apply(&mut obj, Some(Create::Map), &mut |_| Ok(())).unwrap();
        assert_eq!(obj["spec"]["selector"]["matchLabels"], json!({}));
        let no_create = FieldSpec::new("", "", "Deployment", "spec/other/labels", false);
        no_create.apply(&mut obj, Some(Create::Map), &mut |_| Ok(())).unwrap();
        assert!(obj["spec"].get("other").is_none());
    }
}
