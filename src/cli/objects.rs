//! apply, get, delete, suspend/resume: plain object reads and writes, the same on a local
//! store and on a cluster, except `delete` (see [`delete_here`] and [`delete_on_cluster`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;

use super::{CliError, Result, kind_of};
use crate::api::{Alert, Bucket, Conditions, GitRepository, Kustomization, Provider, Receiver, Terraform, Validate, condition_type as ct};
use crate::cli::cluster::ClusterError;
use crate::cli::run::LocalContext;
use crate::store::{KubeStore, ObjectStore, StoredObject};

/// YAML files of a path: the file itself, or every .yaml/.yml below a directory, sorted.
fn yaml_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() || path.as_os_str() == "-" {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| CliError::File { path: path.display().to_string(), reason: e.to_string() })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(yaml_files(&p)?);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn decode<K: StoredObject>(doc: &Value, origin: &str) -> Result<K> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
        CliError::File { path: origin.into(), reason: format!("{} {name} is invalid: {path}: {}", K::kind(&()), e.into_inner()) }
    })
}

/// Stores one object (in `namespace` unless it names its own); says what changed.
async fn store<K: StoredObject, S: ObjectStore>(store: &S, mut object: K, namespace: &str) -> Result<String> {
    let meta = object.meta_mut();
    let ns = meta.namespace.get_or_insert_with(|| namespace.to_string()).clone();
    let name = meta.name.clone().unwrap_or_default();
    let before: Option<K> = store.get(&ns, &name).await?;
    let after = store.apply(&object).await?;
    let verb = match before {
        None => "created",
        Some(b) if serde_json::to_value(&b).ok() == serde_json::to_value(&after).ok() => "unchanged",
        Some(_) => "configured",
    };
    Ok(format!("{}/{name} {verb}", K::kind(&()).to_lowercase()))
}

