//! Benchmark: the real `driftless controller` on the testkit's real control plane, with the
//! fake kubelet running runner pods as local processes. For each scenario it reports the
//! time until N Terraform objects (`approvePlan: auto`) are all Ready, runs per second, the
//! controller's peak RSS (`VmHWM`) and CPU, and where the rest of the CPU went (API server,
//! etcd, controller-manager, runner pods, this process with the fake kubelet).
//!
//! Scenarios (each on a fresh cluster, so one scenario's etcd and caches do not weigh on
//! the next):
//! - `real`: the real runner and terraform 1.0.3 with a one-null-resource module, state
//!   and plans in Kubernetes Secrets (the controller's default backend);
//! - `noop`: `noop-runner` (testkit), which keeps the runner pod contract (reads the
//!   RunSpec, downloads the artifact, writes its result Secret) but skips terraform: the
//!   controller's own overhead per object.
//!
//! Both at `--concurrent 8` and `--concurrent 32`. Run with `scripts/bench.sh controller`
//! (it builds the release binaries). Scale with environment variables:
//! - `DRIFTLESS_BENCH_REAL` (default 20) and `DRIFTLESS_BENCH_NOOP` (default 200): objects;
//! - `DRIFTLESS_BENCH_CONCURRENT` (default `8,32`);
//! - `DRIFTLESS_BENCH_SCENARIOS` (default `real,noop`);
//! - `DRIFTLESS_BENCH_TIMEOUT` (seconds per scenario, default 1800);
//! - `DRIFTLESS_BENCH_API_COUNTS=1`: the controller talks to the API through the testkit
//!   proxy, which counts its requests per verb and resource (exact per-object API calls of
//!   the controller; the extra hop costs time, so its timings are not the headline ones);
//! - `DRIFTLESS_BENCH_LOG`: the controller's `DRIFTLESS_LOG` (default: its own, `warn`);
//! - `DRIFTLESS_BENCH_TRACE`: a tracing filter for this process (the fake kubelet), to stderr;
//! - `DRIFTLESS_BENCH_KEEP=1`: keep each scenario's directory (controller log, repository).
//!
//! Figures are printed, never asserted: on a shared 2-core machine the control plane, the
//! pods and the controller compete for the same cores, so timings are noisy; the CPU split
//! and the ratios within one run say more than the absolute times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use driftless::api::{Conditions as _, GitRepository, Terraform};
use futures::StreamExt as _;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use testkit::{ClusterOptions, FakeKubelet, FaultProxy, KubeletOptions, TestCluster};

const MODULE: &str = r#"
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}
variable "name" {
  type = string
}
resource "null_resource" "r" {
  triggers = {
    name = var.name
  }
}
output "id" {
  value = null_resource.r.id
}
"#;

/// How often the benchmark lists the Terraform objects to count the Ready ones.
const POLL: Duration = Duration::from_millis(500);
/// Objects created at once (the benchmark plays a user applying a directory of objects).
const CREATE_PARALLELISM: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    Real,
    Noop,
}

impl Runner {
    fn name(self) -> &'static str {
        match self {
            Runner::Real => "real",
            Runner::Noop => "noop",
        }
    }
}

struct Settings {
    real: usize,
    noop: usize,
    concurrent: Vec<u16>,
    runners: Vec<Runner>,
    timeout: Duration,
    api_counts: bool,
    log: Option<String>,
    keep: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        let concurrent = std::env::var("DRIFTLESS_BENCH_CONCURRENT").unwrap_or_else(|_| "8,32".into());
        let scenarios = std::env::var("DRIFTLESS_BENCH_SCENARIOS").unwrap_or_else(|_| "real,noop".into());
        Self {
            real: env_or("DRIFTLESS_BENCH_REAL", 20),
            noop: env_or("DRIFTLESS_BENCH_NOOP", 200),
            concurrent: concurrent
                .split(',')
                .map(|c| c.trim().parse().expect("DRIFTLESS_BENCH_CONCURRENT: numbers, comma-separated"))
                .collect(),
            runners: scenarios
                .split(',')
                .map(|s| match s.trim() {
                    "real" => Runner::Real,
                    "noop" => Runner::Noop,
                    other => panic!("DRIFTLESS_BENCH_SCENARIOS: unknown scenario {other:?} (real, noop)"),
                })
                .collect(),
            timeout: Duration::from_secs(env_or("DRIFTLESS_BENCH_TIMEOUT", 1800)),
            api_counts: env_or("DRIFTLESS_BENCH_API_COUNTS", 0u8) == 1,
            log: std::env::var("DRIFTLESS_BENCH_LOG").ok(),
            keep: env_or("DRIFTLESS_BENCH_KEEP", 0u8) == 1,
        }
    }
}

