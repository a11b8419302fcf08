//! One pod on the fake node: volumes, init containers, containers as local processes (or
//! simulated), restarts, injected faults, status reports, and graceful deletion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt as _};
use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::expand::{PathMap, expand, safe_join};
use super::mount::{MountError, Objects, container_env, materialize_volumes};
use super::{FAULT_AFTER_ANNOTATION, FAULT_ANNOTATION, FAULT_CONTAINER_ANNOTATION, Fault, PodUpdate, SIMULATE_ANNOTATION, Shared};
use crate::process::{ManagedProcess, Spec};

/// Cap on a container's termination message, as on a real kubelet.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Lines of log used as the message under `FallbackToLogsOnError`, as on a real kubelet.
const FALLBACK_LOG_LINES: usize = 80;
/// Log bytes used as the message under `FallbackToLogsOnError`.
const FALLBACK_LOG_BYTES: usize = 2048;

type EvFuture = Pin<Box<dyn Future<Output = Ev> + Send>>;

enum Ev {
    Exited { idx: usize, run: u64, code: i32 },
    Restart { idx: usize },
}

#[derive(Clone, Debug)]
enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(ContainerStateTerminated),
}

struct Slot {
    spec: Container,
    init: bool,
    restart_count: i32,
    state: State,
    last: Option<ContainerStateTerminated>,
    pgid: Option<u32>,
    simulated: bool,
    oom_requested: bool,
    run: u64,
    dir: PathBuf,
    started: Option<Instant>,
}

impl Slot {
    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
    fn terminated(&self) -> Option<&ContainerStateTerminated> {
        match &self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }
}

enum Outcome {
    /// The pod left the API: stop.
    Removed,
    /// The pod is being deleted: terminate and confirm.
    Deleting,
}

pub(super) struct PodWorker {
    shared: Arc<Shared>,
    updates: watch::Receiver<PodUpdate>,
    pod: Pod,
    api: Api<Pod>,
    dir: PathBuf,
    slots: Vec<Slot>,
    fault: Option<Fault>,
    fault_after: Duration,
    fault_container: Option<String>,
    force_simulate: bool,
    volumes_ready: bool,
    init_done: bool,
    terminal: Option<(String, Option<String>, Option<String>)>,
    evicted: bool,
    start_time: Timestamp,
    last_published: Option<serde_json::Value>,
    events: FuturesUnordered<EvFuture>,
    path_map: BTreeMap<String, PathMap>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn restart_backoff(restarts: i32) -> Duration {
    // The kubelet's back-off starts at 10s and doubles to 5m; tests need it shorter.
    let exp = u32::try_from(restarts.clamp(0, 4)).unwrap_or(0);
    Duration::from_millis(500 * 2u64.pow(exp))
}

impl PodWorker {
    pub(super) fn new(shared: Arc<Shared>, updates: watch::Receiver<PodUpdate>, pod: Pod) -> Self {
        let namespace = pod.namespace().unwrap_or_default();
        let api = Api::namespaced(shared.client.clone(), &namespace);
        let dir = shared.root.join(format!("{}_{}_{}", namespace, pod.name_any(), pod.uid().unwrap_or_default()));
        let annotations = pod.annotations();
        let fault = annotations.get(FAULT_ANNOTATION).and_then(|f| Fault::parse(f));
        let fault_after = annotations.get(FAULT_AFTER_ANNOTATION).and_then(|d| humantime::parse_duration(d).ok()).unwrap_or(Duration::ZERO);
        let fault_container = annotations.get(FAULT_CONTAINER_ANNOTATION).cloned();
        let force_simulate = annotations.get(SIMULATE_ANNOTATION).is_some_and(|v| v == "true");
        let spec = pod.spec.clone().unwrap_or_default();
        let mut slots = Vec::new();
        for (init, containers) in [(true, spec.init_containers.unwrap_or_default()), (false, spec.containers)] {
            for c in containers {
                let cdir = dir.join("containers").join(&c.name);
                slots.push(Slot {
                    spec: c,
                    init,
                    restart_count: 0,
                    state: State::Waiting { reason: if init { "PodInitializing" } else { "ContainerCreating" }.into(), message: None },
                    last: None,
                    pgid: None,
                    simulated: false,
                    oom_requested: false,
                    run: 0,
                    dir: cdir,
                    started: None,
                });
            }
        }
        Self {
            shared,
            updates,
            pod,
            api,
            dir,
            slots,
            fault,
            fault_after,
            fault_container,
            force_simulate,
            volumes_ready: false,
            init_done: false,
            terminal: None,
            evicted: false,
            start_time: now(),
            last_published: None,
            events: FuturesUnordered::new(),
            path_map: BTreeMap::new(),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.pod.namespace().unwrap_or_default(), self.pod.name_any())
    }