/// `apply -f`: every document is decoded and validated before anything is stored; on a
/// cluster, storing is a server-side apply.
pub async fn apply<S: ObjectStore>(target: &S, paths: &[PathBuf], namespace: &str) -> Result<()> {
    let mut docs: Vec<(String, Value)> = Vec::new();
    for path in paths {
        for file in yaml_files(path)? {
            let origin = file.display().to_string();
            let text = if origin == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?
            } else {
                std::fs::read_to_string(&file).map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?
            };
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .map_err(|e| CliError::File { path: origin.clone(), reason: format!("invalid YAML: {e}") })?;
                if !value.is_null() {
                    docs.push((origin.clone(), value));
                }
            }
        }
    }
    // Decode and validate everything before storing anything: a bad file changes nothing.
    enum Decoded {
        Git(Box<GitRepository>),
        Bucket(Box<Bucket>),
        Tf(Box<Terraform>),
        Ks(Box<Kustomization>),
        Provider(Box<Provider>),
        Alert(Box<Alert>),
        Receiver(Box<Receiver>),
        Secret(Secret),
        ConfigMap(ConfigMap),
    }
    let mut decoded = Vec::new();
    let mut problems = Vec::new();
    for (origin, doc) in &docs {
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
        let item = match (api_version, kind) {
            ("driftless.dev/v1alpha1", "GitRepository") => decode::<GitRepository>(doc, origin).and_then(|o| {
                o.validate().map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?;
                Ok(Decoded::Git(Box::new(o)))
            }),
            ("driftless.dev/v1alpha1", "Bucket") => decode::<Bucket>(doc, origin).and_then(|o| {
                o.validate().map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?;
                Ok(Decoded::Bucket(Box::new(o)))
            }),
            ("driftless.dev/v1alpha1", "Terraform") => decode::<Terraform>(doc, origin).and_then(|o| {
                o.validate().map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?;
                Ok(Decoded::Tf(Box::new(o)))
            }),
            ("driftless.dev/v1alpha1", "Kustomization") => decode::<Kustomization>(doc, origin).and_then(|o| {
                o.validate().map_err(|e| CliError::File { path: origin.clone(), reason: e.to_string() })?;
                Ok(Decoded::Ks(Box::new(o)))
            }),
            // Checked by their status (`driftless get providers|alerts|receivers`), as Flux does.
            ("driftless.dev/v1alpha1", "Provider") => decode::<Provider>(doc, origin).map(|o| Decoded::Provider(Box::new(o))),
            ("driftless.dev/v1alpha1", "Alert") => decode::<Alert>(doc, origin).map(|o| Decoded::Alert(Box::new(o))),
            ("driftless.dev/v1alpha1", "Receiver") => decode::<Receiver>(doc, origin).map(|o| Decoded::Receiver(Box::new(o))),
            ("v1", "Secret") => decode::<Secret>(doc, origin).map(|mut s| {
                // As the API server does: stringData is folded into data on write.
                if let Some(strings) = s.string_data.take() {
                    let data = s.data.get_or_insert_with(Default::default);
                    for (k, v) in strings {
                        data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                    }
                }
                Decoded::Secret(s)
            }),
            ("v1", "ConfigMap") => decode::<ConfigMap>(doc, origin).map(Decoded::ConfigMap),
            (v, k) if v.contains("fluxcd.io") => Err(CliError::File {
                path: origin.clone(),
                reason: format!(
                    "{k} {name} has apiVersion {v}; driftless reads the same fields as driftless.dev/v1alpha1 — change the apiVersion"
                ),
            }),
            (v, k) => Err(CliError::File {
                path: origin.clone(),
                reason: format!(
                    "unsupported object {name} (apiVersion={v:?} kind={k:?}); driftless applies driftless.dev/v1alpha1 GitRepository, Bucket, Terraform, Kustomization, Provider, Alert and Receiver, and v1 Secret and ConfigMap"
                ),
            }),
        };
        match item {
            Ok(i) => decoded.push(i),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Usage(format!("nothing applied:\n  {}", problems.join("\n  "))));
    }
    for item in decoded {
        let line = match item {
            Decoded::Git(o) => store(target, *o, namespace).await?,
            Decoded::Bucket(o) => store(target, *o, namespace).await?,
            Decoded::Tf(o) => store(target, *o, namespace).await?,
            Decoded::Ks(o) => store(target, *o, namespace).await?,
            Decoded::Provider(o) => store(target, *o, namespace).await?,
            Decoded::Alert(o) => store(target, *o, namespace).await?,
            Decoded::Receiver(o) => store(target, *o, namespace).await?,
            Decoded::Secret(o) => store(target, o, namespace).await?,
            Decoded::ConfigMap(o) => store(target, o, namespace).await?,
        };
        println!("{line}");
    }
    Ok(())
}

/// Aligned columns, like kubectl.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A row of `get terraform` / `get kustomization`: both kinds share the status model.
fn reconciled_row<C: Conditions>(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    status: Option<&C>,
    common: impl Fn(&C) -> &crate::api::ObjectStatus,
    suspend: bool,
) -> Vec<String> {
    let (ready, reason, message) = ready_cells(status);
    let common = status.map(common);
    let plan = common
        .and_then(|s| s.plan.as_ref())
        .map(|p| if p.pending { format!("{} (pending)", p.id) } else { p.id.clone() })
        .unwrap_or_default();
    let drift = match common.and_then(|s| s.drift.as_ref()) {
        Some(d) if d.detected => "Drifted".to_string(),
        Some(d) if d.last_checked_at.is_some() => "None".to_string(),
        _ => "-".to_string(),
    };
    let suspended = if suspend { " (suspended)" } else { "" };
    vec![
        meta.namespace.clone().unwrap_or_default(),
        format!("{}{suspended}", meta.name.clone().unwrap_or_default()),
        ready,
        reason,
        plan,
        drift,
        message,
    ]
}

