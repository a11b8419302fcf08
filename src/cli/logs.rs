//! `driftless logs`: the controller's log lines, as `flux logs` shows them, filtered by the
//! object they are about (`--kind`, `--name`, `-n`) and by level. On a cluster they are the
//! controller pods' logs; on a local store, the store's `driftless.log`, which `run` and
//! `reconcile` write beside their stderr. Which object a line is about is read from the span
//! every reconcile opens (`reconcile{kind=K namespace="ns" name="n" ...}`), so the one
//! filter serves both.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use super::{CliError, Result};

/// The file of a local store the reconciling commands log to.
pub const STORE_LOG: &str = "driftless.log";

#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogsArgs {
    /// Only lines about objects of this kind (Terraform, Kustomization, GitRepository, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only lines about objects of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only lines about objects of this namespace (the kube context's; every namespace with -A).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Lines about objects of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only lines of this level or more severe: error, warn, info, debug, trace.
    #[arg(long, value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub level: Option<String>,
    /// The last N lines that match (all by default).
    #[arg(long)]
    pub tail: Option<usize>,
    /// Namespace of the controller (on a cluster).
    #[arg(long, default_value = "driftless-system")]
    pub controller_namespace: String,
}

/// What a log line is about, as the filter reads it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct About<'a> {
    pub level: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Reads a line as tracing's text format writes it: `TIME LEVEL span{k=v ...}: message`.
pub fn about(line: &str) -> About<'_> {
    let mut words = line.split_whitespace();
    let level = words.nth(1).filter(|w| matches!(*w, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"));
    let Some(start) = line.find("reconcile{") else { return About { level, ..Default::default() } };
    let fields = &line[start + "reconcile{".len()..];
    let fields = &fields[..fields.find('}').unwrap_or(fields.len())];
    let field = |key: &str| {
        let at = fields.split(' ').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))?;
        Some(at.trim_matches('"'))
    };
    About { level, kind: field("kind"), namespace: field("namespace"), name: field("name") }
}

fn rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" => 0,
        "warn" => 1,
        "info" => 2,
        "debug" => 3,
        _ => 4,
    }
}

/// Whether `line` passes the filter; `namespace` is the one to keep (`None`: every one).
pub fn keep(args: &LogsArgs, namespace: Option<&str>, line: &str) -> bool {
    let a = about(line);
    let same = |want: Option<&str>, got: Option<&str>| want.is_none_or(|w| got.is_some_and(|g| g.eq_ignore_ascii_case(w)));
    if a.kind.is_none() && (args.kind.is_some() || args.name.is_some()) {
        // A line about no object (startup, leader election) is about none of them; it is
        // kept otherwise, in whatever namespace the objects asked for are.
        return false;
    }
    let level_ok = match (&args.level, a.level) {
        (Some(max), Some(got)) => rank(got) <= rank(max),
        (Some(_), None) => false,
        (None, _) => true,
    };
    let namespace_ok = a.kind.is_none() || same(namespace, a.namespace);
    level_ok && same(args.kind.as_deref(), a.kind) && same(args.name.as_deref(), a.name) && namespace_ok
}

fn print_kept(args: &LogsArgs, namespace: Option<&str>, lines: impl Iterator<Item = String>) {
    let kept: Vec<String> = lines.filter(|l| keep(args, namespace, l)).collect();
    let from = args.tail.map_or(0, |n| kept.len().saturating_sub(n));
    for line in &kept[from..] {
        println!("{line}");
    }
}

/// The store's log, filtered.
pub fn local(store: &Path, args: &LogsArgs, namespace: Option<&str>) -> Result<()> {
    let path = store.join(STORE_LOG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Usage(format!(
                "this store has no log yet: `driftless run` and `driftless reconcile` write it ({})",
                path.display()
            )));
        }
        Err(e) => return Err(CliError::File { path: path.display().to_string(), reason: e.to_string() }),
    };
    print_kept(args, namespace, text.lines().map(str::to_string));
    Ok(())
}

/// The controller pods' logs, filtered.
pub async fn cluster(client: &Client, args: &LogsArgs, namespace: Option<&str>) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.controller_namespace);
    let (key, value) = super::install::NAME_LABEL;
    let listed = pods
        .list(&ListParams::default().labels(&format!("{key}={value}")))
        .await
        .map_err(|e| super::cluster::ClusterError::api(format!("list the controller's pods in {}", args.controller_namespace), e))?;
    if listed.items.is_empty() {
        return Err(CliError::Usage(format!(
            "no controller pod in namespace {}: is driftless installed there (`driftless install`, or --controller-namespace)?",
            args.controller_namespace
        )));
    }
    let mut lines = Vec::new();
    for pod in &listed.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let text = pods
            .logs(&name, &LogParams::default())
            .await
            .map_err(|e| super::cluster::ClusterError::api(format!("read the logs of pod {}/{name}", args.controller_namespace), e))?;
        lines.extend(text.lines().map(str::to_string));
    }
    print_kept(args, namespace, lines.into_iter());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str =
        r#"2026-12-04T03:57:23.123456Z  WARN reconcile{namespace="team" name="app" forced=false kind=Terraform}: apply failed"#;

    #[test]
    fn a_line_is_read_as_tracing_writes_it() {
        assert_eq!(about(LINE), About { level: Some("WARN"), kind: Some("Terraform"), namespace: Some("team"), name: Some("app") });
        let plain = "2026-12-04T03:57:23Z  INFO leader election: acquired";
        assert_eq!(about(plain), About { level: Some("INFO"), ..Default::default() });
    }

    #[test]
    fn the_filter_keeps_lines_of_the_object_and_level_asked_for() {
        let args = |kind: Option<&str>, name: Option<&str>, level: Option<&str>| LogsArgs {
            kind: kind.map(str::to_string),
            name: name.map(str::to_string),
            level: level.map(str::to_string),
            ..Default::default()
        };
        assert!(keep(&args(None, None, None), None, LINE));
        assert!(keep(&args(Some("terraform"), Some("app"), None), Some("team"), LINE), "kinds in any case");
        assert!(!keep(&args(Some("Kustomization"), None, None), None, LINE));
        assert!(!keep(&args(None, Some("other"), None), None, LINE));
        assert!(!keep(&args(None, None, None), Some("default"), LINE), "another namespace");
        assert!(keep(&args(None, None, None), Some("default"), "2026-12-04T03:57:23Z ERROR no cluster"), "about no namespace");
        assert!(keep(&args(None, None, Some("warn")), None, LINE) && keep(&args(None, None, Some("info")), None, LINE));
        assert!(!keep(&args(None, None, Some("error")), None, LINE), "warn is less severe than error");
        let startup = "2026-12-04T03:57:23Z  INFO serving metrics";
        assert!(keep(&args(None, None, None), None, startup));
        assert!(!keep(&args(Some("Terraform"), None, None), None, startup), "about no object");
    }
}
