//! `driftless check [--pre]`: one line per check, a fix hint on every failure, and a
//! non-zero exit when anything failed.
//!
//! `--pre` answers "can this user install driftless on this cluster?"; without it, "is
//! driftless installed and able to work?" (what `install` created, asked of the API server
//! the way the controller will use it: CRDs served, the Deployment Available, and each
//! right of the service accounts by SubjectAccessReview).

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client};

use super::cluster::{self, ClusterError, api_message};
use super::install::{CONTROLLER, Placement, RUNNER};
use super::rbac::{self, Access};

/// The oldest Kubernetes release driftless supports (the tests run against 1.37; older
/// releases are out of upstream support).
pub const MIN_VERSION: (u32, u32) = (1, 30);

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub placement: Placement,
    /// Only what installing needs: the API server, its version, and your rights.
    #[arg(long)]
    pub pre: bool,
}

/// The result of one check: what was found, and for a failure how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ok: bool,
    pub text: String,
    pub fix: Option<String>,
}

impl Line {
    fn ok(text: impl Into<String>) -> Self {
        Self { ok: true, text: text.into(), fix: None }
    }

    fn fail(text: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { ok: false, text: text.into(), fix: Some(fix.into()) }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.fix, self.ok) {
            (_, true) => write!(f, "✔ {}", self.text),
            (Some(fix), false) => write!(f, "✗ {} — {fix}", self.text),
            (None, false) => write!(f, "✗ {}", self.text),
        }
    }
}

/// `driftless check [--pre]`: prints each line as it is known.
///
/// # Errors
/// [`ClusterError::ChecksFailed`] when any check failed (after printing every line), or
/// when no cluster is configured.
pub async fn run(args: &CheckArgs, kubeconfig: Option<&Path>, context: Option<&str>) -> super::Result<()> {
    let placement = args.placement.validated()?;
    let config = cluster::config(kubeconfig, context).await?;
    let url = config.cluster_url.to_string();
    let client = cluster::connect(config)?;
    let mut lines = Vec::new();
    let mut report = |new: Vec<Line>| {
        for line in &new {
            println!("{line}");
        }
        lines.extend(new);
    };
    let reachable = server(&client, &url).await;
    let stop = reachable.iter().any(|l| !l.ok);
    report(reachable);
    if !stop {
        if args.pre {
            report(caller_rights(&client, &placement.namespace).await);
        } else {
            report(crds(&client).await);
            report(vec![deployment(&client, &placement.namespace).await]);
            report(service_accounts(&client, &placement).await);
        }
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    if failed > 0 {
        return Err(ClusterError::ChecksFailed { failed, total: lines.len() }.into());
    }
    Ok(())
}

/// API server reachable, and its version (an unreachable server ends the check).
async fn server(client: &Client, url: &str) -> Vec<Line> {
    match client.apiserver_version().await {
        Err(e) => vec![Line::fail(
            format!("API server {url} is not reachable: {}", api_message(&e)),
            "check --kubeconfig/--context (or KUBECONFIG) and that the cluster is up",
        )],
        Ok(info) => {
            let version = version_line(&info.major, &info.minor, &info.git_version);
            vec![Line::ok(format!("API server {url} reachable")), version]
        }
    }
}

/// Kubernetes ≥ [`MIN_VERSION`]. Providers append `+` to the minor (`"30+"`), so only the
/// leading digits count.
fn version_line(major: &str, minor: &str, git_version: &str) -> Line {
    let number = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok();
    let (want_major, want_minor) = MIN_VERSION;
    match (number(major), number(minor)) {
        (Some(major), Some(minor)) if (major, minor) >= MIN_VERSION => {
            Line::ok(format!("Kubernetes {git_version} (1.{want_minor} or later required)"))
        }
        (Some(_), Some(_)) => {
            Line::fail(format!("Kubernetes {git_version} is too old: {want_major}.{want_minor} or later required"), "upgrade the cluster")
        }
        _ => Line::fail(
            format!("cannot tell the Kubernetes version (major {major:?}, minor {minor:?}, {git_version})"),
            format!("driftless needs {want_major}.{want_minor} or later"),
        ),
    }
}

/// What `install` creates that needs more than namespace rights.
fn install_accesses(namespace: &str) -> Vec<(Access, Option<String>)> {
    let cluster_wide = |group, resource| (Access { group, resource, subresource: None, verb: "create" }, None);
    vec![
        cluster_wide("apiextensions.k8s.io", "customresourcedefinitions"),
        cluster_wide("rbac.authorization.k8s.io", "clusterroles"),
        cluster_wide("rbac.authorization.k8s.io", "clusterrolebindings"),
        (Access { group: "apps", resource: "deployments", subresource: None, verb: "create" }, Some(namespace.to_owned())),
    ]
}

/// SelfSubjectAccessReviews for what install creates. Every authenticated user may ask.
async fn caller_rights(client: &Client, namespace: &str) -> Vec<Line> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut lines = Vec::new();
    for (access, ns) in install_accesses(namespace) {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec { resource_attributes: Some(attributes(&access, ns.as_deref())), ..Default::default() },
            ..Default::default()
        };
        let place = ns.as_deref().map_or_else(|| "cluster-wide".to_owned(), |ns| format!("in namespace {ns}"));
        lines.push(match api.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => Line::ok(format!("you may {access} ({place})")),
            Ok(_) => Line::fail(format!("you may not {access} ({place})"), "run install as a cluster admin, or ask one to run it"),
            Err(e) => Line::fail(format!("cannot ask whether you may {access}: {}", api_message(&e)), "check your credentials"),
        });
    }
    lines
}