fn namespaced_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, suspended: bool) -> String {
    let suspended = if suspended { " (suspended)" } else { "" };
    format!("{}/{}{suspended}", meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

fn ready_cells<C: Conditions>(status: Option<&C>) -> (String, String, String) {
    match status.and_then(|s| s.condition(ct::READY)) {
        Some(c) => (format!("{:?}", c.status), c.reason.clone(), c.message.clone()),
        None => ("Unknown".into(), String::new(), "not reconciled yet".into()),
    }
}

/// An object as shown by `-o json|yaml`: without `managedFields`, server-side apply's
/// bookkeeping (as kubectl hides it).
fn shown<K: StoredObject>(object: &K) -> Result<Value> {
    let mut v = serde_json::to_value(object).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    Ok(v)
}

fn print_objects<K: StoredObject>(objects: &[K], output: &str) -> Result<()> {
    match output {
        "json" => {
            let mut shown: Vec<Value> = objects.iter().map(shown).collect::<Result<_>>()?;
            let v = if shown.len() == 1 { shown.remove(0) } else { Value::Array(shown) };
            println!("{}", serde_json::to_string_pretty(&v).map_err(|e| CliError::Usage(e.to_string()))?);
        }
        "yaml" => {
            for o in objects {
                println!("---\n{}", serde_yaml::to_string(&shown(o)?).map_err(|e| CliError::Usage(e.to_string()))?);
            }
        }
        other => return Err(CliError::Usage(format!("unknown output format {other:?}; use table, json or yaml"))),
    }
    Ok(())
}

/// `get KIND [NAME]` in `namespace`, or (`None`, `-A`) in every namespace.
pub async fn get<S: ObjectStore>(store: &S, kind: &str, name: Option<&str>, namespace: Option<&str>, output: &str) -> Result<()> {
    async fn select<K: StoredObject, S: ObjectStore>(store: &S, name: Option<&str>, namespace: Option<&str>) -> Result<Vec<K>> {
        match (name, namespace) {
            (Some(n), Some(ns)) => match store.get::<K>(ns, n).await? {
                Some(o) => Ok(vec![o]),
                None => Err(CliError::Usage(format!("{} {ns}/{n} not found", K::kind(&())))),
            },
            (Some(_), None) => Err(CliError::Usage("an object is named within one namespace: pass -n NAMESPACE instead of -A".into())),
            (None, Some(ns)) => Ok(store.list_in::<K>(ns).await?),
            (None, None) => Ok(store.list::<K>().await?),
        }
    }
    match kind_of(kind)? {
        "Terraform" => {
            let items: Vec<Terraform> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> =
                items.iter().map(|t| reconciled_row(&t.metadata, t.status.as_ref(), |s| &s.common, t.spec.suspend)).collect();
            print_table(&["NAMESPACE", "NAME", "READY", "REASON", "PLAN", "DRIFT", "MESSAGE"], &rows);
        }
        "Kustomization" => {
            let items: Vec<Kustomization> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> =
                items.iter().map(|k| reconciled_row(&k.metadata, k.status.as_ref(), |s| &s.common, k.spec.suspend)).collect();
            print_table(&["NAMESPACE", "NAME", "READY", "REASON", "PLAN", "DRIFT", "MESSAGE"], &rows);
        }
        "GitRepository" => {
            let items: Vec<GitRepository> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|g| {
                    let s = g.status.as_ref();
                    let (ready, _, message) = ready_cells(s);
                    let revision = s.and_then(|s| s.artifact.as_ref()).map(|a| a.revision.clone()).unwrap_or_default();
                    vec![
                        g.metadata.namespace.clone().unwrap_or_default(),
                        g.metadata.name.clone().unwrap_or_default(),
                        g.spec.url.clone(),
                        ready,
                        revision,
                        message,
                    ]
                })
                .collect();
            print_table(&["NAMESPACE", "NAME", "URL", "READY", "REVISION", "MESSAGE"], &rows);
        }
        "Bucket" => {
            let items: Vec<Bucket> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|b| {
                    let s = b.status.as_ref();
                    let (ready, _, message) = ready_cells(s);
                    let revision = s.and_then(|s| s.artifact.as_ref()).map(|a| a.revision.clone()).unwrap_or_default();
                    let suspended = if b.spec.suspend { " (suspended)" } else { "" };
                    vec![
                        b.metadata.namespace.clone().unwrap_or_default(),
                        format!("{}{suspended}", b.metadata.name.clone().unwrap_or_default()),
                        format!("{}/{}", b.spec.endpoint, b.spec.bucket_name),
                        ready,
                        revision,
                        message,
                    ]
                })
                .collect();
            print_table(&["NAMESPACE", "NAME", "BUCKET", "READY", "REVISION", "MESSAGE"], &rows);
        }
        "Provider" => {
            let items: Vec<Provider> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|p| {
                    let (ready, _, message) = ready_cells(p.status.as_ref());
                    let last = p.status.as_ref().and_then(|s| s.last_delivered_at.clone()).unwrap_or_default();
                    vec![namespaced_name(&p.metadata, p.spec.suspend), p.spec.type_.clone(), ready, last, message]
                })
                .collect();
            print_table(&["NAMESPACE/NAME", "TYPE", "READY", "LAST DELIVERY", "MESSAGE"], &rows);
        }
        "Alert" => {
            let items: Vec<Alert> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|a| {
                    let (ready, _, message) = ready_cells(a.status.as_ref());
                    let sources: Vec<String> = a.spec.event_sources.iter().map(|s| format!("{}/{}", s.kind, s.name)).collect();
                    vec![
                        namespaced_name(&a.metadata, a.spec.suspend),
                        a.spec.provider_ref.name.clone(),
                        a.spec.event_severity.clone().unwrap_or_else(|| "info".into()),
                        sources.join(","),
                        ready,
                        message,
                    ]
                })
                .collect();
            print_table(&["NAMESPACE/NAME", "PROVIDER", "SEVERITY", "SOURCES", "READY", "MESSAGE"], &rows);
        }
        "Receiver" => {
            let items: Vec<Receiver> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|r| {
                    let s = r.status.as_ref();
                    let (ready, _, message) = ready_cells(s);
                    let path = s.and_then(|s| s.webhook_path.clone()).unwrap_or_default();
                    vec![namespaced_name(&r.metadata, r.spec.suspend), r.spec.type_.clone(), ready, path, message]
                })
                .collect();
            print_table(&["NAMESPACE/NAME", "TYPE", "READY", "PATH", "MESSAGE"], &rows);
        }
        "Secret" => {
            let items: Vec<Secret> = select(store, name, namespace).await?;
            // As kubectl: values only on explicit request (-o json|yaml), base64-encoded.
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|s| {
                    let keys: Vec<String> = s.data.as_ref().map(|d| d.keys().cloned().collect()).unwrap_or_default();
                    vec![s.metadata.namespace.clone().unwrap_or_default(), s.metadata.name.clone().unwrap_or_default(), keys.join(",")]
                })
                .collect();
            print_table(&["NAMESPACE", "NAME", "KEYS"], &rows);
        }
        _ => {
            let items: Vec<ConfigMap> = select(store, name, namespace).await?;
            if output != "table" {
                return print_objects(&items, output);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|c| {
                    vec![
                        c.metadata.namespace.clone().unwrap_or_default(),
                        c.metadata.name.clone().unwrap_or_default(),
                        c.data.as_ref().map(|d| d.len()).unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            print_table(&["NAMESPACE", "NAME", "DATA"], &rows);
        }
    }
    Ok(())
}

/// `delete` on a local store: a Terraform's deletion is reconciled here and now (its
/// resources are destroyed first when it asks for that).
pub async fn delete_here(ctx: &LocalContext, kind: &str, namespace: &str, name: &str) -> Result<()> {
    let gone = match kind_of(kind)? {
        "Terraform" => {
            let marked = ctx
                .store
                .update::<Terraform>(namespace, name, |t| {
                    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
                })
                .await?;
            if marked.spec.destroy_resources_on_deletion {
                println!("terraform/{name}: destroying its resources before deletion");
            }
            crate::terraform::reconcile(ctx, namespace, name, true).await?;
            match ctx.store.get::<Terraform>(namespace, name).await? {
                None => true,
                Some(t) => {
                    let (_, reason, message) = ready_cells(t.status.as_ref());
                    return Err(CliError::Usage(format!("terraform/{name} kept: {reason}: {message}")));
                }
            }
        }
        "GitRepository" => ctx.store.delete::<GitRepository>(namespace, name).await?,
        "Bucket" => ctx.store.delete::<Bucket>(namespace, name).await?,
        "Secret" => ctx.store.delete::<Secret>(namespace, name).await?,
        _ => ctx.store.delete::<ConfigMap>(namespace, name).await?,
    };
    if !gone {
        return Err(CliError::Usage(format!("{} {namespace}/{name} not found", kind_of(kind)?)));
    }
    println!("{}/{name} deleted", kind_of(kind)?.to_lowercase());
    Ok(())
}

pub async fn set_suspend<S: ObjectStore>(store: &S, kind: &str, name: &str, namespace: &str, suspend: bool) -> Result<()> {
    match kind_of(kind)? {
        "Terraform" => {
            store.update::<Terraform>(namespace, name, |t| t.spec.suspend = suspend).await?;
        }
        "GitRepository" => {
            store.update::<GitRepository>(namespace, name, |g| g.spec.suspend = suspend).await?;
        }
        "Bucket" => {
            store.update::<Bucket>(namespace, name, |b| b.spec.suspend = suspend).await?;
        }
        "Kustomization" => {
            store.update::<Kustomization>(namespace, name, |k| k.spec.suspend = suspend).await?;
        }
        other => return Err(CliError::Usage(format!("{other} cannot be suspended"))),
    }
    println!("{}/{name} {}", kind_of(kind)?.to_lowercase(), if suspend { "suspended" } else { "resumed" });
    Ok(())
}

/// `delete` on a cluster, as `kubectl delete --wait`: the API deletes the object once the
/// controller has finished its cleanup (driftless's finalizer), so this waits for it to be
/// gone, at most `timeout`.
pub async fn delete_on_cluster(store: &KubeStore, kind: &str, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
    let kind = kind_of(kind)?;
    let shown = format!("{}/{name}", kind.to_lowercase());
    let controller = || "is the controller running? (`driftless check`)".to_string();
    let left = match kind {
        "Terraform" => {
            if store.get::<Terraform>(namespace, name).await?.is_some_and(|t| t.spec.destroy_resources_on_deletion) {
                eprintln!("► {shown}: the controller destroys its resources before deletion");
            }
            delete_and_wait::<Terraform>(store, namespace, name, timeout).await?.map(|tf| {
                let (_, reason, message) = ready_cells(tf.status.as_ref());
                format!("{reason}: {message}")
            })
        }
        "GitRepository" => delete_and_wait::<GitRepository>(store, namespace, name, timeout).await?.map(|_| controller()),
        "Bucket" => delete_and_wait::<Bucket>(store, namespace, name, timeout).await?.map(|_| controller()),
        "Kustomization" => delete_and_wait::<Kustomization>(store, namespace, name, timeout).await?.map(|k| {
            let (_, reason, message) = ready_cells(k.status.as_ref());
            format!("{reason}: {message}")
        }),
        "Secret" => delete_and_wait::<Secret>(store, namespace, name, timeout).await?.map(|_| controller()),
        _ => delete_and_wait::<ConfigMap>(store, namespace, name, timeout).await?.map(|_| controller()),
    };
    if let Some(why) = left {
        let after = humantime::format_duration(timeout);
        return Err(ClusterError::Timeout(format!("{shown} is still being deleted after {after}: {why}")).into());
    }
    println!("{shown} deleted");
    Ok(())
}

/// Deletes, then polls until the object is gone; returns it as last seen if it is still
/// there after `timeout`.
async fn delete_and_wait<K: StoredObject>(store: &KubeStore, namespace: &str, name: &str, timeout: Duration) -> Result<Option<K>> {
    if !store.request_delete::<K>(namespace, name).await? {
        return Err(CliError::Usage(format!("{} {namespace}/{name} not found", K::kind(&()))));
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = store.get::<K>(namespace, name).await?;
        if left.is_none() || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
