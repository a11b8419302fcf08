//! Cluster end-to-end harness: the testkit's real kube-apiserver (one per test binary, a
//! namespace per test), the CRDs from `crds/`, and the real `driftless controller` process
//! dispatching real runner pods (the fake kubelet runs them as local processes).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::World;

pub struct KubeWorld {
    pub world: World,
    pub ns: testkit::TestNamespace,
    pub kubeconfig: PathBuf,
    pub controllers: Vec<ControllerProcess>,
}

pub struct ControllerProcess {
    pub child: Child,
    pub log: PathBuf,
    pub metrics_addr: String,
    pub artifact_addr: String,
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resource name of a kind (`GitRepository` -> `gitrepositories`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Installs (server-side applies) the CRDs of `crds/` and waits until they are Established.
pub async fn install_crds(client: &kube::Client) {
    testkit::install_crds(client, &super::repo_root().join("crds")).await.unwrap();
}

impl KubeWorld {
    /// A world with a namespace on the shared cluster, CRDs installed; `None` = skipped.
    pub async fn new(prefix: &str) -> Option<KubeWorld> {
        let world = World::new()?;
        let cluster = testkit::shared_cluster_or_skip().await?;
        let ns = cluster.namespace(prefix).await.unwrap();
        install_crds(&ns.client).await;
        let kubeconfig = world.path().join("kubeconfig");
        cluster.access().write_kubeconfig(&kubeconfig, "admin").unwrap();
        let k = KubeWorld { world, ns, kubeconfig, controllers: Vec::new() };
        k.install_runner_rbac().await;
        Some(k)
    }

    /// The runner ServiceAccount of this namespace with the role `driftless install` gives
    /// it, taken from the real install manifests: runner pods get exactly those rights.
    async fn install_runner_rbac(&self) {
        testkit::install_runner_rbac(&self.client(), &self.world.tools.driftless, &self.ns.name).await.unwrap();
    }

    pub fn client(&self) -> kube::Client {
        self.ns.client.clone()
    }

    /// Starts `driftless controller` watching this namespace; its log goes to a file.
    pub fn start_controller(&mut self, extra: &[&str]) -> usize {
        let (kubeconfig, lease_namespace) = (self.kubeconfig.clone(), self.ns.name.clone());
        self.spawn_controller(&kubeconfig, &lease_namespace, extra)
    }

    /// Starts the controller as the user of `kubeconfig`, its Lease in `lease_namespace`.
    fn spawn_controller(&mut self, kubeconfig: &Path, lease_namespace: &str, extra: &[&str]) -> usize {
        let index = self.controllers.len();
        let log = self.world.path().join(format!("controller-{index}.log"));
        let metrics = format!("127.0.0.1:{}", free_port());
        let artifacts = format!("127.0.0.1:{}", free_port());
        let storage = self.world.path().join(format!("controller-{index}"));
        let mut cmd = Command::new(&self.world.tools.driftless);
        cmd.arg("--terraform")
            .arg(&self.world.terraform)
            .arg("controller")
            .arg(format!("--watch-namespace={}", self.ns.name))
            .arg(format!("--metrics-addr={metrics}"))
            .arg(format!("--artifact-addr={artifacts}"))
            .arg(format!("--artifact-url=http://{artifacts}"))
            .arg(format!("--storage-path={}", storage.display()))
            .arg(format!("--runner-command={}", self.world.tools.runner.display()))
            .arg(format!("--runner-env=TF_CLI_CONFIG_FILE={}", self.world.tools.cli_config.display()))
            // The fake kubelet's pod directories are deep: providers' plugin sockets under
            // them would exceed the 108-byte unix socket path limit.
            .arg("--runner-env=TMPDIR=/tmp")
            .arg(format!("--leader-election-namespace={lease_namespace}"))
            .arg(format!("--identity=controller-{index}"))
            // The tests' repositories are on this machine's disk (file://), which a cluster
            // refuses unless its owner allows it.
            .arg("--allow-file-urls")
            .args(extra);
        self.world.env(&mut cmd);
        cmd.env("KUBECONFIG", kubeconfig).env("DRIFTLESS_LOG", "info,kube=warn").env_remove("RUST_LOG");
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::from(file.try_clone().unwrap())).stderr(Stdio::from(file));
        let child = cmd.spawn().unwrap();
        self.controllers.push(ControllerProcess { child, log, metrics_addr: metrics, artifact_addr: artifacts });
        index
    }

    pub fn controller_log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.controllers[index].log).unwrap_or_default()
    }

    /// Server-side applies YAML documents (with `__REPO__` and `__MANAGED__` filled in).
    pub async fn apply(&self, yaml: &str) {
        let text = yaml
            .replace("__REPO__", &self.world.repo_url())
            .replace("__MANAGED__", &self.world.path().join("managed").display().to_string());
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if value.is_null() {
                continue;
            }
            let object: DynamicObject = serde_json::from_value(value.clone()).unwrap();
            let types = object.types.clone().unwrap();
            let (group, version) = match types.api_version.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), types.api_version.clone()),
            };
            let plural = plural(&types.kind);
            let resource = ApiResource { group, version, api_version: types.api_version.clone(), kind: types.kind.clone(), plural };
            let api: Api<DynamicObject> = Api::namespaced_with(self.client(), &self.ns.name, &resource);
            let name = object.metadata.name.clone().unwrap();
            api.patch(&name, &PatchParams::apply("driftless-tests").force(), &Patch::Apply(&value)).await.unwrap();
        }
    }

    fn api(&self, kind: &str) -> Api<DynamicObject> {
        let (group, version) = match kind {
            "Secret" | "Pod" | "ConfigMap" => ("", "v1"),
            _ => ("driftless.dev", "v1alpha1"),
        };
        let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        let plural = plural(kind);
        let resource = ApiResource { group: group.into(), version: version.into(), api_version, kind: kind.into(), plural };
        Api::namespaced_with(self.client(), &self.ns.name, &resource)
    }

    /// The object as JSON (`Value::Null` when absent).
    pub async fn get(&self, kind: &str, name: &str) -> Value {
        match self.api(kind).get_opt(name).await.unwrap() {
            Some(o) => serde_json::to_value(o).unwrap(),
            None => Value::Null,
        }
    }

    pub async fn list(&self, kind: &str) -> Vec<Value> {
        self.api(kind).list(&Default::default()).await.unwrap().items.into_iter().map(|o| serde_json::to_value(o).unwrap()).collect()
    }

    pub async fn condition(&self, kind: &str, name: &str, type_: &str) -> Value {
        let o = self.get(kind, name).await;
        o["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == type_).cloned().unwrap_or(Value::Null)
    }

    /// Merges annotations into an object (as `kubectl annotate` does).
    pub async fn annotate(&self, kind: &str, name: &str, key: &str, value: &str) {
        let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
        self.api(kind).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    pub async fn delete(&self, kind: &str, name: &str) {
        let _ = self.api(kind).delete(name, &Default::default()).await;
    }

    /// Polls `check` on the object until it returns true; panics with the object and the
    /// controller logs after `timeout`.
    pub async fn wait_for(&self, kind: &str, name: &str, what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let o = self.get(kind, name).await;
            if check(&o) {
                return o;
            }
            if start.elapsed() > timeout {
                let logs: String = (0..self.controllers.len()).map(|i| self.controller_log(i)).collect::<Vec<_>>().join("\n---\n");
                let tail: Vec<&str> = logs.lines().rev().take(60).collect();
                let pods: Vec<String> = self
                    .list("Pod")
                    .await
                    .iter()
                    .map(|p| format!("{} {}", p["metadata"]["name"], serde_json::to_string(&p["status"]).unwrap_or_default()))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {kind} {name}: {what}\nobject: {}\npods: {}\ncontroller log tail:\n{}",
                    serde_json::to_string_pretty(&o["status"]).unwrap(),
                    pods.join("\n"),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The Kubernetes Events (events.k8s.io) about objects of this namespace.
    pub async fn events(&self) -> Vec<Value> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client(), &self.ns.name);
        api.list(&Default::default()).await.unwrap().items.into_iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }
}

/// Server-side applies one object of any kind (found by discovery).
pub async fn apply_value(client: &kube::Client, value: &Value) {
    testkit::apply_value(client, value).await.unwrap();
}

pub fn reason_of(condition: &Value) -> &str {
    condition["reason"].as_str().unwrap_or_default()
}

pub fn condition_in(object: &Value, type_: &str) -> Value {
    object["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == type_).cloned().unwrap_or(Value::Null)
}

pub fn pending_plan_of(object: &Value) -> Option<String> {
    let plan = &object["status"]["plan"];
    (plan["pending"] == Value::Bool(true)).then(|| plan["id"].as_str().unwrap_or_default().to_string())
}

impl KubeWorld {
    /// Kills a controller at once (SIGKILL): a crash, nothing cleaned up.
    pub fn crash_controller(&mut self, index: usize) {
        let c = &mut self.controllers[index].child;
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops a controller as Kubernetes does (SIGTERM) and waits for it to exit.
    pub fn stop_controller(&mut self, index: usize) -> std::process::ExitStatus {
        let c = &mut self.controllers[index].child;
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        c.wait().unwrap()
    }

    pub async fn list_leases(&self) -> Vec<Value> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(self.client(), &self.ns.name);
        api.list(&Default::default()).await.unwrap().items.into_iter().map(|l| serde_json::to_value(l).unwrap()).collect()
    }

    /// HTTP status of a GET on a controller's metrics/probes address.
    pub fn probe(&self, index: usize, path: &str) -> u16 {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(&self.controllers[index].metrics_addr) else { return 0 };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// The body of a GET on a controller's metrics/probes address.
    pub fn scrape(&self, index: usize, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.controllers[index].metrics_addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    }

    /// Starts `driftless controller` as its own ServiceAccount, holding exactly the rights
    /// `driftless install` gives it: runs the real `driftless install` (as admin: the CRDs,
    /// the controller namespace [`CONTROLLER_NAMESPACE`] with its ServiceAccount, ClusterRole,
    /// leader-election Role and bindings, and this namespace as a runner namespace; no
    /// controller replicas), asks the TokenRequest API for a token of that ServiceAccount,
    /// and starts the controller with a kubeconfig holding only that token. The flags are
    /// those of [`Self::start_controller`], except that the leader-election Lease is in the
    /// controller namespace, the only one where its Role lets it hold Leases.
    ///
    /// Returns the controller's index and a client with the same token (to show what the
    /// controller may not do). The ClusterRoleBinding and the Lease are cluster-wide, so
    /// use this once per test binary.
    pub async fn start_controller_as_service_account(&mut self, extra: &[&str]) -> (usize, kube::Client) {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;

        let mut install = Command::new(&self.world.tools.driftless);
        install.arg("--kubeconfig").arg(&self.kubeconfig).args([
            "install",
            "--namespace",
            CONTROLLER_NAMESPACE,
            "--runner-namespaces",
            &self.ns.name,
            "--replicas",
            "0",
        ]);
        self.world.env(&mut install);
        let out = tokio::process::Command::from(install).output().await.unwrap();
        let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "driftless install failed:\n{output}");

        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), CONTROLLER_NAMESPACE);
        let request = TokenRequest {
            // No audiences: the API server's own; an hour outlasts any test.
            spec: Some(TokenRequestSpec { audiences: None, expiration_seconds: Some(3600), ..Default::default() }),
            ..Default::default()
        };
        let answer = accounts.create_token_request(CONTROLLER_ACCOUNT, &Default::default(), &request).await.unwrap();
        let token = answer.status.and_then(|s| s.token).expect("a TokenRequest answer holds a token");
        let user = format!("system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_ACCOUNT}");
        let access = testkit::shared_cluster().await.unwrap().access().with_token_user(&user, &token);
        let kubeconfig = self.world.path().join(format!("controller-{}.kubeconfig", self.controllers.len()));
        access.write_kubeconfig(&kubeconfig, &user).unwrap();

        let index = self.spawn_controller(&kubeconfig, CONTROLLER_NAMESPACE, extra);
        (index, access.client_for(&user).unwrap())
    }
}

/// The namespace `driftless install` puts the controller in, for
/// [`KubeWorld::start_controller_as_service_account`].
pub const CONTROLLER_NAMESPACE: &str = "driftless-system";
/// The controller's ServiceAccount made by `driftless install`.
pub const CONTROLLER_ACCOUNT: &str = "driftless-controller";
