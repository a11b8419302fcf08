//! The `driftless` command line: one module per command group, the same verbs for a local
//! store and (later) a cluster.

mod build;
mod check;
pub mod cluster;
mod controller;
mod crds;
mod install;
mod objects;
mod rbac;
mod review;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use run::local_context;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Dispatch(#[from] crate::dispatch::DispatchError),
    #[error(transparent)]
    Reconcile(#[from] crate::context::ReconcileError),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Build(#[from] build::BuildCommandError),
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[derive(Parser, Debug)]
#[command(name = "driftless", version, about = "GitOps for Terraform and Kubernetes manifests: plan, approve, apply, detect drift")]
pub struct Cli {
    /// Keep objects, state and plans in this directory instead of a cluster.
    #[arg(long, global = true, env = "DRIFTLESS_STORE")]
    pub store: Option<PathBuf>,
    /// terraform binary the runners use (default: found on PATH).
    #[arg(long, global = true, env = "DRIFTLESS_TERRAFORM")]
    pub terraform: Option<PathBuf>,
    /// kubeconfig of the cluster (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add or update objects from YAML files (a file, a directory, or - for stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Show objects.
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Delete an object (Terraform with destroyResourcesOnDeletion destroys its resources first).
    Delete {
        kind: String,
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Run one complete reconcile now and wait for it.
    Reconcile {
        kind: String,
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Fetch the source first.
        #[arg(long)]
        with_source: bool,
    },
    /// The reconcile loop, honoring intervals.
    Run {
        /// Reconcile everything that is due once, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Plans: `plan show NAME`.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Approve the pending plan of a Terraform (the exact id; defaults to the pending one).
    Approve {
        name: String,
        plan_id: Option<String>,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Drift: `drift list`, `drift show NAME`.
    Drift {
        #[command(subcommand)]
        command: DriftCommand,
    },
    /// Stop reconciling an object.
    Suspend {
        kind: String,
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Resume reconciling an object.
    Resume {
        kind: String,
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Break a stuck state lock.
    Unlock {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Event log of the store, optionally of one object.
    Events { kind: Option<String>, name: Option<String> },
    /// The in-cluster controller: watches, runner pods, artifact server, leader election.
    Controller(Box<controller::ControllerArgs>),
    /// Write the CRDs as YAML (one file per kind) into DIR, or print them with `-`.
    Crds {
        #[arg(default_value = "crds")]
        dir: String,
    },
    /// Install the controller, its RBAC and the CRDs on a cluster (or print them with --export).
    Install(install::InstallArgs),
    /// Check a cluster before install (--pre) or the installation after it.
    Check(check::CheckArgs),
    /// Build a kustomization (or a plain directory of manifests) and print the objects, offline.
    Build(build::BuildArgs),
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// The pending (or last) plan, human readable.
    Show {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DriftCommand {
    /// Every object with its drift state.
    List,
    /// The drift entries of one object.
    Show {
        name: String,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

/// Runs a parsed command line.
pub async fn execute(cli: Cli) -> Result<()> {
    if let Command::Crds { dir } = &cli.command {
        return crds::write(dir);
    }
    if let Command::Build(args) = &cli.command {
        return Ok(build::run(args)?);
    }
    match &cli.command {
        Command::Install(args) => return install::run(args, cli.kubeconfig.as_deref(), cli.context.as_deref()).await,
        Command::Check(args) => return check::run(args, cli.kubeconfig.as_deref(), cli.context.as_deref()).await,
        _ => {}
    }
    if let Command::Controller(args) = cli.command {
        let client = cluster::client(cli.kubeconfig.as_deref(), cli.context.as_deref()).await?;
        return controller::run(*args, client, cli.terraform).await;
    }
    let Some(store_dir) = cli.store.clone() else {
        return Err(CliError::Usage(
            "no cluster support in this build yet: pass --store DIR (or set DRIFTLESS_STORE) to use a local store".into(),
        ));
    };
    let creates = matches!(cli.command, Command::Apply { .. });
    let ctx = local_context(&store_dir, cli.terraform.clone(), creates)?;
    match cli.command {
        Command::Apply { files } => objects::apply(&ctx, &files).await,
        Command::Get { kind, name, namespace, output } => objects::get(&ctx, &kind, name.as_deref(), &namespace, &output).await,
        Command::Delete { kind, name, namespace } => objects::delete(&ctx, &kind, &name, &namespace).await,
        Command::Suspend { kind, name, namespace } => objects::set_suspend(&ctx, &kind, &name, &namespace, true).await,
        Command::Resume { kind, name, namespace } => objects::set_suspend(&ctx, &kind, &name, &namespace, false).await,
        Command::Reconcile { kind, name, namespace, with_source } => run::reconcile_now(&ctx, &kind, &name, &namespace, with_source).await,
        Command::Run { once } => run::run_loop(&ctx, once).await,
        Command::Plan { command: PlanCommand::Show { name, namespace } } => review::plan_show(&ctx, &name, &namespace).await,
        Command::Approve { name, plan_id, namespace } => review::approve(&ctx, &name, plan_id.as_deref(), &namespace).await,
        Command::Drift { command: DriftCommand::List } => review::drift_list(&ctx).await,
        Command::Drift { command: DriftCommand::Show { name, namespace } } => review::drift_show(&ctx, &name, &namespace).await,
        Command::Unlock { name, namespace, yes } => review::unlock(&ctx, &name, &namespace, yes).await,
        Command::Events { kind, name } => review::events(&ctx, kind.as_deref(), name.as_deref()),
        Command::Crds { .. } | Command::Install(_) | Command::Check(_) | Command::Controller(_) | Command::Build(_) => Ok(()),
    }
}

/// Canonical kind names from what a user types (`tf`, `terraforms`, `gitrepo`, ...).
pub(crate) fn kind_of(input: &str) -> Result<&'static str> {
    match input.to_ascii_lowercase().as_str() {
        "terraform" | "terraforms" | "tf" => Ok("Terraform"),
        "gitrepository" | "gitrepositories" | "gitrepo" | "gitrepos" => Ok("GitRepository"),
        "bucket" | "buckets" => Ok("Bucket"),
        "secret" | "secrets" => Ok("Secret"),
        "configmap" | "configmaps" | "cm" => Ok("ConfigMap"),
        other => Err(CliError::Usage(format!("unknown kind {other:?}; use terraform, gitrepository, bucket, secret or configmap"))),
    }
}