    fn restart_policy(&self) -> String {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }

    fn fault_applies_to(&self, idx: usize) -> bool {
        match &self.fault_container {
            Some(name) => self.slots[idx].spec.name == *name,
            None => !self.slots[idx].init,
        }
    }

    /// Runs the pod until it leaves the API.
    pub(super) async fn run(mut self) {
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            // Finished before this kubelet saw it: only deletion is left to confirm.
            self.finish().await;
            return;
        }
        if let Some(start) = self.pod.status.as_ref().and_then(|s| s.start_time.clone()) {
            self.start_time = start.0;
        }
        let outcome = self.run_until_deleted().await;
        if let Outcome::Deleting = outcome {
            self.terminate_all().await;
            self.confirm_deletion().await;
        } else {
            self.kill_all(Signal::SIGKILL);
        }
        self.cleanup();
    }

    /// Waits for deletion and confirms it (a pod that already finished).
    async fn finish(&mut self) {
        loop {
            match self.current() {
                None => break,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    self.confirm_deletion().await;
                    break;
                }
                Some(_) => {}
            }
            if self.updates.changed().await.is_err() {
                break;
            }
        }
        self.cleanup();
    }

    fn current(&mut self) -> Option<Pod> {
        match &*self.updates.borrow_and_update() {
            PodUpdate::Present(pod) => Some((**pod).clone()),
            PodUpdate::Removed => None,
        }
    }

    /// Applies the latest pod update; returns an outcome when the pod is going away.
    fn check_update(&mut self) -> Option<Outcome> {
        match self.current() {
            None => Some(Outcome::Removed),
            Some(pod) => {
                let deleting = pod.metadata.deletion_timestamp.is_some();
                self.pod = pod;
                deleting.then_some(Outcome::Deleting)
            }
        }
    }

    /// Sleeps for `d` unless the pod goes away first.
    async fn sleep(&mut self, d: Duration) -> Option<Outcome> {
        let deadline = tokio::time::sleep(d);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return None,
                changed = self.updates.changed() => {
                    if changed.is_err() {
                        return Some(Outcome::Removed);
                    }
                    if let Some(outcome) = self.check_update() {
                        return Some(outcome);
                    }
                }
            }
        }
    }

    async fn wait_forever(&mut self) -> Outcome {
        loop {
            if let Some(outcome) = self.sleep(Duration::from_secs(3600)).await {
                return outcome;
            }
        }
    }

    async fn run_until_deleted(&mut self) -> Outcome {
        if let Some(outcome) = self.check_update() {
            return outcome;
        }
        self.publish().await;

        match self.fault {
            Some(Fault::ImagePull) => {
                for idx in 0..self.slots.len() {
                    if self.fault_applies_to(idx) {
                        let image = self.slots[idx].spec.image.clone().unwrap_or_default();
                        self.slots[idx].state = State::Waiting {
                            reason: "ErrImagePull".into(),
                            message: Some(format!(
                                "failed to pull and unpack image \"{image}\": injected by testkit ({FAULT_ANNOTATION}: image-pull)"
                            )),
                        };
                    }
                }
                self.volumes_ready = true;
                self.publish().await;
                if let Some(outcome) = self.sleep(Duration::from_secs(1)).await {
                    return outcome;
                }
                for idx in 0..self.slots.len() {
                    if self.fault_applies_to(idx) {
                        let image = self.slots[idx].spec.image.clone().unwrap_or_default();
                        self.slots[idx].state = State::Waiting {
                            reason: "ImagePullBackOff".into(),
                            message: Some(format!("Back-off pulling image \"{image}\"")),
                        };
                    }
                }
                self.publish().await;
                return self.wait_forever().await;
            }
            Some(Fault::NeverStart) => return self.wait_forever().await,
            _ => {}
        }

        // Volumes: retried while a referenced Secret or ConfigMap is missing, as the
        // kubelet does (the pod stays ContainerCreating).
        let volume_dirs = loop {
            let mut objects = Objects::new(self.shared.client.clone(), &self.pod.namespace().unwrap_or_default());
            match materialize_volumes(&mut objects, &self.pod, &self.shared.node_name, &self.dir.join("volumes")).await {
                Ok(dirs) => {
                    if let Some(token) = objects.token.take() {
                        self.write_pod_kubeconfig(&token);
                    }
                    break dirs;
                }
                Err(err) => {
                    tracing::info!(pod = %self.key(), %err, "volumes not ready; retrying");
                    if let Some(outcome) = self.sleep(Duration::from_millis(500)).await {
                        return outcome;
                    }
                }
            }
        };
        self.volumes_ready = true;
        self.build_path_maps(&volume_dirs);

        // Init containers, one after another.
        let init_count = self.slots.iter().filter(|s| s.init).count();
        for idx in 0..init_count {
            loop {
                if let Some(outcome) = self.start_container(idx).await {
                    return outcome;
                }
                self.publish().await;
                let code = loop {
                    match self.next_event().await {
                        Err(outcome) => return outcome,
                        Ok(Some(Ev::Exited { idx: i, run, code })) if i == idx && run == self.slots[idx].run => break code,
                        Ok(_) => {}
                    }
                };
                self.record_exit(idx, code);
                if code == 0 {
                    break;
                }
                if self.restart_policy() == "Never" {
                    self.terminal = Some(("Failed".into(), None, None));
                    self.publish().await;
                    return self.wait_forever().await;
                }
                self.publish().await;
                let backoff = restart_backoff(self.slots[idx].restart_count);
                self.slots[idx].state = State::Waiting { reason: "CrashLoopBackOff".into(), message: None };
                self.publish().await;
                if let Some(outcome) = self.sleep(backoff).await {
                    return outcome;
                }
                self.slots[idx].restart_count += 1;
            }
        }
        self.init_done = true;

        for idx in init_count..self.slots.len() {
            if let Some(outcome) = self.start_container(idx).await {
                return outcome;
            }
        }
        self.publish().await;

        // Faults that strike a running pod.
        let fault_at = tokio::time::Instant::now() + self.fault_after;
        let mut fault_pending = matches!(self.fault, Some(Fault::Oom | Fault::Evict));
        let deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        let mut deadline_pending = deadline.is_some();

        loop {
            if self.terminal.is_some() {
                self.publish().await;
                return self.wait_forever().await;
            }
            let fault_sleep = tokio::time::sleep_until(fault_at);
            let deadline_sleep = tokio::time::sleep_until(deadline.unwrap_or(fault_at));
            tokio::select! {
                event = self.next_event() => match event {
                    Err(outcome) => return outcome,
                    Ok(Some(Ev::Exited { idx, run, code })) if run == self.slots[idx].run => {
                        self.record_exit(idx, code);
                        self.after_exit(idx);
                    }
                    Ok(Some(Ev::Restart { idx })) => {
                        self.slots[idx].restart_count += 1;
                        if let Some(outcome) = self.start_container(idx).await {
                            return outcome;
                        }
                    }
                    Ok(_) => {}
                },
                () = fault_sleep, if fault_pending => {
                    fault_pending = false;
                    match self.fault {
                        Some(Fault::Oom) => self.inject_oom(),
                        Some(Fault::Evict) => self.evict(),
                        _ => {}
                    }
                }
                () = deadline_sleep, if deadline_pending => {
                    deadline_pending = false;
                    self.kill_all(Signal::SIGKILL);
                    self.terminal = Some((
                        "Failed".into(),
                        Some("DeadlineExceeded".into()),
                        Some("Pod was active on the node longer than the specified deadline".into()),
                    ));
                    self.mark_all_terminated(137, "Error");
                }
            }
            if self.terminal.is_none() {
                let phase = self.phase();
                if phase == "Succeeded" || phase == "Failed" {
                    self.terminal = Some((phase, None, None));
                }
            }
            self.publish().await;
        }
    }

    /// The next container event, or the pod going away. `Ok(None)` when the pod changed
    /// otherwise (someone else changed it, e.g. the node-lifecycle controller marking it
    /// not ready on a lost node), so that the caller re-checks the status it reports.
    async fn next_event(&mut self) -> Result<Option<Ev>, Outcome> {
        tokio::select! {
            ev = self.events.next(), if !self.events.is_empty() => Ok(ev),
            changed = self.updates.changed() => {
                if changed.is_err() {
                    return Err(Outcome::Removed);
                }
                match self.check_update() {
                    Some(outcome) => Err(outcome),
                    None => Ok(None),
                }
            }
        }
    }

    fn build_path_maps(&mut self, volume_dirs: &std::collections::HashMap<String, PathBuf>) {
        let rootfs = self.dir.join("rootfs");
        for slot in &self.slots {
            let mut map = PathMap::default();
            for mount in slot.spec.volume_mounts.as_deref().unwrap_or_default() {
                if let Some(dir) = volume_dirs.get(&mount.name) {
                    let host = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                        Some(sub) => safe_join(dir, sub),
                        None => dir.clone(),
                    };
                    let _ = std::fs::create_dir_all(&host);
                    map.insert(&mount.mount_path, host);
                }
            }
            let tm = slot.spec.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into());
            map.insert(&tm, slot.dir.join("termination-log"));
            if let Some(wd) = slot.spec.working_dir.as_deref().filter(|w| w.starts_with('/'))
                && map.resolve(wd).is_none()
                && !std::path::Path::new(wd).is_dir()
            {
                map.insert(wd, safe_join(&rootfs, wd));
            }
            self.path_map.insert(slot.spec.name.clone(), map);
        }
    }

    fn write_pod_kubeconfig(&self, token: &str) {
        let mut access = self.shared.access.clone();
        access.set_token_user("pod", token);
        if let Err(err) = std::fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| access.write_kubeconfig(&self.dir.join("kubeconfig"), "pod").map_err(|e| e.to_string()))
        {
            tracing::warn!(pod = %self.key(), %err, "could not write the pod's kubeconfig");
        }
    }

    /// Starts (or simulates) container `idx`. Returns an outcome if the pod went away
    /// while waiting for its configuration.
    async fn start_container(&mut self, idx: usize) -> Option<Outcome> {
        let spec = self.slots[idx].spec.clone();
        let map = self.path_map.get(&spec.name).cloned().unwrap_or_default();
        let cdir = self.slots[idx].dir.clone();
        let home = self.dir.join("home");
        for d in [&cdir, &home] {
            if let Err(err) = std::fs::create_dir_all(d) {
                tracing::warn!(%err, "creating container dir");
            }
        }
        let _ = std::fs::remove_file(cdir.join("termination-log"));
        if let Some(tm) = map.resolve(spec.termination_message_path.as_deref().unwrap_or("/dev/termination-log"))
            && let Some(parent) = tm.parent()
        {
            let _ = std::fs::create_dir_all(parent);
        }

        // Environment, retried while a referenced Secret/ConfigMap key is missing.
        let env = loop {
            let mut objects = Objects::new(self.shared.client.clone(), &self.pod.namespace().unwrap_or_default());
            match container_env(&mut objects, &self.pod, &self.shared.node_name, &spec, self.base_env(&home)).await {
                Ok(env) => break env,
                Err(MountError::Missing(msg)) => {
                    self.slots[idx].state = State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(msg) };
                    self.publish().await;
                }
                Err(err) => tracing::warn!(pod = %self.key(), %err, "container environment; retrying"),
            }
            if let Some(outcome) = self.sleep(Duration::from_millis(500)).await {
                return Some(outcome);
            }
        };
        let vars: std::collections::HashMap<String, String> = env.iter().cloned().collect();
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k, map.rewrite(&v))).collect();
        let mut argv: Vec<String> = spec.command.clone().unwrap_or_default();
        argv.extend(spec.args.clone().unwrap_or_default());
        let argv: Vec<String> = argv.iter().map(|a| map.rewrite(&expand(a, &vars))).collect();

        let cwd = match spec.working_dir.as_deref() {
            Some(wd) => map.resolve(wd).unwrap_or_else(|| PathBuf::from(wd)),
            None => cdir.clone(),
        };
        let _ = std::fs::create_dir_all(&cwd);

        let program = self.resolve_program(&spec, &argv, &env, &cwd);
        let slot = &mut self.slots[idx];
        slot.run += 1;
        slot.oom_requested = false;
        slot.started = Some(Instant::now());
        let run = slot.run;
        slot.state = State::Running { started_at: now() };
        match program {
            None => {
                // No process to run (no command, or command not on this machine): the
                // container is simulated, running and ready until the pod is deleted.
                slot.simulated = true;
                slot.pgid = None;
                tracing::debug!(pod = %self.key(), container = %spec.name, "simulated");
            }
            Some(program) => {
                slot.simulated = false;
                let process = ManagedProcess::spawn(
                    &Spec {
                        name: spec.name.clone(),
                        program,
                        args: argv[1..].to_vec(),
                        env: Some(env),
                        cwd: Some(cwd),
                        log_path: cdir.join("log"),
                    },
                    &self.shared.watchdog,
                );
                match process {
                    Ok(mut process) => {
                        slot.pgid = process.pgid();
                        self.events.push(Box::pin(async move {
                            let code = match process.wait().await {
                                Ok(status) => exit_code(status),
                                Err(_) => 128 + 9,
                            };
                            Ev::Exited { idx, run, code }
                        }));
                    }
                    Err(err) => {
                        slot.state = State::Terminated(ContainerStateTerminated {
                            exit_code: 128,
                            reason: Some("StartError".into()),
                            message: Some(err.to_string()),
                            started_at: Some(Time(now())),
                            finished_at: Some(Time(now())),
                            ..Default::default()
                        });
                        let restart = self.restart_policy() != "Never";
                        if restart {
                            let backoff = restart_backoff(self.slots[idx].restart_count);
                            self.events.push(Box::pin(async move {
                                tokio::time::sleep(backoff).await;
                                Ev::Restart { idx }
                            }));
                        }
                    }
                }
            }
        }
        None
    }

    /// The program to run, or `None` to simulate the container.
    fn resolve_program(&self, spec: &Container, argv: &[String], env: &[(String, String)], cwd: &std::path::Path) -> Option<PathBuf> {
        if self.force_simulate || spec.command.as_ref().is_none_or(Vec::is_empty) {
            return None;
        }
        let first = argv.first()?;
        if first.contains('/') {
            let path = if first.starts_with('/') { PathBuf::from(first) } else { cwd.join(first) };
            return path.is_file().then_some(path);
        }
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        which::which_in(first, Some(path), cwd).ok()
    }

    fn base_env(&self, home: &std::path::Path) -> Vec<(String, String)> {
        let (host, port) = self.shared.api_host_port();
        let mut env = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())),
            ("HOME".to_owned(), home.display().to_string()),
            ("HOSTNAME".to_owned(), self.pod.name_any()),
            ("KUBERNETES_SERVICE_HOST".to_owned(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".to_owned(), port.to_string()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".to_owned(), port.to_string()),
            ("KUBERNETES_PORT".to_owned(), format!("tcp://{host}:{port}")),
        ];
        let kubeconfig = self.dir.join("kubeconfig");
        if kubeconfig.is_file() {
            // In-cluster config would read fixed paths under /var/run/secrets; a process
            // here reads this kubeconfig (with the pod's own service-account token).
            env.push(("KUBECONFIG".to_owned(), kubeconfig.display().to_string()));
        }
        for key in ["LANG", "LC_ALL", "TZ"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.to_owned(), v));
            }
        }
        env
    }

    fn termination_message(&self, idx: usize, code: i32) -> Option<String> {
        let slot = &self.slots[idx];
        let mut message = std::fs::read(slot.dir.join("termination-log")).unwrap_or_default();
        message.truncate(MAX_MESSAGE_BYTES);
        let mut message = String::from_utf8_lossy(&message).into_owned();
        let fallback = slot.spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if message.is_empty() && fallback && code != 0 {
            let tail = crate::process::log_tail(&slot.dir.join("log"), FALLBACK_LOG_LINES);
            let start = tail.len().saturating_sub(FALLBACK_LOG_BYTES);
            let start = (start..tail.len()).find(|i| tail.is_char_boundary(*i)).unwrap_or(tail.len());
            message = tail[start..].to_owned();
        }
        (!message.is_empty()).then_some(message)
    }

    fn record_exit(&mut self, idx: usize, code: i32) {
        let message = self.termination_message(idx, code);
        let slot = &mut self.slots[idx];
        let started_at = match &slot.state {
            State::Running { started_at } => *started_at,
            _ => now(),
        };
        let (code, reason) = if slot.oom_requested {
            (137, "OOMKilled")
        } else if code == 0 {
            (0, "Completed")
        } else {
            (code, "Error")
        };
        slot.pgid = None;
        slot.state = State::Terminated(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.into()),
            message,
            started_at: Some(Time(started_at)),
            finished_at: Some(Time(now())),
            container_id: Some(container_id(&self.pod, &slot.spec.name, slot.run)),
            ..Default::default()
        });
        let name = slot.spec.name.clone();
        tracing::debug!(pod = %self.key(), container = %name, code, reason, "container exited");
    }

    /// After a main container exited: restart it if the policy says so.
    fn after_exit(&mut self, idx: usize) {
        let code = self.slots[idx].terminated().map_or(0, |t| t.exit_code);
        let restart = match self.restart_policy().as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if restart {
            let slot = &mut self.slots[idx];
            slot.last = slot.terminated().cloned();
            let backoff = restart_backoff(slot.restart_count);
            slot.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!("back-off {backoff:?} restarting failed container={}", slot.spec.name)),
            };
            self.events.push(Box::pin(async move {
                tokio::time::sleep(backoff).await;
                Ev::Restart { idx }
            }));
        }
    }

    fn inject_oom(&mut self) {
        for idx in 0..self.slots.len() {
            if !self.fault_applies_to(idx) || !self.slots[idx].running() {
                continue;
            }
            let slot = &mut self.slots[idx];
            slot.oom_requested = true;
            if let Some(pgid) = slot.pgid {
                crate::process::signal_group(pgid, Signal::SIGKILL);
            } else {
                // Simulated container: it "exits" now.
                self.record_exit(idx, 137);
                self.after_exit(idx);
            }
        }
    }

    /// Eviction as the kubelet's eviction manager does it: containers killed, the pod
    /// Failed with reason Evicted and a DisruptionTarget condition; the object stays.
    fn evict(&mut self) {
        self.kill_all(Signal::SIGKILL);
        self.mark_all_terminated(137, "Error");
        self.evicted = true;
        self.terminal = Some((
            "Failed".into(),
            Some("Evicted".into()),
            Some("The node was low on resource: memory. Threshold quantity: 100Mi, available: 10Mi. (injected by testkit)".into()),
        ));
    }

    fn mark_all_terminated(&mut self, code: i32, reason: &str) {
        // Late exit events belong to an older run and are ignored.
        for slot in &mut self.slots {
            if slot.running() || matches!(slot.state, State::Waiting { .. }) && slot.run > 0 {
                let started_at = match &slot.state {
                    State::Running { started_at } => *started_at,
                    _ => now(),
                };
                slot.run += 1;
                slot.pgid = None;
                slot.state = State::Terminated(ContainerStateTerminated {
                    exit_code: code,
                    reason: Some(reason.into()),
                    started_at: Some(Time(started_at)),
                    finished_at: Some(Time(now())),
                    container_id: Some(container_id(&self.pod, &slot.spec.name, slot.run)),
                    ..Default::default()
                });
            }
        }
        self.events = FuturesUnordered::new();
    }

    fn kill_all(&mut self, signal: Signal) {
        for slot in &self.slots {
            if let Some(pgid) = slot.pgid {
                crate::process::signal_group(pgid, signal);
            }
        }
    }

    /// Graceful termination: SIGTERM, then SIGKILL after the grace period (capped, so
    /// tests stay fast).
    async fn terminate_all(&mut self) {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(Duration::from_secs(30), Duration::from_secs)
            .min(self.shared.options.max_grace_period);
        self.kill_all(Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.slots.iter().any(|s| s.pgid.is_some()) {
            tokio::select! {
                ev = self.events.next() => match ev {
                    Some(Ev::Exited { idx, run, code }) if run == self.slots[idx].run => self.record_exit(idx, code),
                    Some(_) => {}
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => {
                    self.kill_all(Signal::SIGKILL);
                    break;
                }
            }
        }
        self.mark_all_terminated(137, "Error");
        if self.terminal.is_none() {
            self.terminal = Some((self.phase_when_stopped(), None, None));
        }
        self.publish().await;
    }

    /// The kubelet's final step of a graceful deletion: delete with grace period 0.
    async fn confirm_deletion(&mut self) {
        self.shared.wait_connected().await;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: self.pod.uid(), resource_version: None }),
            ..DeleteParams::default()
        };
        if let Err(err) = self.api.delete(&self.pod.name_any(), &params).await {
            match err {
                kube::Error::Api(status) if status.code == 404 || status.code == 409 => {}
                err => tracing::warn!(pod = %self.key(), %err, "confirming deletion"),
            }
        }
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn phase_when_stopped(&self) -> String {
        let failed = self.slots.iter().filter(|s| !s.init).any(|s| s.terminated().is_some_and(|t| t.exit_code != 0));
        if failed { "Failed".into() } else { "Succeeded".into() }
    }

    /// The pod phase from container states, as the kubelet computes it.
    fn phase(&self) -> String {
        if let Some((phase, _, _)) = &self.terminal {
            return phase.clone();
        }
        if !self.init_done {
            return "Pending".into();
        }
        let main: Vec<&Slot> = self.slots.iter().filter(|s| !s.init).collect();
        let waiting_fresh = main.iter().any(|s| matches!(s.state, State::Waiting { .. }) && s.last.is_none() && s.run == 0);
        if waiting_fresh {
            return "Pending".into();
        }
        let any_alive = main.iter().any(|s| s.running() || matches!(s.state, State::Waiting { .. }));
        if any_alive {
            return "Running".into();
        }
        match self.restart_policy().as_str() {
            "Always" => "Running".into(),
            _ => self.phase_when_stopped(),
        }
    }

    fn container_status(&self, slot: &Slot) -> ContainerStatus {
        let image = slot.spec.image.clone().unwrap_or_default();
        let state = match &slot.state {
            State::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
                ..Default::default()
            },
            State::Running { started_at } => {
                ContainerState { running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }), ..Default::default() }
            }
            State::Terminated(t) => ContainerState { terminated: Some(t.clone()), ..Default::default() },
        };
        let running = slot.running();
        let has_run = slot.run > 0;
        ContainerStatus {
            name: slot.spec.name.clone(),
            image: image.clone(),
            image_id: if has_run { format!("testkit://{image}") } else { String::new() },
            container_id: has_run.then(|| container_id(&self.pod, &slot.spec.name, slot.run)),
            ready: running && self.terminal.is_none(),
            started: Some(running),
            restart_count: slot.restart_count,
            state: Some(state),
            last_state: Some(slot.last.clone().map(|t| ContainerState { terminated: Some(t), ..Default::default() }).unwrap_or_default()),
            ..Default::default()
        }
    }

    fn build_status(&self) -> PodStatus {
        let phase = self.phase();
        let existing = self.pod.status.clone().unwrap_or_default();
        let main: Vec<&Slot> = self.slots.iter().filter(|s| !s.init).collect();
        let all_ready = !main.is_empty() && main.iter().all(|s| s.running()) && self.terminal.is_none();
        let completed = phase == "Succeeded" || phase == "Failed";
        let t = Time(now());
        let cond = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time: Some(t.clone()),
            ..Default::default()
        };
        let not_ready_reason = if completed { Some("PodCompleted") } else { Some("ContainersNotReady") };
        let not_ready: Vec<String> = main.iter().filter(|s| !s.running()).map(|s| s.spec.name.clone()).collect();
        let not_ready_msg =
            (!completed && !not_ready.is_empty()).then(|| format!("containers with unready status: [{}]", not_ready.join(" ")));
        let mut ours = vec![
            cond("PodReadyToStartContainers", self.volumes_ready && !completed, None, None),
            cond("Initialized", self.init_done, (!self.init_done).then_some("ContainersNotInitialized"), None),
            cond("ContainersReady", all_ready, (!all_ready).then_some(not_ready_reason).flatten(), not_ready_msg.clone()),
            cond("Ready", all_ready, (!all_ready).then_some(not_ready_reason).flatten(), not_ready_msg),
        ];
        if self.evicted {
            ours.push(cond(
                "DisruptionTarget",
                true,
                Some("TerminationByKubelet"),
                Some("The node was low on resource: memory. (injected by testkit)".into()),
            ));
        }
        // Keep conditions set by others (PodScheduled, DisruptionTarget from the taint
        // manager); keep transition times of conditions whose status did not change.
        let mut conditions: Vec<PodCondition> = existing.conditions.clone().unwrap_or_default();
        for mut c in ours {
            if let Some(old) = conditions.iter_mut().find(|o| o.type_ == c.type_) {
                if old.status == c.status {
                    c.last_transition_time = old.last_transition_time.clone();
                }
                *old = c;
            } else {
                conditions.push(c);
            }
        }
        let (reason, message) = match &self.terminal {
            Some((_, reason, message)) => (reason.clone(), message.clone()),
            None => (None, None),
        };
        let init_statuses: Vec<ContainerStatus> = self.slots.iter().filter(|s| s.init).map(|s| self.container_status(s)).collect();
        PodStatus {
            phase: Some(phase),
            conditions: Some(conditions),
            host_ip: Some("127.0.0.1".into()),
            host_ips: Some(vec![HostIP { ip: "127.0.0.1".into() }]),
            pod_ip: Some("127.0.0.1".into()),
            pod_ips: Some(vec![PodIP { ip: "127.0.0.1".into() }]),
            start_time: Some(Time(self.start_time)),
            container_statuses: Some(main.iter().map(|s| self.container_status(s)).collect()),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            qos_class: existing.qos_class.clone(),
            reason,
            message,
            ..Default::default()
        }
    }

    /// Whether the pod as last seen from the API shows what we would write, for the fields
    /// others may change behind our back (phase, readiness).
    fn api_agrees(&self, desired: &PodStatus) -> bool {
        let Some(current) = &self.pod.status else { return false };
        let condition =
            |s: &PodStatus, t: &str| s.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == t)).map(|c| c.status.clone());
        current.phase == desired.phase && ["Ready", "ContainersReady"].iter().all(|t| condition(current, t) == condition(desired, t))
    }

    /// Writes the status through the status subresource (a merge patch of the whole
    /// status), unless nothing changed. Waits while the node is lost.
    async fn publish(&mut self) {
        let status = self.build_status();
        let Ok(mut value) = serde_json::to_value(&status) else { return };
        let comparable = strip_times(&value);
        if self.last_published.as_ref() == Some(&comparable) && self.api_agrees(&status) {
            return;
        }
        self.shared.wait_connected().await;
        // Fields this kubelet does not manage are left as they are.
        if let Some(obj) = value.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        let patch = serde_json::json!({ "status": value });
        match self.api.patch_status(&self.pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(pod) => {
                self.pod.status = pod.status;
                self.last_published = Some(comparable);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => tracing::warn!(pod = %self.key(), %err, "status update failed"),
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9))
}

fn container_id(pod: &Pod, name: &str, run: u64) -> String {
    format!("testkit://{}-{name}-{run}", pod.uid().unwrap_or_default())
}

/// The status without timestamps, to tell whether anything but the clock changed.
fn strip_times(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "lastTransitionTime" | "lastProbeTime"))
                .map(|(k, v)| (k.clone(), strip_times(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(strip_times).collect()),
        other => other.clone(),
    }
}
