//! `kube-testcluster --kubeconfig PATH`: starts the test control plane and a fake
//! kubelet, writes an admin kubeconfig to PATH once `/readyz` is ok, and runs until
//! interrupted (Ctrl-C or SIGTERM), then stops everything and removes the kubeconfig.

use std::path::PathBuf;

use clap::Parser;
use testkit::{ClusterOptions, FakeKubelet, KubeletOptions, TestCluster};

/// Runs a real Kubernetes control plane (built by scripts/build-control-plane.sh) with a
/// fake kubelet, for kubectl and other real clients.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Also write a kubeconfig for the unprivileged user `alice` here.
    #[arg(long)]
    alice_kubeconfig: Option<PathBuf>,
    /// Do not start the fake kubelet (no node; pods stay Pending).
    #[arg(long)]
    no_kubelet: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();

    let cluster = TestCluster::start_with(ClusterOptions::default()).await?;
    let kubelet = if args.no_kubelet { None } else { Some(FakeKubelet::start(cluster.access(), KubeletOptions::default()).await?) };
    if let Some(path) = &args.alice_kubeconfig {
        cluster.write_kubeconfig(path, testkit::ALICE)?;
    }
    // Written last: its appearance tells a waiting client that everything is ready.
    cluster.write_kubeconfig(&args.kubeconfig, testkit::ADMIN)?;
    eprintln!(
        "kube-testcluster: ready in {:.1?} (kube-apiserver /readyz after {:.1?}) at {}; kubeconfig {}; dir {}",
        cluster.startup_time(),
        cluster.apiserver_ready_time(),
        cluster.server(),
        args.kubeconfig.display(),
        cluster.dir().display(),
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("kube-testcluster: stopping");
    drop(kubelet);
    drop(cluster);
    let _ = std::fs::remove_file(&args.kubeconfig);
    if let Some(path) = &args.alice_kubeconfig {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