/// Every driftless CRD installed, Established, serving `v1alpha1`.
async fn crds(client: &Client) -> Vec<Line> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut lines = Vec::new();
    for wanted in crate::api::crds() {
        let name = wanted.metadata.name.unwrap_or_default();
        let line = match api.get_opt(&name).await {
            Err(e) => {
                Line::fail(format!("cannot read CRD {name}: {}", api_message(&e)), "check your rights to read customresourcedefinitions")
            }
            Ok(None) => Line::fail(format!("CRD {name} is not installed"), "run `driftless install`"),
            Ok(Some(crd)) => crd_line(&name, &crd),
        };
        lines.push(line);
    }
    lines
}

fn crd_line(name: &str, crd: &CustomResourceDefinition) -> Line {
    let version = crate::api::VERSION;
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Established"))
        .map(|c| (c.status == "True", c.message.clone().unwrap_or_default()));
    let serves = crd.spec.versions.iter().any(|v| v.name == version && v.served);
    match established {
        None => Line::fail(format!("CRD {name} is not Established yet"), "wait a few seconds, or see `kubectl describe crd`"),
        Some((false, message)) => {
            Line::fail(format!("CRD {name} is not Established: {message}"), "see `kubectl describe crd`; re-run `driftless install`")
        }
        Some((true, _)) if !serves => {
            Line::fail(format!("CRD {name} does not serve {version}"), "re-run `driftless install` with this driftless version")
        }
        Some((true, _)) => Line::ok(format!("CRD {name} Established, serving {version}")),
    }
}

/// The controller Deployment exists and is Available.
async fn deployment(client: &Client, ns: &str) -> Line {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    match api.get_opt(CONTROLLER).await {
        Err(e) => {
            Line::fail(format!("cannot read Deployment {ns}/{CONTROLLER}: {}", api_message(&e)), "check your rights to read deployments")
        }
        Ok(None) => Line::fail(format!("Deployment {ns}/{CONTROLLER} not found"), format!("run `driftless install --namespace {ns}`")),
        Ok(Some(d)) => deployment_line(ns, &d),
    }
}

fn deployment_line(ns: &str, d: &Deployment) -> Line {
    let status = d.status.as_ref();
    let wanted = d.spec.replicas.unwrap_or(1);
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let condition = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_.as_deref() == Some("Available")));
    match condition {
        Some(c) if c.status.as_deref() == Some("True") => {
            Line::ok(format!("Deployment {ns}/{CONTROLLER} Available ({available}/{wanted} replicas)"))
        }
        other => {
            let why = other.and_then(|c| c.message.clone()).map(|m| format!(": {m}")).unwrap_or_default();
            Line::fail(
                format!("Deployment {ns}/{CONTROLLER} not Available ({available}/{wanted} replicas){why}"),
                format!("see `kubectl -n {ns} describe deployment {CONTROLLER}` and its pods' events"),
            )
        }
    }
}