/// The binaries and tools, all checked before any cluster starts.
struct Tools {
    driftless: PathBuf,
    runner: PathBuf,
    noop_runner: PathBuf,
    terraform: PathBuf,
    cli_config: PathBuf,
    crds: PathBuf,
}

impl Tools {
    fn find() -> Result<Self> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tools = std::env::var_os("DRIFTLESS_TOOLS").map(PathBuf::from).unwrap_or_else(|| root.join(".tools"));
        let driftless = PathBuf::from(env!("CARGO_BIN_EXE_driftless"));
        let t = Self {
            runner: driftless.with_file_name("driftless-runner"),
            noop_runner: driftless.with_file_name("noop-runner"),
            driftless,
            terraform: tools.join("bin/terraform"),
            cli_config: tools.join("terraformrc"),
            crds: root.join("crds"),
        };
        for path in [&t.driftless, &t.runner, &t.noop_runner] {
            if !path.exists() {
                bail!("{} is missing: run scripts/bench.sh controller (it builds the workspace's binaries)", path.display());
            }
        }
        for path in [&t.terraform, &t.cli_config] {
            if !path.exists() {
                bail!("{} is missing: run scripts/setup-tools.sh", path.display());
            }
        }
        Ok(t)
    }

    /// `release` or `debug`: the directory the binaries were built into.
    fn profile(&self) -> String {
        self.driftless.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// CPU seconds and memory of a process, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct ProcStat {
    /// utime + stime.
    cpu: f64,
    /// cutime + cstime: children this process has waited for.
    children_cpu: f64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_stat(pid: &str, ticks: f64) -> ProcStat {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return ProcStat::default() };
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<f64> =
        text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    ProcStat { cpu: (field(14) + field(15)) / ticks, children_cpu: (field(16) + field(17)) / ticks }
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
}

fn mem_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()))
        .map(|k| k / 1024)
        .unwrap_or(0)
}

/// Busy CPU seconds of the whole machine (every core) so far, from `/proc/stat`: what this
/// benchmark's processes did not use of it is the other tenants' share, a better measure of
/// the noise than the load average (which counts this benchmark's own runner pods).
fn machine_busy_seconds(ticks: f64) -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let v: Vec<f64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0.0)).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    busy / ticks
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A plain HTTP/1.0 GET on loopback (the controller's metrics and probes), so the
/// benchmark needs no HTTP client crate of its own.
async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// Sums the samples of a Prometheus metric whose labels contain every `want` pair.
fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| want.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// `apiserver_request_total` per "verb resource[/subresource]", for every client.
fn apiserver_requests(text: &str) -> BTreeMap<String, f64> {
    let label = |line: &str, key: &str| -> String {
        let pat = format!("{key}=\"");
        line.find(&pat).map(|i| &line[i + pat.len()..]).and_then(|r| r.split_once('"')).map(|(v, _)| v.to_string()).unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some(value) = line.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) else { continue };
        let (resource, sub) = (label(line, "resource"), label(line, "subresource"));
        if resource.is_empty() {
            continue;
        }
        let what = if sub.is_empty() { resource } else { format!("{resource}/{sub}") };
        *out.entry(format!("{} {what}", label(line, "verb").to_lowercase())).or_default() += value;
    }
    out
}

async fn apiserver_metrics(client: &kube::Client) -> String {
    let request = axum::http::Request::get("/metrics").body(Vec::new()).expect("a request");
    client.request_text(request).await.unwrap_or_default()
}

