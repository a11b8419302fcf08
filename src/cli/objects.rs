//! apply, get, delete, suspend/resume: plain object reads and writes, the same on a local
//! store and on a cluster, except `delete` (see [`delete_here`] and [`delete_on_cluster`]).
//! Every verb is written once, generic over the kind, and reaches a kind's type through
//! [`with_kind!`](crate::with_kind).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::Value;

use super::{CliError, CliKind, Result, kind_of};
use crate::api::{
    Alert, Bucket, Condition, Conditions, GitRepository, Kind, Kustomization, OciRepository, Provider, Receiver, Reconciled, StatusModel,
    Terraform, Validate, condition_type as ct,
};
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

/// Decodes and validates an object of the API: first against its CRD schema (a field the
/// schema lacks is refused by name, as the API server's strict validation does), then the
/// checks beyond the schema.
fn checked<K: StoredObject + Validate>(doc: &Value, origin: &str) -> Result<K> {
    let unknown = crate::api::unknown_fields(&K::kind(&()), doc);
    if !unknown.is_empty() {
        let meta = |key: &str| doc.pointer(&format!("/metadata/{key}")).and_then(Value::as_str).map(str::to_string);
        let object = format!(
            "{}/{}/{}",
            K::kind(&()),
            meta("namespace").unwrap_or_else(|| "default".into()),
            meta("name").unwrap_or_else(|| "<unnamed>".into())
        );
        let error = crate::api::ValidationError { object, errors: unknown };
        return Err(CliError::File { path: origin.into(), reason: error.to_string() });
    }
    let object = decode::<K>(doc, origin)?;
    object.validate().map_err(|e| CliError::File { path: origin.into(), reason: e.to_string() })?;
    Ok(object)
}