/// The controller's ServiceAccount (its rights: cluster-wide, plus the Lease in its
/// namespace) and each runner namespace's (its rights there).
async fn service_accounts(client: &Client, placement: &Placement) -> Vec<Line> {
    let ns = placement.namespace.as_str();
    let controller: Vec<(Access, Option<&str>)> = rbac::accesses(rbac::CONTROLLER)
        .into_iter()
        .map(|a| (a, None))
        .chain(rbac::accesses(rbac::LEADER_ELECTION).into_iter().map(|a| (a, Some(ns))))
        .chain(placement.runner_namespaces.iter().flat_map(|r| rbac::accesses(rbac::RUNS).into_iter().map(move |a| (a, Some(r.as_str())))))
        .collect();
    let mut lines = service_account(client, ns, CONTROLLER, &controller, format!("run `driftless install --namespace {ns}`")).await;
    for runner_ns in &placement.runner_namespaces {
        let rights: Vec<(Access, Option<&str>)> = rbac::accesses(rbac::RUNNER).into_iter().map(|a| (a, Some(runner_ns.as_str()))).collect();
        let fix = format!("run `driftless install` with {runner_ns} in --runner-namespaces");
        lines.extend(service_account(client, runner_ns, RUNNER, &rights, fix).await);
    }
    lines
}

/// One ServiceAccount: it exists, and each of `rights` is held, asked one by one (one line
/// per missing right, one line when all are held). The rights of a missing account are not
/// asked: its own line already says what to do.
async fn service_account(client: &Client, ns: &str, name: &str, rights: &[(Access, Option<&str>)], fix: String) -> Vec<Line> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    match accounts.get_opt(name).await {
        Ok(Some(_)) => {}
        Ok(None) => return vec![Line::fail(format!("ServiceAccount {ns}/{name} not found"), fix)],
        Err(e) => {
            return vec![Line::fail(
                format!("cannot read ServiceAccount {ns}/{name}: {}", api_message(&e)),
                "check your rights to read serviceaccounts",
            )];
        }
    }
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (access, in_ns) in rights {
        match allowed(&reviews, ns, name, access, *in_ns).await {
            Ok(true) => {}
            Ok(false) => missing.push(Line::fail(
                format!("ServiceAccount {ns}/{name} may not {access} ({})", where_(*in_ns)),
                "re-run `driftless install` (its roles or bindings were changed)",
            )),
            Err(e) => {
                return vec![Line::fail(
                    format!("cannot ask the API server about the rights of ServiceAccount {ns}/{name}: {}", api_message(&e)),
                    "run check as a user who may create subjectaccessreviews (a cluster admin)",
                )];
            }
        }
    }
    if missing.is_empty() {
        return vec![Line::ok(format!("ServiceAccount {ns}/{name} has its {} rights", rights.len()))];
    }
    missing
}

/// Whether `system:serviceaccount:<sa_ns>:<sa>` may do `access`, with the groups the API
/// server gives every service account (so a grant to a group counts, as it would live).
async fn allowed(api: &Api<SubjectAccessReview>, sa_ns: &str, sa: &str, access: &Access, in_ns: Option<&str>) -> Result<bool, kube::Error> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{sa_ns}:{sa}")),
            groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{sa_ns}"), "system:authenticated".into()]),
            resource_attributes: Some(attributes(access, in_ns)),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// `namespace: None` asks about every namespace, which only a cluster-wide grant allows.
fn attributes(access: &Access, namespace: Option<&str>) -> ResourceAttributes {
    ResourceAttributes {
        group: Some(access.group.to_owned()),
        resource: Some(access.resource.to_owned()),
        subresource: access.subresource.map(str::to_owned),
        verb: Some(access.verb.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..Default::default()
    }
}

fn where_(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in all namespaces".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_1_30_pass_and_provider_suffixes_are_ignored() {
        assert!(version_line("1", "30", "v1.30.0").ok);
        assert!(version_line("1", "37+", "v1.37.2-gke.1").ok);
        assert!(version_line("2", "0", "v2.0.0").ok);
        let old = version_line("1", "29", "v1.29.4");
        assert!(!old.ok && old.text.contains("v1.29.4") && old.text.contains("1.30"), "{old}");
        assert!(!version_line("", "", "weird").ok);
    }

    #[test]
    fn a_failure_line_carries_its_fix() {
        assert_eq!(
            Line::fail("CRD x is not installed", "run `driftless install`").to_string(),
            "✗ CRD x is not installed — run `driftless install`"
        );
        assert_eq!(Line::ok("fine").to_string(), "✔ fine");
    }
}
