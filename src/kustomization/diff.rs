//! What differs between a live object and what applying the source would make of it (the
//! server's dry run): the field-level drift of manifests, in the same `DriftObject` shape as
//! Terraform drift. Values are never recorded, only JSON pointers (a field may be secret).

use serde_json::Value;

use super::apply::comparable;
use crate::api::{DriftObject, ManifestIgnoreRule};

/// JSON pointers where `live` and `wanted` differ (added, removed or changed leaves).
pub fn changed_fields(live: &Value, wanted: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(&comparable(live), &comparable(wanted), String::new(), &mut out);
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{}", escape(k));
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => walk(l, r, p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                walk(l, r, format!("{path}/{i}"), out);
            }
        }
        _ if a != b => out.push(if path.is_empty() { "/".into() } else { path }),
        _ => {}
    }
}

/// Whether a rule leaves this field of this object alone.
fn ignored(rules: &[ManifestIgnoreRule], kind: &str, name: &str, field: &str) -> bool {
    rules.iter().any(|r| {
        r.kind.as_deref().is_none_or(|k| k == kind)
            && r.name.as_deref().is_none_or(|n| n == "*" || n == name)
            && (r.paths.is_empty() || r.paths.iter().any(|p| field == p || field.starts_with(&format!("{p}/"))))
    })
}

/// The drift entry of one object: `live` (None: deleted out of band) against the dry run of
/// the source's version; `None` when nothing (not ignored) differs.
pub fn drift_of(kind: &str, display_name: &str, live: Option<&Value>, wanted: &Value, rules: &[ManifestIgnoreRule]) -> Option<DriftObject> {
    let Some(live) = live else {
        return (!ignored(rules, kind, display_name, "/")).then(|| DriftObject {
            kind: kind.to_string(),
            name: display_name.to_string(),
            action: "delete".into(),
            fields: vec![],
        });
    };
    let fields: Vec<String> = changed_fields(live, wanted).into_iter().filter(|f| !ignored(rules, kind, display_name, f)).collect();
    (!fields.is_empty()).then(|| DriftObject { kind: kind.to_string(), name: display_name.to_string(), action: "update".into(), fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_json_pointers_and_server_bookkeeping_is_not_drift() {
        let live = json!({"metadata": {"name": "web", "resourceVersion": "5", "labels": {"a/b": "1"}}, "spec": {"replicas": 5, "template": {"x": [1, 2]}}, "status": {"ready": 1}});
        let wanted = json!({"metadata": {"name": "web", "resourceVersion": "9", "labels": {"a/b": "2"}}, "spec": {"replicas": 2, "template": {"x": [1, 3]}}});
        assert_eq!(changed_fields(&live, &wanted), vec!["/metadata/labels/a~1b", "/spec/replicas", "/spec/template/x/1"]);
    }

    #[test]
    fn ignore_rules_match_kind_name_and_pointer_prefix() {
        let rules =
            vec![ManifestIgnoreRule { kind: Some("Deployment".into()), name: Some("*".into()), paths: vec!["/spec/replicas".into()] }];
        let live = json!({"spec": {"replicas": 5, "paused": true}});
        let wanted = json!({"spec": {"replicas": 2, "paused": true}});
        assert_eq!(drift_of("Deployment", "prod/web", Some(&live), &wanted, &rules), None, "HPA-managed replicas are left alone");
        let d = drift_of("StatefulSet", "prod/db", Some(&live), &wanted, &rules).expect("other kinds still drift");
        assert_eq!((d.action.as_str(), d.fields), ("update", vec!["/spec/replicas".to_string()]));
        assert_eq!(drift_of("Deployment", "prod/web", None, &wanted, &rules).expect("deleted").action, "delete");
    }
}