/// A Secret as the API server stores it: `stringData` folded into `data`.
fn secret(doc: &Value, origin: &str) -> Result<Secret> {
    let mut s = decode::<Secret>(doc, origin)?;
    if let Some(strings) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    Ok(s)
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

/// What a document is, at the YAML boundary: a kind of the API, a core kind, or an error.
fn kind_of_document(doc: &Value, origin: &str) -> Result<CliKind> {
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
    let ours = format!("{}/{}", crate::api::GROUP, crate::api::VERSION);
    if api_version == ours
        && let Some(k) = Kind::from_api(kind)
    {
        return Ok(CliKind::Api(k));
    }
    match (api_version, kind) {
        ("v1", "Secret") => Ok(CliKind::Secret),
        ("v1", "ConfigMap") => Ok(CliKind::ConfigMap),
        (v, k) if v.contains("fluxcd.io") => Err(CliError::File {
            path: origin.into(),
            reason: format!(
                "{k} {name} has apiVersion {v}; driftless reads the same fields as {ours} — change the apiVersion (`driftless migrate PATH` does it for a repository)"
            ),
        }),
        (v, k) => {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            Err(CliError::File {
                path: origin.into(),
                reason: format!(
                    "unsupported object {name} (apiVersion={v:?} kind={k:?}); driftless applies {ours} {}, and v1 Secret and ConfigMap",
                    kinds.join(", ")
                ),
            })
        }
    }
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
    apply_documents(target, &docs, namespace).await
}

/// Stores documents (each with where it came from, for messages), validating every one
/// before storing any: the one path of `apply -f` and `create`.
pub async fn apply_documents<S: ObjectStore>(target: &S, docs: &[(String, Value)], namespace: &str) -> Result<()> {
    // Decode and validate everything before storing anything: a bad file changes nothing.
    let mut decoded = Vec::new();
    let mut problems = Vec::new();
    for (origin, doc) in docs {
        let valid = kind_of_document(doc, origin).and_then(|kind| {
            match kind {
                CliKind::Api(k) => crate::with_kind!(k, K => checked::<K>(doc, origin).map(drop)),
                CliKind::Secret => secret(doc, origin).map(drop),
                CliKind::ConfigMap => decode::<ConfigMap>(doc, origin).map(drop),
            }
            .map(|()| kind)
        });
        match valid {
            Ok(kind) => decoded.push((kind, origin, doc)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Usage(format!("nothing applied:\n  {}", problems.join("\n  "))));
    }
    for (kind, origin, doc) in decoded {
        let line = match kind {
            CliKind::Api(k) => crate::with_kind!(k, K => store(target, checked::<K>(doc, origin)?, namespace).await?),
            CliKind::Secret => store(target, secret(doc, origin)?, namespace).await?,
            CliKind::ConfigMap => store(target, decode::<ConfigMap>(doc, origin)?, namespace).await?,
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

/// How `get` shows a kind as a table.
trait Listing: StoredObject {
    const HEADER: &'static [&'static str];
    fn row(&self) -> Vec<String>;
    /// Whether the kind has status conditions `--status-selector` can select on.
    const HAS_CONDITIONS: bool = true;
    /// The conditions `--status-selector` reads; `None` for a kind without status.
    fn conditions(&self) -> Option<&[Condition]>;
}

/// `--status-selector TYPE=STATUS` (or `TYPE!=STATUS`), as `flux get` takes it: objects
/// whose condition TYPE has (or has not) STATUS, any case; an object without that condition
/// has status Unknown, as its table row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSelector {
    type_: String,
    status: String,
    negated: bool,
}

impl StatusSelector {
    /// # Errors
    /// Text that is not `CONDITION=STATUS` or `CONDITION!=STATUS` with a status of true,
    /// false or unknown.
    pub fn parse(text: &str) -> Result<StatusSelector> {
        let usage = || {
            CliError::Usage(format!(
                "--status-selector {text:?}: give CONDITION=STATUS or CONDITION!=STATUS, e.g. ready=false (STATUS is true, false or unknown)"
            ))
        };
        let (negated, (type_, status)) = match text.split_once("!=") {
            Some(parts) => (true, parts),
            None => (false, text.split_once('=').ok_or_else(usage)?),
        };
        let (type_, status) = (type_.trim(), status.trim().to_ascii_lowercase());
        if type_.is_empty() || !matches!(status.as_str(), "true" | "false" | "unknown") {
            return Err(usage());
        }
        Ok(StatusSelector { type_: type_.to_string(), status, negated })
    }

    fn matches(&self, conditions: &[Condition]) -> bool {
        let status = conditions.iter().find(|c| c.type_.eq_ignore_ascii_case(&self.type_)).map(|c| format!("{:?}", c.status));
        status.unwrap_or_else(|| "Unknown".into()).eq_ignore_ascii_case(&self.status) != self.negated
    }
}

fn reconciled_conditions<K: Reconciled>(o: &K) -> Option<&[Condition]> {
    Some(o.status().map(|s| s.conditions()).unwrap_or_default())
}

const PLANNED_HEADER: &[&str] = &["NAMESPACE", "NAME", "READY", "REASON", "PLAN", "DRIFT", "MESSAGE"];

/// A row of a kind that plans (Terraform, Kustomization): they share the status model.
fn planned_row<K: Reconciled>(o: &K) -> Vec<String> {
    let (ready, reason, message) = ready_cells(o.status());
    let common = o.common_status();
    let plan = common.plan.as_ref().map(|p| if p.pending { format!("{} (pending)", p.id) } else { p.id.clone() }).unwrap_or_default();
    let drift = match common.drift.as_ref() {
        Some(d) if d.detected => "Drifted".to_string(),
        Some(d) if d.last_checked_at.is_some() => "None".to_string(),
        _ => "-".to_string(),
    };
    let suspended = if o.suspended() { " (suspended)" } else { "" };
    vec![o.namespace_or_default(), format!("{}{suspended}", o.name_or_empty()), ready, reason, plan, drift, message]
}

/// A row of a source: where it reads from, and the revision it serves.
fn source_row<K: Reconciled>(o: &K, from: String) -> Vec<String> {
    let (ready, _, message) = ready_cells(o.status());
    let revision = o.status().and_then(|s| s.artifact()).map(|a| a.revision.clone()).unwrap_or_default();
    let suspended = if o.suspended() { " (suspended)" } else { "" };
    vec![o.namespace_or_default(), format!("{}{suspended}", o.name_or_empty()), from, ready, revision, message]
}

impl Listing for Terraform {
    const HEADER: &'static [&'static str] = PLANNED_HEADER;
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        planned_row(self)
    }
}

impl Listing for Kustomization {
    const HEADER: &'static [&'static str] = PLANNED_HEADER;
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        planned_row(self)
    }
}