/// Ready for the object's current generation.
fn is_ready(t: &Terraform) -> bool {
    t.status.as_ref().is_some_and(|s| s.is_true("Ready") && s.common.observed_generation == t.metadata.generation)
}

/// Not Ready for a reason no waiting cures: the run failed (the retry interval is an hour).
fn failure(t: &Terraform) -> Option<String> {
    let c = t.status.as_ref()?.condition("Ready")?;
    let waiting = ["Progressing", "SourceNotReady", "DependencyNotReady", "Succeeded"];
    (c.status != driftless::api::ConditionStatus::True && !waiting.contains(&c.reason.as_str()))
        .then(|| format!("{}: {}: {}", t.metadata.name.clone().unwrap_or_default(), c.reason, c.message))
}

struct Measured {
    runner: Runner,
    objects: usize,
    concurrent: u16,
    api_counts: bool,
    ready: usize,
    failed: Vec<String>,
    create: Duration,
    /// Time from the first create to each Ready count crossing 10 %, 50 %, 90 %, 100 %.
    first: Option<Duration>,
    p10: Option<Duration>,
    p50: Option<Duration>,
    p90: Option<Duration>,
    all: Option<Duration>,
    idle_rss_mib: f64,
    peak_rss_mib: f64,
    runs: f64,
    reconciles: f64,
    reconcile_seconds: f64,
    cpu: Vec<(String, f64)>,
    min_mem_available_mib: u64,
    load_before: String,
    load_after: String,
    /// Busy CPU seconds of the whole machine during the scenario, and its capacity
    /// (cores x wall time).
    machine_busy: f64,
    machine_capacity: f64,
    /// Lists the benchmark made while waiting, and the API server CPU seconds one such
    /// list of every object costs (measured afterwards, with the controller idle).
    polls: usize,
    poll_cost: f64,
    all_requests: BTreeMap<String, f64>,
    controller_requests: BTreeMap<String, u64>,
    plan_id_checked: bool,
}

impl Measured {
    fn total(&self) -> Duration {
        self.all.unwrap_or(Duration::ZERO)
    }

    fn runs_per_second(&self) -> f64 {
        if self.all.is_some() { self.objects as f64 / self.total().as_secs_f64() } else { 0.0 }
    }

    /// Objects per second between 10 % and 90 % Ready: the rate once the queue is full,
    /// without the start (source fetch, first pods) and the tail. None when every object
    /// can run at once (no queue: the objects finish together and the rate means nothing).
    fn steady_rate(&self) -> Option<f64> {
        if self.objects <= usize::from(self.concurrent) {
            return None;
        }
        let (a, b) = (self.p10?, self.p90?);
        let n = (self.objects as f64 * 0.9).ceil() - (self.objects as f64 * 0.1).ceil();
        (b > a).then(|| n / (b - a).as_secs_f64())
    }

    fn cpu_of(&self, who: &str) -> f64 {
        self.cpu.iter().find(|(w, _)| w == who).map(|(_, c)| *c).unwrap_or(0.0)
    }

