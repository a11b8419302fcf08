//! `export KIND [NAME] | --all`: objects as YAML to keep in Git, as `flux export` gives them:
//! apiVersion, kind, the metadata a person writes (name, namespace, labels, annotations) and
//! the spec. What the server or the controller wrote (status, uid, resourceVersion,
//! managedFields, creationTimestamp, generation, finalizers, owner references) is left out,
//! and so are the one-shot requests the CLI and the review page set as annotations (an
//! approval or a reconcile request in Git would be replayed on every apply).

use serde_yaml::{Mapping, Value};

use super::{CliError, CliKind, Result, kind_of};
use crate::api::Kind;
use crate::store::{ObjectStore, StoredObject};
use driftless_core::names::annotation;

/// The metadata fields a person writes; every other one is the server's.
const KEPT_METADATA: [&str; 4] = ["name", "namespace", "labels", "annotations"];

/// Annotations that are not part of an object's desired state: kubectl's bookkeeping and
/// the requests the CLI, the review page and Flux's CLI make.
const DROPPED_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    annotation::RECONCILE_REQUESTED_AT,
    annotation::FLUX_RECONCILE_REQUESTED_AT,
    annotation::APPROVE_PLAN,
    annotation::ACKNOWLEDGE_DRIFT,
    annotation::ACTED_BY,
];

/// What `export` selects.
pub struct Selection<'a> {
    /// `None` with `all`: every kind.
    pub kind: Option<&'a str>,
    pub name: Option<&'a str>,
    pub all: bool,
    /// `None`: every namespace.
    pub namespace: Option<&'a str>,
}

/// One object as it belongs in Git.
///
/// # Errors
/// When the object cannot be encoded (never for a stored object).
pub fn clean<K: StoredObject>(object: &K) -> Result<Value> {
    let encoded = serde_yaml::to_value(object).map_err(|e| CliError::Usage(format!("cannot encode {}: {e}", K::kind(&()))))?;
    let Value::Mapping(mut fields) = encoded else {
        return Err(CliError::Usage(format!("{} is not an object", K::kind(&()))));
    };
    let mut out = Mapping::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = fields.remove(key) {
            out.insert(key.into(), v);
        }
    }
    if let Some(Value::Mapping(meta)) = fields.remove("metadata") {
        out.insert("metadata".into(), Value::Mapping(clean_metadata(meta)));
    }
    fields.remove("status");
    // The rest is the spec (and, for kinds that have them, fields beside it such as data).
    for (k, v) in fields {
        out.insert(k, v);
    }
    Ok(Value::Mapping(out))
}

fn clean_metadata(meta: Mapping) -> Mapping {
    let mut out = Mapping::new();
    for key in KEPT_METADATA {
        let Some(value) = meta.get(key) else { continue };
        let value = match (key, value.clone()) {
            ("annotations", Value::Mapping(mut annotations)) => {
                for dropped in DROPPED_ANNOTATIONS {
                    annotations.remove(dropped);
                }
                Value::Mapping(annotations)
            }
            (_, v) => v,
        };
        let empty = matches!(&value, Value::Mapping(m) if m.is_empty()) || value.is_null();
        if !empty {
            out.insert(key.into(), value);
        }
    }
    out
}

/// The YAML of documents, each after a `---` line, as `flux export` prints them.
pub fn documents(values: &[Value]) -> Result<String> {
    let mut text = String::new();
    for v in values {
        let yaml = serde_yaml::to_string(v).map_err(|e| CliError::Usage(format!("cannot write YAML: {e}")))?;
        text.push_str("---\n");
        text.push_str(&yaml);
    }
    Ok(text)
}

