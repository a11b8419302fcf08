//! [`TestCluster`]: etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, in a
//! temp dir, with generated certificates and static-token users.
//!
//! Why a real control plane: every semantic the controller relies on (server-side apply,
//! strategic merge, validation, watch, RBAC, garbage collection) is then the real one.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client, Config};
use tempfile::TempDir;

use crate::certs::{Ca, CertError, ServiceAccountKey};
use crate::process::{ManagedProcess, ProcessError, Spec, Watchdog};
use crate::tools::{ControlPlaneBinaries, ToolsError};

/// The superuser (group `system:masters`).
pub const ADMIN: &str = "admin";
/// An authenticated user with no RBAC grants: everything is 403 until a test binds a role.
pub const ALICE: &str = "alice";
/// Identity of the controller-manager (a `system:masters` member: it does not use
/// per-controller service-account credentials).
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// Identity of the fake kubelet. It also binds pods (it is the scheduler too), which the
/// Node authorizer does not allow a `system:node:*` user, so it is a `system:masters`
/// member.
pub const KUBELET: &str = "testkit:fake-kubelet";

/// Set to keep a cluster's temp dir (logs, certs, etcd data) after it stops.
pub const KEEP_ENV: &str = "DRIFTLESS_TESTKIT_KEEP";

/// Errors starting or using a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The control-plane binaries are missing.
    #[error(transparent)]
    Tools(#[from] ToolsError),
    /// Certificate generation failed.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// A process failed to start.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A file in the cluster's temp dir could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A component exited during startup.
    #[error("{component} exited during startup ({status}); last log lines:\n{log}")]
    Exited {
        /// The component.
        component: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its log.
        log: String,
    },
    /// A component was not ready in time.
    #[error("{component} not ready after {waited:?}: {last}; last log lines:\n{log}")]
    NotReady {
        /// The component.
        component: String,
        /// How long we waited.
        waited: Duration,
        /// The last error or response seen.
        last: String,
        /// The tail of its log.
        log: String,
    },
    /// The server URL is not a URI.
    #[error("invalid server URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// No such user in this cluster.
    #[error("no user {0:?} in this test cluster")]
    UnknownUser(String),
    /// A kube client could not be built.
    #[error("building a kube client: {0}")]
    Client(#[source] kube::Error),
    /// A kubeconfig could not be written.
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = ClusterError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// A static-token user.
#[derive(Clone, Debug)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Groups (besides `system:authenticated`, which every user gets).
    pub groups: Vec<String>,
}

impl User {
    /// A user with these groups.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        Self { name: name.into(), groups: groups.iter().map(|g| (*g).to_owned()).collect() }
    }
}

/// How to start a cluster. The defaults suit tests: fast node-lifecycle reactions so node
/// loss can be observed in seconds, not minutes.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Extra users beyond `admin` and `alice`.
    pub users: Vec<User>,
    /// `--node-monitor-grace-period`: how long a node may miss heartbeats before the
    /// node-lifecycle controller marks it `Unknown` (Kubernetes default: 50s).
    pub node_monitor_grace_period: Duration,
    /// Default `tolerationSeconds` added to pods for the `not-ready` and `unreachable`
    /// taints: how long pods stay bound to a lost node before eviction (Kubernetes
    /// default: 300s).
    pub pod_eviction_timeout: Duration,
    /// Wait, after `/readyz`, until the controller-manager has created the `default`
    /// service account (pods can be created only after that).
    pub wait_for_controllers: bool,
    /// How long to wait for each component.
    pub startup_timeout: Duration,
    /// Extra `kube-apiserver` flags.
    pub extra_apiserver_args: Vec<String>,
    /// Extra `kube-controller-manager` flags.
    pub extra_controller_manager_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            node_monitor_grace_period: Duration::from_secs(20),
            pod_eviction_timeout: Duration::from_secs(10),
            wait_for_controllers: true,
            startup_timeout: Duration::from_secs(90),
            extra_apiserver_args: Vec::new(),
            extra_controller_manager_args: Vec::new(),
        }
    }
}