impl Listing for GitRepository {
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "URL", "READY", "REVISION", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        source_row(self, self.spec.url.clone())
    }
}

impl Listing for Bucket {
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "BUCKET", "READY", "REVISION", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        source_row(self, format!("{}/{}", self.spec.endpoint, self.spec.bucket_name))
    }
}

impl Listing for OciRepository {
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "URL", "READY", "REVISION", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        source_row(self, self.spec.url.clone())
    }
}

impl Listing for crate::api::HelmRepository {
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "URL", "READY", "REVISION", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        source_row(self, self.spec.url.clone())
    }
}

impl Listing for crate::api::HelmChart {
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "CHART", "READY", "REVISION", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        reconciled_conditions(self)
    }
    fn row(&self) -> Vec<String> {
        source_row(self, format!("{} {}/{}", self.spec.chart, self.spec.source_ref.kind, self.spec.source_ref.name))
    }
}

impl Listing for Provider {
    const HEADER: &'static [&'static str] = &["NAMESPACE/NAME", "TYPE", "READY", "LAST DELIVERY", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        Some(self.status.as_ref().map(|s| s.conditions()).unwrap_or_default())
    }
    fn row(&self) -> Vec<String> {
        let (ready, _, message) = ready_cells(self.status.as_ref());
        let last = self.status.as_ref().and_then(|s| s.last_delivered_at.clone()).unwrap_or_default();
        vec![namespaced_name(&self.metadata, self.spec.suspend), self.spec.type_.clone(), ready, last, message]
    }
}

impl Listing for Alert {
    const HEADER: &'static [&'static str] = &["NAMESPACE/NAME", "PROVIDER", "SEVERITY", "SOURCES", "READY", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        Some(self.status.as_ref().map(|s| s.conditions()).unwrap_or_default())
    }
    fn row(&self) -> Vec<String> {
        let (ready, _, message) = ready_cells(self.status.as_ref());
        let sources: Vec<String> = self.spec.event_sources.iter().map(|s| format!("{}/{}", s.kind, s.name)).collect();
        vec![
            namespaced_name(&self.metadata, self.spec.suspend),
            self.spec.provider_ref.name.clone(),
            self.spec.event_severity.clone().unwrap_or_else(|| "info".into()),
            sources.join(","),
            ready,
            message,
        ]
    }
}

impl Listing for Receiver {
    const HEADER: &'static [&'static str] = &["NAMESPACE/NAME", "TYPE", "READY", "PATH", "MESSAGE"];
    fn conditions(&self) -> Option<&[Condition]> {
        Some(self.status.as_ref().map(|s| s.conditions()).unwrap_or_default())
    }
    fn row(&self) -> Vec<String> {
        let s = self.status.as_ref();
        let (ready, _, message) = ready_cells(s);
        let path = s.and_then(|s| s.webhook_path.clone()).unwrap_or_default();
        vec![namespaced_name(&self.metadata, self.spec.suspend), self.spec.type_.clone(), ready, path, message]
    }
}

/// As kubectl: a Secret's values only on explicit request (-o json|yaml), base64-encoded.
impl Listing for Secret {
    const HAS_CONDITIONS: bool = false;
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "KEYS"];
    fn conditions(&self) -> Option<&[Condition]> {
        None
    }
    fn row(&self) -> Vec<String> {
        let keys: Vec<String> = self.data.as_ref().map(|d| d.keys().cloned().collect()).unwrap_or_default();
        vec![self.metadata.namespace.clone().unwrap_or_default(), self.metadata.name.clone().unwrap_or_default(), keys.join(",")]
    }
}

