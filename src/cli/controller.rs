//! `driftless controller`: flags, then hand over to `crate::controller::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{CliError, Result};
use crate::controller::ControllerOptions;
use crate::dispatch::{BackendSpec, PodSettings};

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    /// Reconciles running at once, per kind.
    #[arg(long, default_value_t = 4)]
    pub concurrent: u16,
    /// Metrics (/metrics) and probes (/healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// The artifact server runner pods download sources from.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub artifact_addr: SocketAddr,
    /// The artifact server's URL as runner pods reach it (its Service).
    #[arg(long, default_value = "http://driftless-artifacts.driftless-system.svc.cluster.local:9090")]
    pub artifact_url: String,
    /// A file holding the key that signs artifact URLs for runner pods (at least 32 random
    /// bytes, e.g. a mounted Secret), so URLs signed before a restart, or by another replica,
    /// stay valid. Without it each process signs with a random key of its own.
    #[arg(long)]
    pub artifact_key_file: Option<PathBuf>,
    /// The most one source may bring (a Git fetch, its checkout, a bucket's objects, the
    /// archived artifact): bytes, or with a Ki, Mi or Gi suffix. More is an error naming the limit.
    #[arg(long, default_value = "512Mi", value_parser = parse_size)]
    pub max_artifact_size: u64,
    /// Artifacts and Git caches.
    #[arg(long, default_value = "/data")]
    pub storage_path: PathBuf,
    /// Image of runner pods (driftless-runner and terraform).
    #[arg(long, default_value = concat!("driftless-runner:", env!("CARGO_PKG_VERSION")))]
    pub runner_image: String,
    /// The runner's command in that image.
    #[arg(long, default_value = "driftless-runner")]
    pub runner_command: String,
    /// ServiceAccount of runner pods when a Terraform names none.
    #[arg(long, default_value = "driftless-runner")]
    pub runner_service_account: String,
    /// Extra `NAME=VALUE` environment for every runner pod (repeatable).
    #[arg(long = "runner-env")]
    pub runner_env: Vec<String>,
    /// Namespace of the leader election Lease.
    #[arg(long, default_value = "driftless-system", env = "POD_NAMESPACE")]
    pub leader_election_namespace: String,
    /// Run without leader election (a single replica).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Deadline of one runner.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub run_timeout: Duration,
    /// Watch objects of this namespace only (default: every namespace).
    #[arg(long)]
    pub watch_namespace: Option<String>,
    /// Serve Receivers' webhooks here (e.g. 0.0.0.0:9292); not served when unset.
    #[arg(long)]
    pub receiver_addr: Option<SocketAddr>,
    /// The review page's external URL, linked from every alert.
    #[arg(long, env = "DRIFTLESS_REVIEW_URL", value_parser = super::parse_review_url)]
    pub review_url: Option<String>,
    /// This instance's name (lock holder, events, leader identity).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Refuse references to objects of other namespaces (sourceRef, dependsOn, healthChecks,
    /// an Alert's eventSources, a Receiver's resources), as Flux's flag of the same name:
    /// tenant B's runner never reads tenant A's artifact. `driftless install` sets it.
    #[arg(long)]
    pub no_cross_namespace_refs: bool,
    /// Apply a Kustomization that names no serviceAccountName as this ServiceAccount of its
    /// own namespace (Flux's flag of the same name), instead of with the controller's rights.
    #[arg(long)]
    pub default_service_account: Option<String>,
    /// Accept `file://` GitRepository URLs, which read the controller's own disk (tests and
    /// single-user clusters only).
    #[arg(long)]
    pub allow_file_urls: bool,
    /// Let a Bucket without secretRef use the controller's own cloud credentials (the
    /// standard AWS chain); without this it reads the bucket anonymously.
    #[arg(long)]
    pub allow_ambient_credentials: bool,
    /// The only ServiceAccounts a Terraform may name as `spec.serviceAccountName` for its
    /// runner pods, comma separated (the `--runner-service-account` is always allowed). A
    /// runner acts with its account's rights; without a list a Terraform may name any
    /// ServiceAccount of its namespace.
    #[arg(long, value_delimiter = ',')]
    pub allowed_runner_service_accounts: Vec<String>,
    /// Serve the review page here (e.g. 0.0.0.0:9443 behind a TLS Service): users log in with
    /// a Kubernetes token and act with their own RBAC rights. Off unless given.
    #[arg(long)]
    pub review_addr: Option<SocketAddr>,
}

