//! The CRD schemas as the one definition of which fields an object may hold: an object read
//! from a file is checked against the same OpenAPI schema the API server is given, so a
//! field the schema does not have is refused by name on a local store as on a cluster (where
//! the API server's strict field validation refuses it), never stored and ignored.
//!
//! A field that Flux or tofu-controller has and driftless does not implement gets a message
//! of its own: what to use instead, or that it is not implemented yet. Every other unknown
//! field is listed with the fields that level does have (a typo is the usual cause).

use serde_json::Value;

use super::FieldError;

/// Peer fields driftless does not implement: kind, field path (`[]` for any list index),
/// what to do instead.
const PEER_FIELDS: &[(&str, &str, &str)] = &[
    (
        "Terraform",
        "spec.planOnly",
        "tofu-controller's planOnly: set spec.approvePlan to \"\" (every plan waits for approval) or suspend the object",
    ),
    (
        "Terraform",
        "spec.enableInventory",
        "tofu-controller's enableInventory is not implemented: status.resources lists what each plan changes",
    ),
    (
        "Terraform",
        "spec.runnerTerminationGracePeriodSeconds",
        "tofu-controller's runnerTerminationGracePeriodSeconds is not implemented: runners stop terraform gracefully on SIGTERM within 25 s",
    ),
    (
        "Terraform",
        "spec.tfstate.lockTimeout",
        "tofu-controller's tfstate.lockTimeout is not implemented: a held lock fails the run at once and it is retried after spec.retryInterval",
    ),
    (
        "Terraform",
        "spec.backendConfig.configPath",
        "tofu-controller's backendConfig.configPath is not implemented: the runner reaches state Secrets with its own identity (its ServiceAccount in a pod); remove the field",
    ),
    (
        "Terraform",
        "spec.branchPlanner",
        "tofu-controller's branch planner is not part of driftless: review plans with driftless plan show or the review page",
    ),
    ("Terraform", "spec.cloud", "Terraform Cloud is not supported: use spec.backendConfig"),
    ("Terraform", "spec.enterprise", "Terraform Enterprise is not supported: use spec.backendConfig"),
    ("Terraform", "spec.webhooks", "tofu-controller's webhooks are not supported: use Alerts and Providers"),
    (
        "Terraform",
        "spec.breakTheGlass",
        "tofu-controller's breakTheGlass is not supported: suspend the object (driftless suspend) and work on the state by hand",
    ),
    (
        "Kustomization",
        "spec.kubeConfig.configMapRef",
        "Flux's kubeConfig.configMapRef (a cloud provider's workload identity) is not implemented yet: put a kubeconfig in a Secret and use kubeConfig.secretRef",
    ),
    (
        "Kustomization",
        "spec.decryption.serviceAccountName",
        "Flux's decryption.serviceAccountName (a cloud KMS workload identity) is not implemented yet: decrypt with age or PGP keys in spec.decryption.secretRef",
    ),
    ("GitRepository", "spec.provider", "Flux's provider (cloud workload identity) is not implemented yet: use spec.secretRef"),
    (
        "GitRepository",
        "spec.serviceAccountName",
        "Flux's serviceAccountName (workload identity) is not implemented yet: use spec.secretRef",
    ),
    (
        "OCIRepository",
        "spec.verify",
        "Flux's verify (cosign and notation signatures) is not implemented yet: pin the artifact with spec.ref.digest",
    ),
    (
        "OCIRepository",
        "spec.serviceAccountName",
        "Flux's serviceAccountName (the account's imagePullSecrets, or workload identity) is not implemented yet: use spec.secretRef",
    ),
    ("OCIRepository", "spec.proxySecretRef", "Flux's proxySecretRef is not implemented yet for OCIRepository"),
    (
        "HelmRepository",
        "spec.accessFrom",
        "Flux's accessFrom is not implemented (Flux never implemented it either): create the HelmRepository in the namespace of its HelmCharts",
    ),
    (
        "HelmChart",
        "spec.verify",
        "Flux's verify (cosign and notation signatures of OCI charts) is not implemented yet: pin the chart with an exact spec.version",
    ),
    ("HelmChart", "spec.valuesFile", "Flux's deprecated valuesFile: use spec.valuesFiles, a list"),
    ("Bucket", "spec.sts", "Flux's sts is not implemented yet: use spec.secretRef"),
    ("Bucket", "spec.certSecretRef", "Flux's certSecretRef is not implemented yet"),
    ("Bucket", "spec.proxySecretRef", "Flux's proxySecretRef is not implemented yet"),
    ("Provider", "spec.proxy", "Flux's proxy is not implemented yet"),
    ("Provider", "spec.proxySecretRef", "Flux's proxySecretRef is not implemented yet"),
    ("Provider", "spec.commitStatusExpr", "Flux's commitStatusExpr (CEL) is not implemented yet"),
    ("Receiver", "spec.interval", "Flux's Receiver interval is not needed by driftless: remove the field"),
    (
        "Receiver",
        "spec.resourceFilter",
        "Flux's resourceFilter (CEL) is not implemented yet: list the resources to notify in spec.resources",
    ),
    (
        "Terraform",
        "spec.enablePathScope",
        "tofu-controller's enablePathScope is not implemented: the artifact's whole tree is given to the runner",
    ),
    (
        "Terraform",
        "spec.remediation",
        "tofu-controller's remediation is not implemented: a failed run is retried with backoff from spec.retryInterval",
    ),
];

/// The openAPIV3Schema of `kind`'s CRD, the one the API server gets.
fn schema_of(kind: &str) -> Option<Value> {
    let crd = super::crds().into_iter().find(|c| c.spec.names.kind == kind)?;
    let version = crd.spec.versions.into_iter().next()?;
    serde_json::to_value(version.schema?.open_api_v3_schema?).ok()
}