impl Listing for ConfigMap {
    const HAS_CONDITIONS: bool = false;
    const HEADER: &'static [&'static str] = &["NAMESPACE", "NAME", "DATA"];
    fn conditions(&self) -> Option<&[Condition]> {
        None
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.metadata.namespace.clone().unwrap_or_default(),
            self.metadata.name.clone().unwrap_or_default(),
            self.data.as_ref().map(|d| d.len()).unwrap_or(0).to_string(),
        ]
    }
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

fn print_values(shown: Vec<Value>, output: &str) -> Result<()> {
    match output {
        "json" => {
            let mut shown = shown;
            let v = if shown.len() == 1 { shown.remove(0) } else { Value::Array(shown) };
            println!("{}", serde_json::to_string_pretty(&v).map_err(|e| CliError::Usage(e.to_string()))?);
        }
        "yaml" => {
            for o in &shown {
                println!("---\n{}", serde_yaml::to_string(o).map_err(|e| CliError::Usage(e.to_string()))?);
            }
        }
        other => return Err(CliError::Usage(format!("unknown output format {other:?}; use table, json or yaml"))),
    }
    Ok(())
}

/// The objects of a kind `get` shows: one by name, or those of a namespace (`None`: all),
/// with the status selector applied.
async fn select<K: Listing, S: ObjectStore>(
    store: &S,
    name: Option<&str>,
    namespace: Option<&str>,
    selector: Option<&StatusSelector>,
) -> Result<Vec<K>> {
    let mut items: Vec<K> = match (name, namespace) {
        (Some(n), Some(ns)) => match store.get::<K>(ns, n).await? {
            Some(o) => vec![o],
            None => return Err(CliError::Usage(format!("{} {ns}/{n} not found", K::kind(&())))),
        },
        (Some(_), None) => return Err(CliError::Usage("an object is named within one namespace: pass -n NAMESPACE instead of -A".into())),
        (None, Some(ns)) => store.list_in::<K>(ns).await?,
        (None, None) => store.list::<K>().await?,
    };
    if let Some(selector) = selector {
        items.retain(|o| o.conditions().is_some_and(|c| selector.matches(c)));
    }
    Ok(items)
}

fn check_selectable<K: Listing>(selector: Option<&StatusSelector>) -> Result<()> {
    match selector {
        Some(_) if !K::HAS_CONDITIONS => {
            Err(CliError::Usage(format!("{} objects have no status conditions; --status-selector selects driftless objects", K::kind(&()))))
        }
        _ => Ok(()),
    }
}

async fn list<K: Listing, S: ObjectStore>(
    store: &S,
    name: Option<&str>,
    namespace: Option<&str>,
    output: &str,
    selector: Option<&StatusSelector>,
) -> Result<()> {
    check_selectable::<K>(selector)?;
    let items: Vec<K> = select(store, name, namespace, selector).await?;
    if output != "table" {
        return print_values(items.iter().map(shown).collect::<Result<_>>()?, output);
    }
    let rows: Vec<Vec<String>> = items.iter().map(Listing::row).collect();
    print_table(K::HEADER, &rows);
    Ok(())
}

/// `get KIND [NAME]` in `namespace`, or (`None`, `-A`) in every namespace.
pub async fn get<S: ObjectStore>(
    store: &S,
    kind: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    output: &str,
    selector: Option<&StatusSelector>,
) -> Result<()> {
    match kind_of(kind)? {
        CliKind::Api(k) => crate::with_kind!(k, K => list::<K, S>(store, name, namespace, output, selector).await),
        CliKind::Secret => list::<Secret, S>(store, name, namespace, output, selector).await,
        CliKind::ConfigMap => list::<ConfigMap, S>(store, name, namespace, output, selector).await,
    }
}