/// A size in bytes, or with a binary suffix (`512Mi`, `2Gi`, `64Ki`), as Kubernetes writes them.
fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (number, shift) = match text.get(text.len().saturating_sub(2)..) {
        Some("Ki") => (&text[..text.len() - 2], 10),
        Some("Mi") => (&text[..text.len() - 2], 20),
        Some("Gi") => (&text[..text.len() - 2], 30),
        _ => (text, 0),
    };
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a size; use bytes or a number with Ki, Mi or Gi (e.g. 512Mi)"))?;
    value.checked_mul(1 << shift).filter(|v| *v > 0).ok_or_else(|| format!("{text:?} is not a usable size"))
}

pub async fn run(args: ControllerArgs, config: kube::Config, terraform: Option<PathBuf>, tofu: Option<PathBuf>) -> Result<()> {
    let client = super::cluster::connect(config.clone())?;
    let review = match args.review_addr {
        Some(addr) => Some(super::review::cluster_page(client.clone(), addr).await?),
        None => None,
    };
    let mut env = Vec::new();
    for pair in &args.runner_env {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!("--runner-env {pair:?}: expected NAME=VALUE")));
        };
        env.push(k8s_openapi::api::core::v1::EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() });
    }
    let identity = args.identity.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "driftless".into())
    });
    let runner_account = args.runner_service_account.clone();
    let options = ControllerOptions {
        concurrent: args.concurrent.max(1),
        metrics_addr: args.metrics_addr,
        receiver_addr: args.receiver_addr,
        review_url: args.review_url,
        artifact_addr: args.artifact_addr,
        artifact_url: args.artifact_url,
        artifact_access: match &args.artifact_key_file {
            Some(path) => crate::source::ArtifactAccess::from_key_file(path),
            None => crate::source::ArtifactAccess::generate(),
        }
        .map_err(|e| CliError::Usage(e.to_string()))?,
        storage_path: args.storage_path,
        max_artifact_size: args.max_artifact_size,
        runner: PodSettings {
            image: args.runner_image,
            command: args.runner_command.split_whitespace().map(str::to_string).collect(),
            service_account: runner_account.clone(),
            env,
        },
        terraform_path: terraform,
        tofu_path: tofu,
        identity,
        leader_election_namespace: (!args.no_leader_election).then_some(args.leader_election_namespace),
        run_timeout: args.run_timeout,
        watch_namespace: args.watch_namespace,
        tenancy: crate::api::Tenancy {
            cross_namespace_refs: !args.no_cross_namespace_refs,
            file_urls: args.allow_file_urls,
            ambient_credentials: args.allow_ambient_credentials,
            runner_service_accounts: (!args.allowed_runner_service_accounts.is_empty()).then(|| {
                let mut allowed: Vec<String> = args.allowed_runner_service_accounts.iter().filter(|a| !a.is_empty()).cloned().collect();
                allowed.push(runner_account.clone());
                allowed.dedup();
                allowed.into()
            }),
        },
        default_service_account: args.default_service_account.filter(|a| !a.is_empty()),
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
        }
    };
    // State and plans in Secrets of each object's own namespace (`resolve_backend` fills it in).
    let backend = BackendSpec::Kubernetes { namespace: String::new(), labels: Default::default() };
    let result = crate::controller::run(client, Some(config), options, backend, shutdown).await;
    if let Some(page) = review {
        page.abort();
    }
    result.map_err(|e| CliError::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_bytes_or_binary_suffixes() {
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "0", "5MB", "-1Mi", "99999999999999Gi"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