/// How to reach a cluster: server URL, CA and user tokens. Cheap to clone and not tied to
/// a tokio runtime, so a cluster started on one runtime can be used from another (each
/// `#[tokio::test]` has its own).
#[derive(Clone)]
pub struct ClusterAccess {
    server: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("server", &self.server)
            .field("users", &self.tokens.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// The apiserver's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The user names.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.tokens.keys().map(String::as_str)
    }

    /// The bearer token of `user`.
    pub fn token(&self, user: &str) -> Result<&str> {
        self.tokens.get(user).map(String::as_str).ok_or_else(|| ClusterError::UnknownUser(user.to_owned()))
    }

    /// The same access through another URL (a proxy that serves a certificate from the
    /// same CA).
    pub fn with_server(&self, server: impl Into<String>) -> Self {
        Self { server: server.into(), ..self.clone() }
    }

    /// Adds (or replaces) a token user, for kubeconfigs of identities the cluster did not
    /// create (a pod's service-account token).
    pub(crate) fn set_token_user(&mut self, user: &str, token: &str) {
        self.tokens.insert(user.to_owned(), token.to_owned());
    }

    /// The same access with one more token user: for an identity the cluster did not
    /// create, such as a ServiceAccount token from the TokenRequest API, so that
    /// [`Self::client_for`] and [`Self::write_kubeconfig`] work for it as for `admin`.
    pub fn with_token_user(&self, user: &str, token: &str) -> Self {
        let mut access = self.clone();
        access.set_token_user(user, token);
        access
    }

    /// A `kube::Config` for `user`.
    pub fn config_for(&self, user: &str) -> Result<Config> {
        let token = self.token(user)?;
        let url = self.server.parse().map_err(|source| ClusterError::InvalidUrl { url: self.server.clone(), source })?;
        let mut config = Config::new(url);
        config.root_cert = Some(vec![self.ca_der.clone()]);
        // AuthInfo's token is a secrecy::SecretString; deserializing avoids depending on
        // kube's exact secrecy version.
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": token })).unwrap_or_default();
        config.default_namespace = "default".to_owned();
        config.connect_timeout = Some(Duration::from_secs(10));
        Ok(config)
    }

    /// A client for `user`, bound to the current tokio runtime.
    pub fn client_for(&self, user: &str) -> Result<Client> {
        Client::try_from(self.config_for(user)?).map_err(ClusterError::Client)
    }

    /// A client for [`ADMIN`].
    pub fn admin_client(&self) -> Result<Client> {
        self.client_for(ADMIN)
    }