/// `get KIND --watch`: the table, then a row whenever an object's row is new or changed
/// (read every second), until the process is interrupted.
pub async fn watch<S: ObjectStore>(
    store: &S,
    kind: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    selector: Option<&StatusSelector>,
) -> Result<()> {
    match kind_of(kind)? {
        CliKind::Api(k) => crate::with_kind!(k, K => watch_kind::<K, S>(store, name, namespace, selector).await),
        CliKind::Secret | CliKind::ConfigMap => Err(CliError::Usage("--watch shows driftless kinds".into())),
    }
}

async fn watch_kind<K: Listing, S: ObjectStore>(
    store: &S,
    name: Option<&str>,
    namespace: Option<&str>,
    selector: Option<&StatusSelector>,
) -> Result<()> {
    use std::io::Write as _;
    check_selectable::<K>(selector)?;
    let mut shown: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    let mut first = true;
    loop {
        let items: Vec<K> = select(store, name, namespace, selector).await?;
        let rows: Vec<Vec<String>> = items.iter().map(Listing::row).collect();
        let fresh: Vec<Vec<String>> = items
            .iter()
            .zip(rows)
            .filter_map(|(o, row)| {
                let meta = o.meta();
                let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
                (shown.get(&key) != Some(&row)).then(|| {
                    shown.insert(key, row.clone());
                    row
                })
            })
            .collect();
        if first {
            print_table(K::HEADER, &fresh);
            first = false;
        } else {
            for row in &fresh {
                println!("{}", row.join("   "));
            }
        }
        let _ = std::io::stdout().flush();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One kind's part of `get all`: its header and rows, each name prefixed with the kind
/// (`terraform/app`) as `flux get all` shows them.
async fn all_of<K: Listing, S: ObjectStore>(
    store: &S,
    kind: Kind,
    namespace: Option<&str>,
    selector: Option<&StatusSelector>,
) -> Result<(Vec<Value>, Vec<Vec<String>>, &'static [&'static str])> {
    let items: Vec<K> = select(store, None, namespace, selector).await?;
    let column = K::HEADER.iter().position(|h| h.ends_with("NAME")).unwrap_or(0);
    let rows = items
        .iter()
        .map(|o| {
            let mut row = o.row();
            let named = match row[column].split_once('/') {
                // `NAMESPACE/NAME`: the kind goes before the name.
                Some((ns, n)) if K::HEADER[column].contains('/') => format!("{ns}/{}/{n}", kind.segment()),
                _ => format!("{}/{}", kind.segment(), row[column]),
            };
            row[column] = named;
            row
        })
        .collect();
    Ok((items.iter().map(shown).collect::<Result<_>>()?, rows, K::HEADER))
}

/// `get all`: every driftless kind, one table per kind that has objects, as `flux get all`.
pub async fn get_all<S: ObjectStore>(
    store: &S,
    name: Option<&str>,
    namespace: Option<&str>,
    output: &str,
    selector: Option<&StatusSelector>,
) -> Result<()> {
    if name.is_some() {
        return Err(CliError::Usage(
            "`get all` lists every object; to show one, name its kind (`driftless get kustomization NAME`)".into(),
        ));
    }
    let mut values = Vec::new();
    let mut tables = Vec::new();
    for kind in Kind::ALL {
        let (shown, rows, header) = crate::with_kind!(kind, K => all_of::<K, S>(store, kind, namespace, selector).await?);
        values.extend(shown);
        if !rows.is_empty() {
            tables.push((header, rows));
        }
    }
    if output != "table" {
        return print_values(values, output);
    }
    if tables.is_empty() {
        let place = namespace.map(|ns| format!("in namespace {ns}")).unwrap_or_else(|| "in any namespace".into());
        let which = if selector.is_some() { "matching the status selector " } else { "" };
        eprintln!("no driftless objects {which}{place}");
        return Ok(());
    }
    for (i, (header, rows)) in tables.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_table(header, rows);
    }
    Ok(())
}

