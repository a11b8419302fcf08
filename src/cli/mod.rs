//! The `driftless` command line: one module per command group, the same verbs for a local
//! store and a cluster (see [`target`] for what differs between them).

mod artifact;
mod build;
mod check;
pub mod cluster;
mod controller;
mod crds;
mod create;
mod diff;
mod events;
mod export;
mod install;
mod logs;
mod migrate;
mod notify;
mod objects;
mod rbac;
mod reconcile;
mod review;
mod run;
mod target;
mod trace;
mod tree;
mod uninstall;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::store::ObjectStore as _;
use target::{ClusterTarget, Target};

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
    Reconcile(#[from] crate::reconcile::ReconcileError),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Build(#[from] build::BuildCommandError),
    #[error(transparent)]
    Review(#[from] crate::review::ReviewError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    /// `diff` found changes (exit status 1, as `flux diff`); the diff is on stdout.
    #[error("{0}")]
    Changes(String),
    /// A command that does not exist where it was run (exit status 2).
    #[error("{0}")]
    NotHere(String),
}

impl CliError {
    /// The process exit status: 2 for a command that does not apply here (and `migrate`'s
    /// usage errors), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NotHere(_) => 2,
            CliError::Migrate(e) => e.exit_code(),
            _ => 1,
        }
    }
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
    /// OpenTofu (tofu) binary the runners use (default: found on PATH). An object without
    /// `spec.engine` runs tofu when the runner has it, else terraform.
    #[arg(long, global = true, env = "DRIFTLESS_TOFU")]
    pub tofu: Option<PathBuf>,
    /// kubeconfig of the cluster (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log file of a local store that this command writes beside stderr: the commands
    /// that reconcile (`run`, `reconcile`), for `driftless logs`.
    pub fn store_log(&self) -> Option<PathBuf> {
        let dir = self.store.as_ref()?;
        matches!(self.command, Command::Run { .. } | Command::Reconcile { .. }).then(|| dir.join(logs::STORE_LOG))
    }

    /// What stderr shows without `DRIFTLESS_LOG`: the in-cluster controller logs each
    /// reconcile, as Flux's controllers do (its log is what `driftless logs` reads); a CLI
    /// command only warnings, without the reconcile lines it prints itself.
    pub fn default_log_filter(&self) -> &'static str {
        if matches!(self.command, Command::Controller(_)) { "info,kube=warn" } else { "warn,reconciled=off" }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add or update objects from YAML files (a file, a directory, or - for stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        // Where objects that name no namespace go.
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Show objects of a kind, or `get all`: every kind, grouped.
    Get {
        /// A kind (terraform, ks, gitrepo, ...) or `all`.
        kind: String,
        name: Option<String>,
        #[command(flatten)]
        scope: Scope,
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
        /// Only objects whose condition has this status, e.g. `ready=false` (as `flux get
        /// --status-selector`); an object without the condition counts as Unknown.
        #[arg(long, value_name = "CONDITION=STATUS")]
        status_selector: Option<String>,
        /// After the table, print a row each time an object is added or its row changes,
        /// until interrupted (as `flux get --watch`; the objects are read every second).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Print objects as clean YAML for Git (no status or server fields), as `flux export`.
    Export {
        /// A kind; with --all and no kind, every kind.
        kind: Option<String>,
        name: Option<String>,
        /// Every object of the kind (of every kind without one).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// What a Kustomization applied, as a tree nested through the driftless objects it applied.
    Tree {
        kind: String,
        name: String,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Which driftless object manages an object of the cluster, its source, revision and status.
    Trace {
        /// The object's kind as kubectl takes it (deployment, cm, kustomization, ...).
        kind: String,
        name: String,
        #[command(flatten)]
        namespace: Namespace,
        /// The kind's API group and version (apps/v1), when its name is ambiguous.
        #[arg(long)]
        api_version: Option<String>,
    },
    /// What a change would do before it is pushed: `diff kustomization NAME --path DIR`.
    #[command(subcommand)]
    Diff(DiffCommand),
    /// Create an object from flags, as `flux create` (`--export` prints it as YAML instead).
    #[command(subcommand)]
    Create(create::CreateCommand),
    /// Push an artifact to an OCI registry, as `flux push artifact`.
    #[command(subcommand)]
    Push(artifact::PushCommand),
    /// Pull an artifact from an OCI registry, as `flux pull artifact`.
    #[command(subcommand)]
    Pull(artifact::PullCommand),
    /// This CLI's version and, on a cluster, the installed controller's.
    Version(version::VersionArgs),
    /// Print a shell completion script (`source <(driftless completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: version::Shell,
    },
    /// Delete an object (Terraform with destroyResourcesOnDeletion destroys its resources first).
    Delete {
        kind: String,
        name: String,
        #[command(flatten)]
        namespace: Namespace,
        /// On a cluster: how long to wait for the controller's cleanup.
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Run one complete reconcile now and wait for it.
    Reconcile {
        kind: String,
        name: String,
        #[command(flatten)]
        namespace: Namespace,
        /// Fetch the source first.
        #[arg(long)]
        with_source: bool,
        /// On a cluster: how long to wait for the controller to handle the request.
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// The reconcile loop, honoring intervals.
    Run {
        /// Reconcile everything that is due once, then exit.
        #[arg(long)]
        once: bool,
        /// Serve Receivers' webhooks on this address (e.g. 127.0.0.1:9292).
        #[arg(long)]
        receiver_addr: Option<std::net::SocketAddr>,
    },
    /// Plans: `plan show NAME`.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// The controller's log lines, about the objects and of the level asked for (as `flux
    /// logs`); `logs terraform NAME`: what terraform printed in that object's last run.
    #[command(args_conflicts_with_subcommands = true)]
    Logs {
        #[command(subcommand)]
        command: Option<LogsCommand>,
        #[command(flatten)]
        args: logs::LogsArgs,
    },
    /// Approve the pending plan of a Terraform (the exact id; defaults to the pending one).
    Approve {
        name: String,
        plan_id: Option<String>,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Alerts: `notify test PROVIDER` sends a test event through a Provider.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Drift: `drift list`, `drift show NAME`, `drift ack NAME [DRIFT_ID]`.
    Drift {
        #[command(subcommand)]
        command: DriftCommand,
    },
    /// Stop reconciling an object (or every object of a kind with --all).
    Suspend {
        kind: String,
        name: Option<String>,
        /// Every object of the kind in the namespace (every namespace with -A).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Resume reconciling an object (or every object of a kind with --all).
    Resume {
        kind: String,
        name: Option<String>,
        /// Every object of the kind in the namespace (every namespace with -A).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Break a stuck state lock.
    Unlock {
        name: String,
        #[command(flatten)]
        namespace: Namespace,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Events of driftless objects (the store's event log, or a cluster's Events), optionally
    /// of one kind or object.
    Events {
        kind: Option<String>,
        name: Option<String>,
        #[command(flatten)]
        scope: Scope,
        /// After the events so far, print each new one as it comes, until interrupted (read
        /// every second).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// The in-cluster controller: watches, runner pods, artifact server, leader election.
    Controller(Box<controller::ControllerArgs>),
    /// Write the CRDs as YAML (one file per kind) into DIR, or print them with `-`.
    Crds {
        #[arg(default_value = "crds")]
        dir: String,
    },
    /// Install the controller, its RBAC and the CRDs on a cluster (or print them with --export).
    Install(install::InstallArgs),
    /// Remove what install put on the cluster: objects are suspended and released first, so
    /// nothing is pruned or destroyed; the CRDs only with --yes (or a yes at the prompt).
    Uninstall(uninstall::UninstallArgs),
    /// Check a cluster before install (--pre) or the installation after it.
    Check(check::CheckArgs),
    /// Build a kustomization (or a plain directory of manifests) and print the objects, offline.
    Build(build::BuildArgs),
    /// Rewrite Flux and tofu-controller YAML to driftless.dev/v1alpha1 in place, listing what does not carry over.
    #[command(long_about = migrate::LONG_ABOUT)]
    Migrate(migrate::MigrateArgs),
    /// Serve the review page of a local store (prints a one-time login link first).
    Review {
        /// Loopback address to listen on (default: a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogsCommand {
    /// What terraform printed in the last run of a Terraform (init, plan, apply), as it prints
    /// it without `-json`, with every secret the run knew scrubbed.
    Terraform {
        name: String,
        #[command(flatten)]
        namespace: Namespace,
    },
}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// The pending (or last) plan, human readable.
    Show {
        name: String,
        #[command(flatten)]
        namespace: Namespace,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a test event through a Provider now, and say whether it arrived.
    Test {
        provider: String,
        #[command(flatten)]
        namespace: Namespace,
    },
}

#[derive(Subcommand, Debug)]
pub enum DriftCommand {
    /// Acknowledge the current drift of an object (its exact id; defaults to the current one):
    /// its alerts stop until the drift changes.
    Ack {
        name: String,
        drift_id: Option<String>,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// Every object with its drift state.
    List {
        #[command(flatten)]
        scope: Scope,
    },
    /// The drift entries of one object.
    Show {
        name: String,
        #[command(flatten)]
        namespace: Namespace,
    },
}

#[derive(Subcommand, Debug)]
pub enum DiffCommand {
    /// Build DIR as the Kustomization's path (its overlay fields and substitutions) and show
    /// the server-side dry-run diff against the cluster; exit status 1 when there are changes.
    Kustomization {
        name: String,
        /// The local directory that stands for the Kustomization's spec.path.
        #[arg(long)]
        path: PathBuf,
        #[command(flatten)]
        namespace: Namespace,
    },
    /// A speculative plan of DIR as the Terraform's path (its variables, options and backend),
    /// run by a local runner: never applied, no lock, nothing stored; exit status 1 when it
    /// would change something.
    Terraform {
        name: String,
        /// The local directory that stands for the Terraform's spec.path.
        #[arg(long)]
        path: PathBuf,
        #[command(flatten)]
        namespace: Namespace,
    },
}

/// `-n NAMESPACE` of a command on one object.
#[derive(Args, Debug, Clone, Default)]
pub struct Namespace {
    /// Namespace (default: the kube context's namespace; `default` on a local store).
    #[arg(short = 'n', long = "namespace")]
    namespace: Option<String>,
}

impl Namespace {
    fn or_default_of<T: Target>(self, target: &T) -> String {
        self.namespace.unwrap_or_else(|| target.namespace().to_string())
    }
}

fn kube_context(kubeconfig: &Option<PathBuf>, context: &Option<String>) -> run::KubeContext {
    run::KubeContext { kubeconfig: kubeconfig.clone(), context: context.clone() }
}

/// `-n NAMESPACE` or `-A` of a command that lists.
#[derive(Args, Debug, Clone, Default)]
pub struct Scope {
    /// Namespace (default: the kube context's namespace; `default` on a local store).
    #[arg(short = 'n', long = "namespace")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
}

impl Scope {
    /// The namespace listed, `None` for all.
    fn of<T: Target>(self, target: &T) -> Option<String> {
        (!self.all_namespaces).then(|| Namespace { namespace: self.namespace }.or_default_of(target))
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = crate::api::Duration::parse(text)?;
    d.within_bounds()?;
    Ok(d.as_std())
}

/// The review page's external URL (`--review-url`): an absolute http(s) URL, since every
/// alert and event links from it and a relative or schemeless one would lead nowhere.
pub(crate) fn parse_review_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let uri: hyper::Uri =
        text.parse().map_err(|e| format!("not a URL ({e}); give the page's address, e.g. https://driftless.example.com"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(text.to_string()),
        _ => Err("give an absolute http(s) URL, e.g. https://driftless.example.com".into()),
    }
}

/// Runs a parsed command line: the commands about the installation itself first, then the
/// object verbs on a local store (`--store`) or on the cluster of the kube context.
pub async fn execute(cli: Cli) -> Result<()> {
    let (kubeconfig, context) = (cli.kubeconfig.as_deref(), cli.context.as_deref());
    let command = match cli.command {
        Command::Crds { dir } => return crds::write(&dir),
        Command::Build(args) => return Ok(build::run(&args)?),
        Command::Migrate(args) => return Ok(migrate::run(&args)?),
        Command::Completion { shell } => return version::completion(shell),
        Command::Create(create) if create.common().export => {
            let namespace = create.common().namespace.clone().unwrap_or_else(|| "default".into());
            print!("{}", create::to_yaml(&create.object(&namespace)?)?);
            return Ok(());
        }
        Command::Push(artifact::PushCommand::Artifact(args)) => return artifact::push(&args).await,
        Command::Pull(artifact::PullCommand::Artifact(args)) => return artifact::pull(&args).await,
        Command::Version(args) => {
            return version::show(&args, cli.store.is_some(), async || Ok(cluster::client(kubeconfig, context).await?)).await;
        }
        Command::Trace { kind, name, namespace, api_version } => {
            // The object is the cluster's (on a local store: the kube context's, where its
            // Kustomizations apply); who manages it is the target's.
            let client = cluster::client(kubeconfig, context).await?;
            let ns = namespace.namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let api_version = api_version.as_deref();
            return match &cli.store {
                Some(dir) => {
                    let ctx = local_context(dir, cli.terraform, cli.tofu, false, kube_context(&cli.kubeconfig, &cli.context))?;
                    trace::run(&ctx.store, &client, &kind, &name, &ns, api_version).await
                }
                None => trace::run(&crate::store::KubeStore::new(client.clone()), &client, &kind, &name, &ns, api_version).await,
            };
        }
        Command::Diff(DiffCommand::Kustomization { name, path, namespace }) => {
            // Dry-run applied where the Kustomization applies: the kube context's cluster.
            let client = cluster::client(kubeconfig, context).await?;
            return match &cli.store {
                Some(dir) => {
                    let ctx = local_context(dir, cli.terraform, cli.tofu, false, kube_context(&cli.kubeconfig, &cli.context))?;
                    let ns = namespace.namespace.unwrap_or_else(|| "default".into());
                    diff::kustomization(&ctx.store, client, &name, &ns, &path).await
                }
                None => {
                    let ns = namespace.namespace.unwrap_or_else(|| client.default_namespace().to_string());
                    diff::kustomization(&crate::store::KubeStore::new(client.clone()), client, &name, &ns, &path).await
                }
            };
        }
        Command::Logs { command: None, args } => {
            let namespace = |default: String| if args.all_namespaces { None } else { Some(args.namespace.clone().unwrap_or(default)) };
            return match &cli.store {
                Some(dir) => logs::local(dir, &args, namespace("default".into()).as_deref()),
                None => {
                    let client = cluster::client(kubeconfig, context).await?;
                    let ns = namespace(client.default_namespace().to_string());
                    logs::cluster(&client, &args, ns.as_deref()).await
                }
            };
        }
        Command::Diff(DiffCommand::Terraform { name, path, namespace }) => {
            return match &cli.store {
                Some(dir) => {
                    let ctx = local_context(dir, cli.terraform, cli.tofu, false, kube_context(&cli.kubeconfig, &cli.context))?;
                    let ns = namespace.namespace.unwrap_or_else(|| "default".into());
                    let engines = diff::Engines { terraform: ctx.terraform_path.clone(), tofu: ctx.tofu_path.clone() };
                    diff::terraform(&ctx.store, &ctx.dispatch, &ctx.backend, engines, &name, &ns, &path).await
                }
                None => {
                    // The runner runs here, with the kube context's user: the state is read
                    // with that user's rights, as every other read of this command.
                    let client = cluster::client(kubeconfig, context).await?;
                    let ns = namespace.namespace.unwrap_or_else(|| client.default_namespace().to_string());
                    let (dispatch, _kubeconfig) = diff::local_runner(kubeconfig, context)?;
                    let absolute = |p: Option<PathBuf>| p.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
                    let engines = diff::Engines { terraform: absolute(cli.terraform), tofu: absolute(cli.tofu) };
                    let target = ClusterTarget::new(client);
                    diff::terraform(target.store(), &dispatch, target.default_backend(), engines, &name, &ns, &path).await
                }
            };
        }
        Command::Install(args) => return install::run(&args, kubeconfig, context).await,
        Command::Uninstall(args) => return uninstall::run(&args, kubeconfig, context).await,
        Command::Check(args) => return check::run(&args, kubeconfig, context).await,
        Command::Controller(args) => {
            let config = cluster::config(kubeconfig, context).await?;
            return controller::run(*args, config, cli.terraform, cli.tofu).await;
        }
        Command::Review { listen } => {
            let Some(dir) = &cli.store else {
                return Err(CliError::NotHere(
                    "on a cluster the controller serves the review page: start it with `driftless controller --review-addr ADDR`; \
                     `driftless review` serves a local store (--store DIR)"
                        .into(),
                ));
            };
            return review::page(local_context(dir, cli.terraform, cli.tofu, false, kube_context(&cli.kubeconfig, &cli.context))?, listen)
                .await;
        }
        verb => verb,
    };
    match &cli.store {
        Some(dir) => {
            let creates = matches!(command, Command::Apply { .. } | Command::Create(_));
            let ctx = local_context(dir, cli.terraform.clone(), cli.tofu.clone(), creates, kube_context(&cli.kubeconfig, &cli.context))?;
            let mut outcome = verb(&ctx, command).await;
            // Locally nothing else keeps the notification kinds' status: a Receiver's webhook
            // path is there as soon as it is applied.
            if creates && outcome.is_ok() {
                outcome = crate::notify::objects::refresh(&ctx.store, &ctx.tenancy).await.map_err(CliError::from);
            }
            // A status a command just wrote may match an Alert: its delivery is not lost on exit.
            ctx.events.flush(Duration::from_secs(60)).await;
            outcome
        }
        None => verb(&ClusterTarget::new(cluster::client(kubeconfig, context).await?), command).await,
    }
}

/// Runs one object verb on a target: every verb is dispatched here once, for both kinds.
async fn verb<T: Target>(target: &T, command: Command) -> Result<()> {
    let store = target.store();
    match command {
        Command::Apply { files, namespace } => objects::apply(store, &files, &namespace.or_default_of(target)).await,
        Command::Create(create) => {
            let namespace = create.common().namespace.clone().unwrap_or_else(|| target.namespace().to_string());
            let object = create.object(&namespace)?;
            objects::apply_documents(store, &[("the command line".to_string(), object)], &namespace).await
        }
        Command::Get { kind, name, scope, output, status_selector, watch } => {
            let selector = status_selector.as_deref().map(objects::StatusSelector::parse).transpose()?;
            let namespace = scope.of(target);
            if watch {
                if kind.eq_ignore_ascii_case("all") || output != "table" {
                    return Err(CliError::Usage("--watch shows the table of one kind: `driftless get KIND --watch`".into()));
                }
                return objects::watch(store, &kind, name.as_deref(), namespace.as_deref(), selector.as_ref()).await;
            }
            if kind.eq_ignore_ascii_case("all") {
                return objects::get_all(store, name.as_deref(), namespace.as_deref(), &output, selector.as_ref()).await;
            }
            objects::get(store, &kind, name.as_deref(), namespace.as_deref(), &output, selector.as_ref()).await
        }
        Command::Export { kind, name, all, scope } => {
            let namespace = scope.of(target);
            let selection = export::Selection { kind: kind.as_deref(), name: name.as_deref(), all, namespace: namespace.as_deref() };
            export::run(store, selection).await
        }
        Command::Tree { kind, name, namespace } => tree::run(store, &kind, &name, &namespace.or_default_of(target)).await,
        Command::Delete { kind, name, namespace, timeout } => {
            target.delete(kind_of(&kind)?, &namespace.or_default_of(target), &name, timeout).await
        }
        Command::Suspend { kind, name, all, scope } => {
            objects::suspend(store, &kind, objects::Selected::of(name, all, scope.of(target))?, true).await
        }
        Command::Resume { kind, name, all, scope } => {
            objects::suspend(store, &kind, objects::Selected::of(name, all, scope.of(target))?, false).await
        }
        Command::Reconcile { kind, name, namespace, with_source, timeout } => {
            target.reconcile(kind_of(&kind)?.reconciled()?, &namespace.or_default_of(target), &name, with_source, timeout).await
        }
        Command::Run { once, receiver_addr } => target.run_loop(once, receiver_addr).await,
        Command::Plan { command: PlanCommand::Show { name, namespace } } => {
            review::plan_show(target, &name, &namespace.or_default_of(target)).await
        }
        Command::Logs { command: Some(LogsCommand::Terraform { name, namespace }), .. } => {
            let namespace = namespace.or_default_of(target);
            let Some(object) = store.get::<crate::api::Terraform>(&namespace, &name).await? else {
                return Err(CliError::Usage(format!(
                    "Terraform {namespace}/{name} not found; `driftless get terraforms -n {namespace}` lists them"
                )));
            };
            match crate::terraform::runlog::read(store, &object).await? {
                Some(log) => {
                    print!("{log}");
                    Ok(())
                }
                None => Err(CliError::Usage(format!(
                    "Terraform {namespace}/{name} has no run log yet: it has not run since it was created (`driftless reconcile terraform {name}` runs it)"
                ))),
            }
        }
        Command::Approve { name, plan_id, namespace } => {
            review::approve(target, &name, plan_id.as_deref(), &namespace.or_default_of(target)).await
        }
        Command::Drift { command: DriftCommand::List { scope } } => review::drift_list(store, scope.of(target).as_deref()).await,
        Command::Drift { command: DriftCommand::Show { name, namespace } } => {
            review::drift_show(store, &name, &namespace.or_default_of(target)).await
        }
        Command::Drift { command: DriftCommand::Ack { name, drift_id, namespace } } => {
            review::drift_ack(target, &name, drift_id.as_deref(), &namespace.or_default_of(target)).await
        }
        Command::Notify { command: NotifyCommand::Test { provider, namespace } } => {
            notify::test(store, &provider, &namespace.or_default_of(target)).await
        }
        Command::Unlock { name, namespace, yes } => review::unlock(target, &name, &namespace.or_default_of(target), yes).await,
        Command::Events { kind, name, scope, watch } => {
            events::show(target, kind.as_deref(), name.as_deref(), scope.of(target).as_deref(), watch).await
        }
        // Handled by `execute` before a target is built.
        Command::Crds { .. }
        | Command::Install(_)
        | Command::Uninstall(_)
        | Command::Check(_)
        | Command::Controller(_)
        | Command::Build(_)
        | Command::Migrate(_)
        | Command::Review { .. }
        | Command::Trace { .. }
        | Command::Diff(_)
        | Command::Logs { command: None, .. }
        | Command::Version(_)
        | Command::Push(_)
        | Command::Pull(_)
        | Command::Completion { .. } => Ok(()),
    }
}

/// A kind the object verbs take: one of the API's, or a core kind the CLI also reads and
/// writes beside them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CliKind {
    Api(crate::api::Kind),
    Secret,
    ConfigMap,
}

impl CliKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CliKind::Api(k) => k.as_str(),
            CliKind::Secret => "Secret",
            CliKind::ConfigMap => "ConfigMap",
        }
    }

    /// The lower-case name the CLI prints (`terraform`, `secret`).
    pub fn segment(self) -> &'static str {
        match self {
            CliKind::Api(k) => k.segment(),
            CliKind::Secret => "secret",
            CliKind::ConfigMap => "configmap",
        }
    }

    /// The kind, when the reconcile core reconciles it; else the error a verb that needs one
    /// gives.
    pub fn reconciled(self) -> Result<crate::api::Kind> {
        match self {
            CliKind::Api(k) if k.is_reconciled() => Ok(k),
            other => {
                Err(CliError::Usage(format!("{other} is not reconciled; reconcile a terraform, kustomization, gitrepository or bucket")))
            }
        }
    }
}

impl std::fmt::Display for CliKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind a user typed (`tf`, `terraforms`, `gitrepo`, `cm`, ...).
pub(crate) fn kind_of(input: &str) -> Result<CliKind> {
    if let Some(k) = crate::api::Kind::from_user(input) {
        return Ok(CliKind::Api(k));
    }
    match input.to_ascii_lowercase().as_str() {
        "secret" | "secrets" => Ok(CliKind::Secret),
        "configmap" | "configmaps" | "cm" => Ok(CliKind::ConfigMap),
        other => {
            let kinds: Vec<&str> = crate::api::Kind::ALL.iter().map(|k| k.segment()).collect();
            Err(CliError::Usage(format!("unknown kind {other:?}; use {}, secret or configmap", kinds.join(", "))))
        }
    }
}