    /// A kubeconfig (YAML) for `user`, with the CA inline so the file can be copied.
    pub fn kubeconfig_yaml(&self, user: &str) -> Result<String> {
        use base64::Engine as _;
        let token = self.token(user)?;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "testkit", "cluster": { "server": self.server, "certificate-authority-data": ca } }],
            "users": [{ "name": user, "user": { "token": token } }],
            "contexts": [{ "name": "testkit", "context": { "cluster": "testkit", "user": user, "namespace": "default" } }],
            "current-context": "testkit",
            "preferences": {},
        });
        Ok(serde_yaml::to_string(&doc).unwrap_or_default())
    }

    /// Writes a kubeconfig for `user` to `path` (mode 0600: it holds a token).
    pub fn write_kubeconfig(&self, path: &Path, user: &str) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let yaml = self.kubeconfig_yaml(user)?;
        let err = |source| ClusterError::Kubeconfig { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        // Write then rename, so a reader polling for the file never sees half of it.
        let tmp = path.with_extension("tmp-testkit");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
        file.write_all(yaml.as_bytes()).map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// A running control plane. Dropping it kills every process (whole process groups) and
/// removes its temp dir; if the test process dies without running destructors, a
/// watchdog process does the same.
pub struct TestCluster {
    access: ClusterAccess,
    ca: Arc<Ca>,
    // Field order is drop order: controller-manager, apiserver, etcd, then the dir.
    controller_manager: Option<ManagedProcess>,
    apiserver: Option<ManagedProcess>,
    etcd: Option<ManagedProcess>,
    /// Held, not read: when it drops, its process cleans up whatever is left.
    _watchdog: Arc<Watchdog>,
    dir: Option<TempDir>,
    kept_dir: Option<PathBuf>,
    startup: Duration,
    apiserver_ready: Duration,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("server", &self.access.server)
            .field("dir", &self.dir())
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

/// Picks free loopback ports. All listeners are held until every port is chosen, so the
/// ports are distinct; another process may still take one before our components bind it,
/// which [`TestCluster::start_with`] handles by retrying.
fn free_ports() -> Result<Ports> {
    let bind = || TcpListener::bind(("127.0.0.1", 0)).map_err(io("choosing a free port"));
    let (a, b, c) = (bind()?, bind()?, bind()?);
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(io("choosing a free port"));
    Ok(Ports { etcd_client: port(&a)?, etcd_peer: port(&b)?, apiserver: port(&c)? })
}

/// A random token: 32 hex digits from the OS's random source.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(io("reading /dev/urandom"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(io(format!("writing {}", path.display())))
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

impl TestCluster {
    /// Starts a cluster with [`ClusterOptions::default`].
    pub async fn start() -> Result<Self> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// Starts a cluster. Retries (up to three times) when a chosen port was taken by
    /// someone else in the meantime.
    pub async fn start_with(options: ClusterOptions) -> Result<Self> {
        let binaries = ControlPlaneBinaries::find()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&binaries, &options).await {
                Err(err) if attempt < 3 && err.to_string().contains("address already in use") => {
                    tracing::warn!(%err, attempt, "port taken during startup; retrying with new ports");
                }
                other => return other,
            }
        }
    }

    async fn start_once(binaries: &ControlPlaneBinaries, options: &ClusterOptions) -> Result<Self> {
        let started = Instant::now();
        let watchdog = Watchdog::spawn()?;
        let dir = tempfile::Builder::new().prefix("testkit-cluster-").tempdir().map_err(io("creating temp dir"))?;
        let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        if !keep {
            watchdog.guard_dir(dir.path());
        }
        let root = dir.path().to_path_buf();
        let ports = free_ports()?;

        // Certificates and keys.
        let ca = Ca::new("testkit-ca")?;
        let serving = ca.loopback_serving_cert(
            "kube-apiserver",
            &["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
        )?;
        let sa = ServiceAccountKey::generate()?;
        let pki = root.join("pki");
        std::fs::create_dir_all(&pki).map_err(io("creating pki dir"))?;
        let ca_file = pki.join("ca.crt");
        write(&ca_file, &ca.cert_pem())?;
        write(&pki.join("apiserver.crt"), &serving.cert_pem)?;
        write(&pki.join("apiserver.key"), &serving.key_pem)?;
        write(&pki.join("sa.key"), &sa.private_pem)?;
        write(&pki.join("sa.pub"), &sa.public_pem)?;

        // Users: a static token file (token,user,uid,"groups").
        let mut users = vec![
            User::new(ADMIN, &["system:masters"]),
            User::new(ALICE, &[]),
            User::new(CONTROLLER_MANAGER, &["system:masters"]),
            User::new(KUBELET, &["system:masters"]),
        ];
        users.extend(options.users.iter().cloned());
        let mut tokens = BTreeMap::new();
        let mut token_csv = String::new();
        for user in &users {
            let token = random_hex(16)?;
            let groups = user.groups.join(",");
            token_csv.push_str(&format!("{token},{},{},\"{groups}\"\n", user.name, user.name));
            tokens.insert(user.name.clone(), token);
        }
        write(&pki.join("tokens.csv"), &token_csv)?;

        let ca_der = ca_der(&ca.cert_pem());
        let access = ClusterAccess { server: format!("https://127.0.0.1:{}", ports.apiserver), ca_pem: ca.cert_pem(), ca_der, tokens };

        let mut cluster = Self {
            access,
            ca: Arc::new(ca),
            controller_manager: None,
            apiserver: None,
            etcd: None,
            _watchdog: Arc::clone(&watchdog),
            dir: None,
            kept_dir: None,
            startup: Duration::ZERO,
            apiserver_ready: Duration::ZERO,
        };
        if keep {
            cluster.kept_dir = Some(dir.keep());
        } else {
            cluster.dir = Some(dir);
        }

        // etcd: one member, no fsync (the data is thrown away anyway).
        let etcd_dir = root.join("etcd");
        cluster.etcd = Some(ManagedProcess::spawn(
            &Spec {
                name: "etcd".into(),
                program: binaries.etcd.clone(),
                args: vec![
                    "--name=testkit".into(),
                    format!("--data-dir={}", etcd_dir.display()),
                    format!("--listen-client-urls=http://127.0.0.1:{}", ports.etcd_client),
                    format!("--advertise-client-urls=http://127.0.0.1:{}", ports.etcd_client),
                    format!("--listen-peer-urls=http://127.0.0.1:{}", ports.etcd_peer),
                    format!("--initial-advertise-peer-urls=http://127.0.0.1:{}", ports.etcd_peer),
                    format!("--initial-cluster=testkit=http://127.0.0.1:{}", ports.etcd_peer),
                    "--unsafe-no-fsync=true".into(),
                    "--log-level=warn".into(),
                ],
                env: None,
                cwd: Some(root.clone()),
                log_path: root.join("etcd.log"),
            },
            &watchdog,
        )?);

        let mut apiserver_args = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", root.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
            format!("--tls-private-key-file={}", pki.join("apiserver.key").display()),
            format!("--client-ca-file={}", ca_file.display()),
            format!("--token-auth-file={}", pki.join("tokens.csv").display()),
            "--authorization-mode=Node,RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.join("sa.pub").display()),
            format!("--service-account-signing-key-file={}", pki.join("sa.key").display()),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            // The apiserver would publish 127.0.0.1 as the `kubernetes` Service endpoint,
            // which is refused (loopback); nothing in tests routes through that Service.
            "--endpoint-reconciler-type=none".into(),
            format!("--default-not-ready-toleration-seconds={}", options.pod_eviction_timeout.as_secs()),
            format!("--default-unreachable-toleration-seconds={}", options.pod_eviction_timeout.as_secs()),
            "--profiling=false".into(),
        ];
        apiserver_args.extend(options.extra_apiserver_args.iter().cloned());
        cluster.apiserver = Some(ManagedProcess::spawn(
            &Spec {
                name: "kube-apiserver".into(),
                program: binaries.kube_apiserver.clone(),
                args: apiserver_args,
                env: None,
                cwd: Some(root.clone()),
                log_path: root.join("kube-apiserver.log"),
            },
            &watchdog,
        )?);

        let admin = cluster.access.admin_client()?;
        cluster.wait_apiserver_ready(&admin, options.startup_timeout).await?;
        cluster.apiserver_ready = started.elapsed();
        tracing::info!(elapsed = ?cluster.apiserver_ready, server = %cluster.access.server, "kube-apiserver ready");

        // kube-controller-manager, through a kubeconfig with its own token.
        let kcm_kubeconfig = root.join("kube-controller-manager.kubeconfig");
        cluster.access.write_kubeconfig(&kcm_kubeconfig, CONTROLLER_MANAGER)?;
        let mut kcm_args = vec![
            format!("--kubeconfig={}", kcm_kubeconfig.display()),
            "--leader-elect=false".into(),
            // No serving endpoint: nothing scrapes it, and it saves a port and a cert.
            "--secure-port=0".into(),
            format!("--service-account-private-key-file={}", pki.join("sa.key").display()),
            format!("--root-ca-file={}", ca_file.display()),
            "--use-service-account-credentials=false".into(),
            "--node-monitor-period=1s".into(),
            format!("--node-monitor-grace-period={}", secs(options.node_monitor_grace_period)),
            // Garbage collection and namespace deletion sooner after changes.
            "--concurrent-gc-syncs=10".into(),
        ];
        kcm_args.extend(options.extra_controller_manager_args.iter().cloned());
        cluster.controller_manager = Some(ManagedProcess::spawn(
            &Spec {
                name: "kube-controller-manager".into(),
                program: binaries.kube_controller_manager.clone(),
                args: kcm_args,
                env: None,
                cwd: Some(root.clone()),
                log_path: root.join("kube-controller-manager.log"),
            },
            &watchdog,
        )?);
        if options.wait_for_controllers {
            cluster.wait_default_service_account(&admin, "default", options.startup_timeout).await?;
        }
        cluster.startup = started.elapsed();
        tracing::info!(elapsed = ?cluster.startup, "test cluster ready");
        Ok(cluster)
    }

    fn check_alive(&mut self) -> Result<()> {
        for process in [&mut self.etcd, &mut self.apiserver, &mut self.controller_manager].into_iter().flatten() {
            if let Some(status) = process.try_exit() {
                return Err(ClusterError::Exited { component: process.name().to_owned(), status, log: process.log_tail(30) });
            }
        }
        Ok(())
    }

    async fn wait_apiserver_ready(&mut self, admin: &Client, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < timeout {
            self.check_alive()?;
            let request = http::Request::get("/readyz").body(Vec::new());
            let answer = match request {
                Ok(request) => admin.request_text(request).await.map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            match answer {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(err) => last = err,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self.apiserver.as_ref().map(|p| p.log_tail(30)).unwrap_or_default();
        Err(ClusterError::NotReady { component: "kube-apiserver".into(), waited: timeout, last, log })
    }

    /// Waits until the controller-manager's service-account controller has created the
    /// `default` ServiceAccount in `namespace`. Pods are refused until then, so a test
    /// that creates a namespace and then a pod must wait for this too.
    pub async fn wait_default_service_account(&mut self, client: &Client, namespace: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut last = String::from("not created yet");
        while start.elapsed() < timeout {
            self.check_alive()?;
            match wait_for_default_service_account(client, namespace, Duration::from_millis(500)).await {
                Ok(()) => return Ok(()),
                Err(err) => last = err,
            }
        }
        let log = self.controller_manager.as_ref().map(|p| p.log_tail(30)).unwrap_or_default();
        Err(ClusterError::NotReady { component: "kube-controller-manager".into(), waited: timeout, last, log })
    }

    /// Server URL, CA and tokens, usable from any runtime.
    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    /// The CA that signed the apiserver's certificate (the fault proxy signs its own
    /// serving certificate with it, so clients trust both).
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// The apiserver's URL.
    pub fn server(&self) -> &str {
        self.access.server()
    }

    /// A client for the `admin` user (`system:masters`).
    pub fn admin_client(&self) -> Result<Client> {
        self.access.admin_client()
    }

    /// A client for a static-token user (`admin`, `alice`, or one from the options).
    pub fn client_for(&self, user: &str) -> Result<Client> {
        self.access.client_for(user)
    }

    /// Writes a kubeconfig for `user`.
    pub fn write_kubeconfig(&self, path: &Path, user: &str) -> Result<()> {
        self.access.write_kubeconfig(path, user)
    }

    /// Time from start until everything was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Time from start until the apiserver's `/readyz` said ok.
    pub fn apiserver_ready_time(&self) -> Duration {
        self.apiserver_ready
    }

    /// The temp dir holding certs, logs and etcd data.
    pub fn dir(&self) -> &Path {
        match (&self.dir, &self.kept_dir) {
            (Some(dir), _) => dir.path(),
            (None, Some(dir)) => dir,
            (None, None) => Path::new(""),
        }
    }

    /// The process id of each running component (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`), so a benchmark can read their CPU time and memory from
    /// `/proc` and tell the control plane's share of a run from the controller's.
    pub fn component_pids(&self) -> Vec<(&str, u32)> {
        [&self.etcd, &self.apiserver, &self.controller_manager]
            .into_iter()
            .flatten()
            .filter_map(|p| p.pgid().map(|pid| (p.name(), pid)))
            .collect()
    }

    /// Whether every component still runs; an error names the one that exited.
    pub fn check_health(&mut self) -> Result<()> {
        self.check_alive()
    }
}

/// Polls for the `default` ServiceAccount of `namespace` for up to `timeout`.
pub async fn wait_for_default_service_account(client: &Client, namespace: &str, timeout: Duration) -> Result<(), String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let start = Instant::now();
    loop {
        match api.get_opt("default").await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if start.elapsed() < timeout => {}
            Ok(None) => return Err(format!("no default ServiceAccount in {namespace} yet")),
            Err(err) if start.elapsed() < timeout => tracing::debug!(%err, "waiting for default ServiceAccount"),
            Err(err) => return Err(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ca_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Explicit order; ManagedProcess::drop kills each whole process group.
        self.controller_manager.take();
        self.apiserver.take();
        self.etcd.take();
        if let Some(dir) = &self.kept_dir {
            eprintln!("testkit: kept cluster dir {}", dir.display());
        }
    }
}