/// `delete` on a local store: a reconciled object's deletion is reconciled here and now (a
/// Terraform destroys its resources first when it asks for that, a Kustomization prunes).
pub async fn delete_here(ctx: &LocalContext, kind: CliKind, namespace: &str, name: &str) -> Result<()> {
    let gone = match kind {
        CliKind::Api(k) if k.is_reconciled() => {
            crate::with_reconciled_kind!(k, K => delete_reconciled::<K>(ctx, namespace, name).await?, _ => false)
        }
        CliKind::Api(k) => crate::with_kind!(k, K => ctx.store.delete::<K>(namespace, name).await?),
        CliKind::Secret => ctx.store.delete::<Secret>(namespace, name).await?,
        CliKind::ConfigMap => ctx.store.delete::<ConfigMap>(namespace, name).await?,
    };
    if !gone {
        return Err(CliError::Usage(format!("{kind} {namespace}/{name} not found")));
    }
    println!("{}/{name} deleted", kind.segment());
    Ok(())
}

/// Marks the object deleted and runs its cleanup; true when it is gone.
async fn delete_reconciled<K: crate::reconcile::Reconcile>(ctx: &LocalContext, namespace: &str, name: &str) -> Result<bool> {
    if ctx.store.get::<K>(namespace, name).await?.is_none() {
        return Ok(false);
    }
    let marked = ctx
        .store
        .update::<K>(namespace, name, |o| {
            o.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
        })
        .await?;
    if let Some(cleanup) = marked.cleanup_on_deletion() {
        println!("{}/{name}: {cleanup} before deletion", K::KIND.segment());
    }
    crate::reconcile::object::<K, _, _>(ctx, namespace, name, true).await?;
    match ctx.store.get::<K>(namespace, name).await? {
        None => Ok(true),
        Some(o) => {
            let (_, reason, message) = ready_cells(o.status());
            Err(CliError::Usage(format!("{}/{name} kept: {reason}: {message}", K::KIND.segment())))
        }
    }
}

/// What `suspend`/`resume` act on: one object, or every object of the kind in a namespace
/// (`None`: every namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selected {
    One { name: String, namespace: String },
    All { namespace: Option<String> },
}

impl Selected {
    /// From `NAME`, `--all` and the scope (`-n`/`-A`).
    ///
    /// # Errors
    /// Neither a name nor `--all`, both, or `-A` for one object.
    pub fn of(name: Option<String>, all: bool, namespace: Option<String>) -> Result<Selected> {
        match (name, all, namespace) {
            (Some(_), true, _) => Err(CliError::Usage("name an object or pass --all, not both".into())),
            (None, false, _) => Err(CliError::Usage("name the object, or pass --all for every object of the kind".into())),
            (Some(_), false, None) => {
                Err(CliError::Usage("an object is named within one namespace: pass -n NAMESPACE instead of -A".into()))
            }
            (Some(name), false, Some(namespace)) => Ok(Selected::One { name, namespace }),
            (None, true, namespace) => Ok(Selected::All { namespace }),
        }
    }
}