async fn of_kind<K: StoredObject, S: ObjectStore>(store: &S, name: Option<&str>, namespace: Option<&str>) -> Result<Vec<Value>> {
    let mut items: Vec<K> = match (name, namespace) {
        (Some(n), Some(ns)) => match store.get::<K>(ns, n).await? {
            Some(o) => vec![o],
            None => {
                return Err(CliError::Usage(format!(
                    "{} {ns}/{n} not found; `driftless get {} -n {ns}` lists what there is",
                    K::kind(&()),
                    K::kind(&()).to_lowercase()
                )));
            }
        },
        (Some(_), None) => return Err(CliError::Usage("an object is named within one namespace: pass -n NAMESPACE instead of -A".into())),
        (None, Some(ns)) => store.list_in::<K>(ns).await?,
        (None, None) => store.list::<K>().await?,
    };
    items.sort_by_key(|o| (o.meta().namespace.clone(), o.meta().name.clone()));
    items.iter().map(clean).collect()
}

fn api_kind(kind: &str) -> Result<Kind> {
    match kind_of(kind)? {
        CliKind::Api(k) => Ok(k),
        other => Err(CliError::Usage(format!(
            "{other} objects are not exported (they may hold secrets); export a driftless kind: {}",
            Kind::ALL.map(Kind::segment).join(", ")
        ))),
    }
}

/// `export`: prints the selected objects as YAML documents.
///
/// # Errors
/// An unknown kind, a missing object, neither a name nor `--all`, or nothing to export.
pub async fn run<S: ObjectStore>(store: &S, selection: Selection<'_>) -> Result<()> {
    let kinds: Vec<Kind> = match (selection.kind, selection.all) {
        (Some(kind), _) => vec![api_kind(kind)?],
        (None, true) => Kind::ALL.to_vec(),
        (None, false) => {
            return Err(CliError::Usage("name a kind and an object, or pass --all (`driftless export kustomization --all`)".into()));
        }
    };
    let name = match (selection.name, selection.all) {
        (Some(_), true) => return Err(CliError::Usage("name an object or pass --all, not both".into())),
        (None, false) => {
            return Err(CliError::Usage(format!("name the {} to export, or pass --all for every one", kinds[0].segment())));
        }
        (name, _) => name,
    };
    let mut docs = Vec::new();
    for kind in &kinds {
        docs.extend(crate::with_kind!(*kind, K => of_kind::<K, S>(store, name, selection.namespace).await?));
    }
    if docs.is_empty() {
        let what = match selection.kind {
            Some(_) => format!("no {} objects", kinds[0].segment()),
            None => "no driftless objects".to_string(),
        };
        let place = selection.namespace.map(|ns| format!("in namespace {ns}")).unwrap_or_else(|| "in any namespace".into());
        return Err(CliError::Usage(format!("{what} {place}; nothing to export")));
    }
    print!("{}", documents(&docs)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GitRepository;

    #[test]
    fn an_exported_object_keeps_what_a_person_writes_and_drops_what_the_server_wrote() {
        let stored: GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1",
            "kind": "GitRepository",
            "metadata": {
                "name": "app", "namespace": "team", "uid": "1234", "resourceVersion": "99", "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["driftless.dev/finalizer"],
                "managedFields": [{"manager": "driftless", "operation": "Apply"}],
                "labels": {"tier": "infra"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "driftless.dev/reconcile-requested-at": "now",
                    "team.example.com/owner": "ops"
                }
            },
            "spec": {"url": "https://git.example.com/app", "interval": "1m", "ref": {"branch": "main"}},
            "status": {"conditions": []}
        }))
        .unwrap();
        let text = documents(&[clean(&stored).unwrap()]).unwrap();
        assert!(
            text.starts_with("---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: team\n"),
            "{text}"
        );
        for gone in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "finalizers",
            "managedFields",
            "last-applied",
            "requested-at",
            "status",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(text.contains("tier: infra") && text.contains("team.example.com/owner: ops") && text.contains("branch: main"), "{text}");
    }

    #[test]
    fn annotations_that_were_only_requests_leave_no_empty_map() {
        let meta: Mapping = serde_yaml::from_str("name: a\nannotations:\n  driftless.dev/approve-plan: plan-1\nlabels: {}\n").unwrap();
        let cleaned = clean_metadata(meta);
        assert_eq!(serde_yaml::to_string(&cleaned).unwrap(), "name: a\n");
    }
}