    fn print(&self) {
        let secs = |d: Option<Duration>| d.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "-".into());
        println!(
            "\n== {} runner, {} objects, --concurrent {}{} ==",
            self.runner.name(),
            self.objects,
            self.concurrent,
            if self.api_counts { " (controller behind the counting proxy)" } else { "" }
        );
        println!(
            "  Ready: {}/{}{}",
            self.ready,
            self.objects,
            if self.failed.is_empty() { String::new() } else { format!(", failed {}", self.failed.len()) }
        );
        for f in self.failed.iter().take(3) {
            println!("    failed: {f}");
        }
        println!("  objects created in {:.1} s (parallelism {CREATE_PARALLELISM})", self.create.as_secs_f64());
        println!(
            "  Ready after: first {}, 10% {}, 50% {}, 90% {}, all {}",
            secs(self.first),
            secs(self.p10),
            secs(self.p50),
            secs(self.p90),
            secs(self.all)
        );
        println!(
            "  runs/s: {:.2} overall, {} between 10% and 90%",
            self.runs_per_second(),
            self.steady_rate().map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
        );
        println!(
            "  runs {} and Terraform reconciles {} for {} objects ({:.2} reconciles per object, mean reconcile {:.2} s)",
            self.runs,
            self.reconciles,
            self.objects,
            self.reconciles / self.objects as f64,
            if self.reconciles > 0.0 { self.reconcile_seconds / self.reconciles } else { 0.0 }
        );
        println!("  controller RSS: {:.0} MiB idle, peak (VmHWM) {:.0} MiB", self.idle_rss_mib, self.peak_rss_mib);
        let total: f64 = self.cpu.iter().map(|(_, c)| c).sum();
        let split: Vec<String> = self.cpu.iter().map(|(w, c)| format!("{w} {c:.1} s ({:.0}%)", 100.0 * c / total.max(1e-9))).collect();
        println!("  CPU during the scenario, {total:.1} s in all: {}", split.join(", "));
        println!("  controller CPU per object: {:.1} ms", 1000.0 * self.cpu_of("controller") / self.objects as f64);
        println!(
            "  machine: load {} before, {} after; lowest MemAvailable {} MiB",
            self.load_before, self.load_after, self.min_mem_available_mib
        );
        println!(
            "  machine CPU: {:.0} s busy of {:.0} s (all cores x wall), of which other tenants {:.0} s ({:.0}% of the machine)",
            self.machine_busy,
            self.machine_capacity,
            (self.machine_busy - total).max(0.0),
            100.0 * (self.machine_busy - total).max(0.0) / self.machine_capacity.max(1e-9)
        );
        println!(
            "  the benchmark's own polling: {} lists of every object, ~{:.0} ms of API server CPU each: ~{:.1} s of the API server's {:.1} s",
            self.polls,
            1000.0 * self.poll_cost,
            self.polls as f64 * self.poll_cost,
            self.cpu_of("kube-apiserver")
        );
        println!("  plan id as driftless_core::PlanId computes it: {}", if self.plan_id_checked { "yes" } else { "NOT CHECKED" });
        let top = |m: Vec<(String, f64)>, what: &str| {
            let mut m = m;
            m.sort_by(|a, b| b.1.total_cmp(&a.1));
            let total: f64 = m.iter().map(|(_, v)| v).sum();
            println!("  {what}: {:.1} per object in all", total / self.objects as f64);
            for (k, v) in m.iter().take(14) {
                println!("    {:>7.2}  {k}", v / self.objects as f64);
            }
        };
        top(
            self.all_requests.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            "API requests of every client per object (apiserver_request_total)",
        );
        if !self.controller_requests.is_empty() {
            top(
                self.controller_requests.iter().map(|(k, v)| (k.clone(), *v as f64)).collect(),
                "the controller's own API requests per object",
            );
        }
    }
}