/// `suspend`/`resume`: sets `spec.suspend` of one object or of every object of the kind.
pub async fn suspend<S: ObjectStore>(store: &S, kind: &str, selected: Selected, suspend: bool) -> Result<()> {
    let kind = match kind_of(kind)? {
        CliKind::Api(k) if k.is_reconciled() => k,
        other => {
            let kinds: Vec<&str> = Kind::RECONCILED.iter().map(|k| k.segment()).collect();
            return Err(CliError::Usage(format!("{other} cannot be suspended; suspend a {}", kinds.join(", "))));
        }
    };
    let targets: Vec<(String, String)> = match selected {
        Selected::One { name, namespace } => vec![(namespace, name)],
        Selected::All { namespace } => crate::with_reconciled_kind!(kind, K => {
            let all: Vec<K> = match namespace.as_deref() {
                Some(ns) => store.list_in::<K>(ns).await?,
                None => store.list::<K>().await?,
            };
            if all.is_empty() {
                let place = namespace.map(|ns| format!("in namespace {ns}")).unwrap_or_else(|| "in any namespace".into());
                return Err(CliError::Usage(format!("no {} objects {place}", kind.segment())));
            }
            let mut all: Vec<(String, String)> = all.iter().map(|o| (o.namespace_or_default(), o.name_or_empty())).collect();
            all.sort();
            all
        }, _ => Vec::new()),
    };
    let verb = if suspend { "suspended" } else { "resumed" };
    for (namespace, name) in targets {
        crate::with_reconciled_kind!(kind, K => store.update::<K>(&namespace, &name, |o| o.set_suspended(suspend)).await.map(drop)?, _ => ());
        println!("{}/{name} {verb}", kind.segment());
    }
    Ok(())
}

/// `delete` on a cluster, as `kubectl delete --wait`: the API deletes the object once the
/// controller has finished its cleanup (driftless's finalizer), so this waits for it to be
/// gone, at most `timeout`.
pub async fn delete_on_cluster(store: &KubeStore, kind: CliKind, namespace: &str, name: &str, timeout: Duration) -> Result<()> {
    let shown = format!("{}/{name}", kind.segment());
    let controller = || "is the controller running? (`driftless check`)".to_string();
    let left = match kind {
        CliKind::Api(k) if k.is_reconciled() => crate::with_reconciled_kind!(k, K => {
            if let Some(cleanup) = store.get::<K>(namespace, name).await?.and_then(|o| o.cleanup_on_deletion()) {
                eprintln!("► {shown}: {cleanup} before deletion (the controller does it)");
            }
            delete_and_wait::<K>(store, namespace, name, timeout).await?.map(|o| {
                let (_, reason, message) = ready_cells(o.status());
                if reason.is_empty() { controller() } else { format!("{reason}: {message}") }
            })
        }, _ => None),
        CliKind::Api(k) => crate::with_kind!(k, K => delete_and_wait::<K>(store, namespace, name, timeout).await?.map(|_| controller())),
        CliKind::Secret => delete_and_wait::<Secret>(store, namespace, name, timeout).await?.map(|_| controller()),
        CliKind::ConfigMap => delete_and_wait::<ConfigMap>(store, namespace, name, timeout).await?.map(|_| controller()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str) -> Condition {
        serde_json::from_value(
            serde_json::json!({"type": type_, "status": status, "reason": "R", "lastTransitionTime": "2026-01-01T00:00:00Z"}),
        )
        .unwrap()
    }

    #[test]
    fn a_status_selector_matches_as_flux_get_does() {
        let failed = [condition("Ready", "False"), condition("Stalled", "True")];
        let select = |text: &str| StatusSelector::parse(text).unwrap();
        assert!(select("ready=false").matches(&failed));
        assert!(select("Ready=False").matches(&failed));
        assert!(!select("ready=true").matches(&failed));
        assert!(select("ready!=true").matches(&failed));
        assert!(select("stalled=true").matches(&failed));
        assert!(select("ready=unknown").matches(&[]), "no Ready condition yet is Unknown");
        assert!(!select("ready!=unknown").matches(&[]));
        for bad in ["ready", "=true", "ready=maybe", "ready=="] {
            assert!(StatusSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_object_or_all_of_a_kind_is_selected() {
        assert_eq!(
            Selected::of(Some("a".into()), false, Some("ns".into())).unwrap(),
            Selected::One { name: "a".into(), namespace: "ns".into() }
        );
        assert_eq!(Selected::of(None, true, None).unwrap(), Selected::All { namespace: None });
        assert!(Selected::of(Some("a".into()), true, Some("ns".into())).is_err());
        assert!(Selected::of(None, false, Some("ns".into())).is_err());
        assert!(Selected::of(Some("a".into()), false, None).is_err(), "-A names no namespace for one object");
    }
}
