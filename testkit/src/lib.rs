//! Test-only Kubernetes for driftless: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager built from Go modules by `scripts/build-control-plane.sh`), a
//! fake kubelet that runs pods as local processes, and a fault-injecting API proxy.
//! See README.md for versions, measured times and what the fake kubelet does not do.

pub mod certs;
pub mod cluster;
pub mod install;
pub mod kubelet;
pub mod process;
pub mod proxy;
pub mod shared;
pub mod tools;

pub use cluster::{ADMIN, ALICE, ClusterAccess, ClusterError, ClusterOptions, TestCluster, User};
pub use install::{FIELD_MANAGER, InstallError, apply_value, install_crds, install_runner_rbac};
pub use kubelet::{FakeKubelet, KubeletOptions, NodeLoss};
pub use proxy::{ApiFault, FaultProxy, FaultRule, Verb};
pub use shared::{SharedCluster, TestNamespace, create_namespace, shared_cluster, shared_cluster_or_skip, start_cluster_or_skip};
pub use tools::{ControlPlaneBinaries, in_ci, skip_or_fail};

/// Installs a tracing subscriber for tests (once; `RUST_LOG` filters, default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