struct ControllerProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn run_scenario(tools: &Tools, settings: &Settings, runner: Runner, objects: usize, concurrent: u16) -> Result<Measured> {
    let ticks = clock_ticks();
    let dir = tempfile::Builder::new().prefix("driftless-bench-").tempdir()?;
    let home = dir.path().join("home");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("main.tf"), MODULE)?;
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "module"]);

    let cluster = TestCluster::start_with(ClusterOptions::default()).await.context("starting the test cluster")?;
    let _kubelet = FakeKubelet::start(cluster.access(), KubeletOptions::default()).await.context("starting the fake kubelet")?;
    let client = cluster.admin_client()?;
    testkit::install_crds(&client, &tools.crds).await?;
    let ns = testkit::create_namespace(&client, "bench").await?.name;
    testkit::install_runner_rbac(&client, &tools.driftless, &ns).await?;

    // The controller reaches the API directly, or through the counting proxy.
    let proxy = if settings.api_counts { Some(FaultProxy::start(&cluster).await?) } else { None };
    let kubeconfig = dir.path().join("kubeconfig");
    match &proxy {
        Some(p) => p.access().write_kubeconfig(&kubeconfig, "admin")?,
        None => cluster.write_kubeconfig(&kubeconfig, "admin")?,
    }
    let metrics = format!("127.0.0.1:{}", free_port());
    let artifacts = format!("127.0.0.1:{}", free_port());
    let runner_command = match runner {
        Runner::Real => tools.runner.display().to_string(),
        Runner::Noop => tools.noop_runner.display().to_string(),
    };
    let log = dir.path().join("controller.log");
    let mut cmd = Command::new(&tools.driftless);
    cmd.arg("--terraform")
        .arg(&tools.terraform)
        .arg("controller")
        .arg(format!("--concurrent={concurrent}"))
        .arg(format!("--watch-namespace={ns}"))
        .arg(format!("--metrics-addr={metrics}"))
        .arg(format!("--artifact-addr={artifacts}"))
        .arg(format!("--artifact-url=http://{artifacts}"))
        .arg(format!("--storage-path={}", dir.path().join("storage").display()))
        .arg(format!("--runner-command={runner_command}"))
        .arg(format!("--runner-env=TF_CLI_CONFIG_FILE={}", tools.cli_config.display()))
        .arg("--runner-env=CHECKPOINT_DISABLE=1")
        // The fake kubelet's pod directories are deep: providers' plugin sockets under them
        // would exceed the 108-byte unix socket path limit.
        .arg("--runner-env=TMPDIR=/tmp")
        .arg(format!("--leader-election-namespace={ns}"))
        .arg("--identity=bench-controller")
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", &home)
        .env_remove("RUST_LOG")
        .env_remove("DRIFTLESS_LOG");
    if let Some(filter) = &settings.log {
        cmd.env("DRIFTLESS_LOG", filter);
    }
    let file = std::fs::File::create(&log)?;
    cmd.stdout(Stdio::from(file.try_clone()?)).stderr(Stdio::from(file));
    let controller = ControllerProcess { child: cmd.spawn().context("starting driftless controller")?, log };
    let pid = controller.child.id();

    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(&metrics, "/readyz").await {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the controller is not ready after 60 s:\n{}", log_tail(&controller.log, 30));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_rss_mib = status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;

    // What every process has used so far, to subtract at the end.
    let me = std::process::id().to_string();
    let components: Vec<(String, String)> = cluster
        .component_pids()
        .into_iter()
        .map(|(name, pid)| (name.to_string(), pid.to_string()))
        .chain([("controller".to_string(), pid.to_string())])
        .collect();
    let cpu_before: Vec<f64> = components.iter().map(|(_, p)| proc_stat(p, ticks).cpu).collect();
    let self_before = proc_stat(&me, ticks);
    let requests_before = apiserver_requests(&apiserver_metrics(&client).await);
    let controller_requests_before = proxy.as_ref().map(|p| p.request_counts()).unwrap_or_default();
    let load_before = loadavg();
    let busy_before = machine_busy_seconds(ticks);
    let mut min_mem = mem_available_mib();

    // The clock starts with the first object a user applies.
    let clock = Instant::now();
    let gits: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let source: GitRepository = serde_json::from_value(json!({
        "apiVersion": "driftless.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": { "name": "bench", "namespace": ns },
        "spec": { "url": format!("file://{}", repo.display()), "interval": "1h", "ref": { "branch": "main" } },
    }))?;
    gits.create(&PostParams::default(), &source).await.context("creating the GitRepository")?;
    let terraforms: Api<Terraform> = Api::namespaced(client.clone(), &ns);
    let created = futures::stream::iter(0..objects)
        .map(|i| {
            let api = terraforms.clone();
            let ns = ns.clone();
            async move {
                let name = format!("tf-{i:05}");
                let object: Terraform = serde_json::from_value(json!({
                    "apiVersion": "driftless.dev/v1alpha1",
                    "kind": "Terraform",
                    "metadata": { "name": name, "namespace": ns },
                    "spec": {
                        "sourceRef": { "kind": "GitRepository", "name": "bench" },
                        "path": "./",
                        "interval": "1h",
                        "approvePlan": "auto",
                        "vars": [ { "name": "name", "value": name } ],
                    },
                }))?;
                api.create(&PostParams::default(), &object).await.with_context(|| format!("creating Terraform {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect::<Result<Vec<_>>>()?;
    let create = clock.elapsed();

    let mut m = Measured {
        runner,
        objects,
        concurrent,
        api_counts: settings.api_counts,
        ready: 0,
        failed: Vec::new(),
        create,
        first: None,
        p10: None,
        p50: None,
        p90: None,
        all: None,
        idle_rss_mib,
        peak_rss_mib: 0.0,
        runs: 0.0,
        reconciles: 0.0,
        reconcile_seconds: 0.0,
        cpu: Vec::new(),
        min_mem_available_mib: 0,
        load_before,
        load_after: String::new(),
        machine_busy: 0.0,
        machine_capacity: 0.0,
        polls: 0,
        poll_cost: 0.0,
        all_requests: BTreeMap::new(),
        controller_requests: BTreeMap::new(),
        plan_id_checked: false,
    };
    let last = loop {
        let list = terraforms.list(&ListParams::default()).await.context("listing Terraform objects")?;
        m.polls += 1;
        let ready = list.items.iter().filter(|t| is_ready(t)).count();
        let now = clock.elapsed();
        for (mark, at) in [
            (1, &mut m.first),
            (objects.div_ceil(10), &mut m.p10),
            (objects.div_ceil(2), &mut m.p50),
            ((objects * 9).div_ceil(10), &mut m.p90),
            (objects, &mut m.all),
        ] {
            if ready >= mark.max(1) && at.is_none() {
                *at = Some(now);
            }
        }
        min_mem = min_mem.min(mem_available_mib());
        m.ready = ready;
        m.failed = list.items.iter().filter_map(failure).collect();
        if ready + m.failed.len() >= objects {
            break list.items;
        }
        if now > settings.timeout {
            eprintln!(
                "timed out after {:?} with {ready}/{objects} Ready; controller log tail:\n{}",
                settings.timeout,
                log_tail(&controller.log, 20)
            );
            break list.items;
        }
        tokio::time::sleep(POLL).await;
    };

    // Read everything before the controller stops.
    m.peak_rss_mib = status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    let self_after = proc_stat(&me, ticks);
    for ((name, p), before) in components.iter().zip(&cpu_before) {
        m.cpu.push((name.clone(), proc_stat(p, ticks).cpu - before));
    }
    // Runner pods are processes this benchmark's fake kubelet waits for: their CPU (and
    // terraform's, which the runner waits for) lands in this process's children time.
    m.cpu.push(("runner pods".into(), self_after.children_cpu - self_before.children_cpu));
    m.cpu.push(("fake kubelet + benchmark".into(), self_after.cpu - self_before.cpu));
    m.min_mem_available_mib = min_mem;
    m.load_after = loadavg();
    m.machine_busy = machine_busy_seconds(ticks) - busy_before;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    m.machine_capacity = cores * clock.elapsed().as_secs_f64();
    let requests_after = apiserver_requests(&apiserver_metrics(&client).await);
    m.all_requests = requests_after
        .iter()
        .map(|(k, v)| (k.clone(), v - requests_before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    if let Some(p) = &proxy {
        m.controller_requests = p
            .request_counts()
            .into_iter()
            .map(|(k, v)| {
                let before = controller_requests_before.get(&k).copied().unwrap_or(0);
                (k, v - before)
            })
            .filter(|(_, v)| *v > 0)
            .collect();
    }
    if let Ok((200, text)) = http_get(&metrics, "/metrics").await {
        m.runs = metric_sum(&text, "driftless_runs_total", &[("kind", "Terraform")]);
        m.reconciles = metric_sum(&text, "driftless_reconcile_total", &[("kind", "Terraform")]);
        m.reconcile_seconds = metric_sum(&text, "driftless_reconcile_duration_seconds_sum", &[("kind", "Terraform")]);
    }
    // The noop runner's plan id must be the one driftless computes, or the benchmark
    // would measure a different path from the real runner's.
    if let Some(t) = last.iter().find(|t| is_ready(t)) {
        let s = t.status.as_ref().expect("a Ready object has a status");
        let expected = driftless_core::PlanId::new(
            s.common.last_applied_revision.as_deref().unwrap_or_default(),
            s.last_inputs_digest.as_deref().unwrap_or_default(),
            None,
        );
        let actual = s.common.plan.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        if actual != expected.as_str() {
            return Err(anyhow!("plan id {actual} of {:?} is not {expected}", t.metadata.name));
        }
        m.plan_id_checked = true;
    }
    // The polling is the benchmark's own load on the API server: price one list now that
    // every object is Ready and the controller is idle.
    let apiserver = components.iter().find(|(name, _)| name == "kube-apiserver").map(|(_, p)| p.clone()).unwrap_or_default();
    let before = proc_stat(&apiserver, ticks).cpu;
    const PRICED_LISTS: usize = 10;
    for _ in 0..PRICED_LISTS {
        terraforms.list(&ListParams::default()).await.context("listing Terraform objects")?;
    }
    m.poll_cost = (proc_stat(&apiserver, ticks).cpu - before) / PRICED_LISTS as f64;
    drop(controller);
    if settings.keep {
        println!("  kept {} (controller.log)", dir.keep().display());
    }
    Ok(m)
}

fn main() {
    let settings = Settings::from_env();
    if let Ok(filter) = std::env::var("DRIFTLESS_BENCH_TRACE") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_writer(std::io::stderr).init();
    }
    let tools = Tools::find().expect("tools");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    println!(
        "controller benchmark: {} binaries, {} cores, load {} at start; real runner: {} objects, noop runner: {} objects, --concurrent {:?}",
        tools.profile(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        loadavg(),
        settings.real,
        settings.noop,
        settings.concurrent
    );
    let mut results = Vec::new();
    for &runner in &settings.runners {
        let objects = match runner {
            Runner::Real => settings.real,
            Runner::Noop => settings.noop,
        };
        if objects == 0 {
            continue;
        }
        for &concurrent in &settings.concurrent {
            match rt.block_on(run_scenario(&tools, &settings, runner, objects, concurrent)) {
                Ok(m) => {
                    m.print();
                    results.push(m);
                }
                Err(e) => println!("\n== {} runner, {objects} objects, --concurrent {concurrent}: FAILED: {e:#}", runner.name()),
            }
        }
    }
    println!("\nsummary ({} binaries; timings on a shared machine are noisy, compare within one run)", tools.profile());
    println!(
        "{:<6} {:>9} {:>5} {:>10} {:>7} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "runner",
        "objects",
        "conc",
        "all Ready",
        "runs/s",
        "steady/s",
        "peak RSS",
        "ctl CPU",
        "ctl ms/obj",
        "apisrv CPU",
        "etcd CPU",
        "pods CPU"
    );
    for m in &results {
        println!(
            "{:<6} {:>9} {:>5} {:>10} {:>7.2} {:>8} {:>5.0} MiB {:>7.1} s {:>10.1} {:>8.1} s {:>7.1} s {:>7.1} s",
            m.runner.name(),
            format!("{}/{}", m.ready, m.objects),
            m.concurrent,
            m.all.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
            m.runs_per_second(),
            m.steady_rate().map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
            m.peak_rss_mib,
            m.cpu_of("controller"),
            1000.0 * m.cpu_of("controller") / m.objects as f64,
            m.cpu_of("kube-apiserver"),
            m.cpu_of("etcd"),
            m.cpu_of("runner pods"),
        );
    }
    for runner in [Runner::Real, Runner::Noop] {
        let of: Vec<&Measured> = results.iter().filter(|m| m.runner == runner && m.all.is_some()).collect();
        if let [a, b] = of.as_slice() {
            println!(
                "{} runner: --concurrent {} vs {}: time to all Ready {:.2}x, controller peak RSS {:.2}x",
                runner.name(),
                b.concurrent,
                a.concurrent,
                b.total().as_secs_f64() / a.total().as_secs_f64(),
                b.peak_rss_mib / a.peak_rss_mib.max(1e-9)
            );
        }
    }
    println!(
        "anchors: tofu-controller claims 1,500 modules reconciled concurrently; Flux reports 1,000 Kustomizations in ~4 min at 175 MiB"
    );
}