/// Every field of `object` (a `kind` as read from a file) that its CRD schema does not have.
/// A kind without a CRD has no fields checked.
pub fn unknown_fields(kind: &str, object: &Value) -> Vec<FieldError> {
    let Some(schema) = schema_of(kind) else { return Vec::new() };
    let mut found = Vec::new();
    walk(kind, &schema, object, "", &mut found);
    found
}

/// The properties a schema node allows, merged over `anyOf`/`oneOf`/`allOf` alternatives;
/// `None` when the node does not restrict its keys.
fn properties(schema: &Value) -> Option<serde_json::Map<String, Value>> {
    let mut merged: Option<serde_json::Map<String, Value>> = schema.get("properties").and_then(Value::as_object).cloned();
    for key in ["anyOf", "oneOf", "allOf"] {
        for alternative in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = properties(alternative) {
                merged.get_or_insert_with(Default::default).extend(p);
            }
        }
    }
    merged
}

fn walk(kind: &str, schema: &Value, value: &Value, path: &str, found: &mut Vec<FieldError>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = properties(schema) {
                for (key, child) in map {
                    // Every object's own: the API server checks them, the CRD does not list them.
                    if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    match props.get(key) {
                        Some(child_schema) => walk(kind, child_schema, child, &field, found),
                        None => found.push(FieldError { field: field.clone(), reason: refusal(kind, &field, &props) }),
                    }
                }
            } else if let Some(each) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (key, child) in map {
                    walk(kind, each, child, &format!("{path}.{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            if let Some(each) = schema.get("items") {
                for (i, child) in items.iter().enumerate() {
                    walk(kind, each, child, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// Why `field` is refused: the peer's field and what to use, or the fields that level has.
fn refusal(kind: &str, field: &str, props: &serde_json::Map<String, Value>) -> String {
    let general = general_path(field);
    if let Some((_, _, message)) = PEER_FIELDS.iter().find(|(k, p, _)| *k == kind && *p == general) {
        return format!("unknown field: {message}");
    }
    let mut known: Vec<&str> = props.keys().map(String::as_str).collect();
    known.sort_unstable();
    format!("unknown field (a typo?); {kind} has here: {}", known.join(", "))
}

/// `spec.vars[3].valueFrom` -> `spec.vars[].valueFrom`.
fn general_path(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terraform(spec: Value) -> Value {
        json!({ "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform", "metadata": { "name": "app", "labels": { "any": "label" } }, "spec": spec })
    }

    #[test]
    fn a_peer_field_is_refused_with_what_to_use_instead() {
        let found = unknown_fields(
            "Terraform",
            &terraform(json!({ "sourceRef": { "kind": "GitRepository", "name": "app" }, "interval": "1h", "path": "./", "planOnly": true,
                               "disableDriftDetection": true,
                               "vars": [{ "name": "a", "value": 1 }, { "name": "b", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }],
                               "backendConfig": { "secretSuffix": "app", "labels": { "a": "b" }, "configPath": "/k" } })),
        );
        let fields: Vec<&str> = found.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.backendConfig.configPath", "spec.planOnly"], "implemented peer fields pass: {found:?}");
        assert!(found[0].reason.contains("tofu-controller's backendConfig.configPath"), "{}", found[0].reason);
        assert!(found[1].reason.contains("spec.approvePlan"), "{}", found[1].reason);
    }

    #[test]
    fn a_typo_is_refused_listing_the_fields_of_its_level() {
        let found = unknown_fields(
            "Terraform",
            &terraform(json!({ "sourceRef": { "kind": "GitRepository", "name": "app", "namspace": "x" }, "interval": "1h" })),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.sourceRef.namspace");
        assert!(found[0].reason.contains("a typo") && found[0].reason.contains("namespace"), "{}", found[0].reason);
    }

    #[test]
    fn known_fields_free_form_values_and_metadata_pass() {
        let object = terraform(json!({
            "sourceRef": { "kind": "GitRepository", "name": "app" }, "interval": "1h", "path": "./",
            "vars": [{ "name": "a", "value": { "nested": { "anything": [1, 2] } } }],
            "runnerPodTemplate": { "metadata": { "labels": { "team": "a" } }, "spec": { "env": [{ "name": "X", "value": "1" }] } }
        }));
        assert_eq!(unknown_fields("Terraform", &object), vec![]);
        assert_eq!(unknown_fields("NoSuchKind", &object), vec![], "no CRD, nothing checked");
    }

    #[test]
    fn every_peer_field_listed_is_truly_unknown_to_the_schema() {
        // A field implemented since must leave this table: its message would never show.
        for (kind, path, _) in PEER_FIELDS {
            let schema = schema_of(kind).unwrap_or_else(|| panic!("{kind} has a CRD"));
            let mut node = &schema;
            let mut known = true;
            for part in path.split('.') {
                let (name, list) = part.strip_suffix("[]").map_or((part, false), |n| (n, true));
                let Some(props) = properties(node) else { break };
                match props.get(name) {
                    Some(_) => {
                        node = schema_child(node, name);
                        if list {
                            node = node.get("items").unwrap_or(node);
                        }
                    }
                    None => {
                        known = false;
                        break;
                    }
                }
            }
            assert!(!known, "{kind} {path} is in the schema: remove it from PEER_FIELDS");
        }
    }

    fn schema_child<'a>(node: &'a Value, name: &str) -> &'a Value {
        node.get("properties").and_then(|p| p.get(name)).unwrap_or(node)
    }

    #[test]
    fn list_indexes_are_generalised() {
        assert_eq!(general_path("spec.vars[12].valueFrom"), "spec.vars[].valueFrom");
        assert_eq!(general_path("spec.path"), "spec.path");
    }
}
