//! Runs `driftless-runner` as a run-to-completion pod, one per operation.
//!
//! The RunSpec goes into a Secret (it may carry sensitive variables and backend
//! credentials) mounted into the pod; the runner downloads the artifact from the
//! controller's artifact server, writes state and plans to the backend, and its result
//! into a Secret the pod owns. The controller never connects to the pod.
//!
//! # Guarantees
//! - A pod that ends without a result becomes a specific error (`RunnerOOMKilled`,
//!   `RunnerEvicted`, `RunnerImagePullFailed`, `RunnerDeadlineExceeded`, `RunnerLost`), never
//!   a wait without end: every wait has a deadline.
//! - A run left behind by a restarted controller is adopted, not duplicated: a pod of the
//!   same object still running is waited for (its lock would refuse a second runner anyway),
//!   and its result is used when it ran the same spec.
//! - Finished pods are deleted; their Secrets go with them (ownerReferences). With
//!   `alwaysCleanupRunnerPod: false` an ended pod stays (without its Secrets) until the
//!   object's next run starts or the object is deleted (ownerReference).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, SeccompProfile, Secret, SecretVolumeSource,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use sha2::{Digest, Sha256};

use super::{DispatchError, RunErrorKind, RunObserver, RunResult, RunSpec, RunnerDispatch};
use crate::api::Terraform;
use crate::store::kube::describe;

use crate::api::runner_pod::{RUNNER_CONTAINER, RUNNER_USER, SPEC_DIR, SPEC_VOLUME, WORK_DIR, WORK_VOLUME, effective_security_context};

const SPEC_KEY: &str = "runspec.json";
const RESULT_KEY: &str = "result.json";
use driftless_core::names::label::{
    KIND as LABEL_KIND, MANAGED_BY as LABEL_MANAGED_BY, NAME as LABEL_NAME, RUN_DIGEST as LABEL_RUN_DIGEST,
};
/// How long a pod may wait for an image or a node before the run is given up.
const START_DEADLINE: Duration = Duration::from_secs(300);

/// How runner pods are made; per-object settings come from the Terraform's
/// `runnerPodTemplate` and `serviceAccountName`.
#[derive(Clone, Debug)]
pub struct PodSettings {
    /// Image with `driftless-runner` and terraform.
    pub image: String,
    /// The runner's command in that image.
    pub command: Vec<String>,
    /// ServiceAccount of runner pods when a Terraform names none (`driftless install`
    /// creates it with the `driftless-runner` role in each runner namespace).
    pub service_account: String,
    /// Extra environment for every runner (e.g. a provider mirror).
    pub env: Vec<EnvVar>,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            image: format!("driftless-runner:{}", env!("CARGO_PKG_VERSION")),
            command: vec!["driftless-runner".into()],
            service_account: "driftless-runner".into(),
            env: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct PodDispatch {
    client: kube::Client,
    settings: PodSettings,
    observer: Option<std::sync::Arc<dyn RunObserver>>,
}

impl PodDispatch {
    pub fn new(client: kube::Client, settings: PodSettings) -> Self {
        Self { client, settings, observer: None }
    }

    /// Tells `observer` how every run ended (the controller counts them in its metrics).
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn RunObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn count(&self, spec: &RunSpec, outcome: &Result<RunResult, DispatchError>) {
        if let Some(observer) = &self.observer {
            observer.run_finished(spec, outcome);
        }
    }
}

/// What the pod's end says, in the dispatcher's words.
#[derive(Debug)]
enum PodEnd {
    Succeeded,
    Failed { message: String },
    OomKilled,
    Evicted { message: String },
    ImagePull { message: String },
    DeadlineExceeded,
    Lost { message: String },
}

/// Identifies what a run does, whoever dispatched it (the lock holder names the controller
/// instance and the pod, so it is left out).
fn digest_label(spec: &RunSpec) -> String {
    let mut spec = spec.clone();
    spec.lock_holder.clear();
    // Each dispatch signs the artifact URL anew; the artifact is the same.
    spec.artifact_url = driftless_core::artifact::shown_url(&spec.artifact_url).to_string();
    let bytes = serde_json::to_vec(&spec).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))[..16].to_string()
}

/// A pod name: the object's name (shortened), the operation and a unique suffix.
fn pod_name(spec: &RunSpec) -> String {
    let unique = hex::encode(Sha256::digest(format!("{}{:?}", spec.object, std::time::SystemTime::now()).as_bytes()));
    let op = serde_json::to_value(spec.operation).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let base: String = spec.object.name.chars().take(40).collect();
    format!("{}-{op}-{}", base.trim_end_matches('-'), &unique[..6])
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl PodDispatch {
    fn pod(&self, name: &str, spec: &RunSpec, object: &Terraform) -> Pod {
        let template = object.spec.runner_pod_template.clone().unwrap_or_default();
        let pod_spec = template.spec.unwrap_or_default();
        let mut labels: BTreeMap<String, String> = template.metadata.as_ref().map(|m| m.labels.clone()).unwrap_or_default();
        labels.insert(LABEL_MANAGED_BY.into(), "driftless".into());
        labels.insert(LABEL_KIND.into(), spec.object.kind.clone());
        labels.insert(LABEL_NAME.into(), spec.object.name.clone());
        labels.insert(LABEL_RUN_DIGEST.into(), digest_label(spec));
        let annotations = template.metadata.as_ref().map(|m| m.annotations.clone()).filter(|a| !a.is_empty());
        let mut command = self.settings.command.clone();
        command.extend([
            "--spec-file".to_string(),
            format!("{SPEC_DIR}/{SPEC_KEY}"),
            "--result-secret".into(),
            format!("{name}-result"),
            "--termination-log".into(),
            "/dev/termination-log".into(),
        ]);
        let mut env = vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_UID", "metadata.uid"),
            EnvVar { name: "HOME".into(), value: Some(WORK_DIR.into()), ..Default::default() },
            EnvVar { name: "TMPDIR".into(), value: Some(WORK_DIR.into()), ..Default::default() },
            EnvVar { name: "TF_IN_AUTOMATION".into(), value: Some("1".into()), ..Default::default() },
        ];
        env.extend(self.settings.env.iter().cloned());
        env.extend(pod_spec.env.iter().cloned());
        let mut mounts = vec![
            VolumeMount { name: SPEC_VOLUME.into(), mount_path: SPEC_DIR.into(), read_only: Some(true), ..Default::default() },
            VolumeMount { name: WORK_VOLUME.into(), mount_path: WORK_DIR.into(), ..Default::default() },
        ];
        mounts.extend(pod_spec.volume_mounts.iter().cloned());
        let mut volumes = vec![
            Volume {
                name: SPEC_VOLUME.into(),
                secret: Some(SecretVolumeSource { secret_name: Some(format!("{name}-runspec")), ..Default::default() }),
                ..Default::default()
            },
            Volume { name: WORK_VOLUME.into(), empty_dir: Some(Default::default()), ..Default::default() },
        ];
        volumes.extend(pod_spec.volumes.iter().cloned());
        // Init containers run as given but under the same restricted defaults as the runner.
        let init_containers: Vec<Container> = pod_spec
            .init_containers
            .iter()
            .map(|c| Container { security_context: Some(effective_security_context(c.security_context.as_ref())), ..c.clone() })
            .collect();
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(spec.object.namespace.clone()),
                labels: Some(labels),
                annotations,
                owner_references: object.metadata.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                        kind: spec.object.kind.clone(),
                        name: spec.object.name.clone(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                // Room for terraform's graceful stop after SIGTERM (the runner asks for it and
                // gives it 25 s) before the kubelet's SIGKILL.
                termination_grace_period_seconds: Some(60),
                // The runner enforces its own deadline on terraform; this one catches a
                // runner that cannot even get that far.
                active_deadline_seconds: Some(spec.longest_run().as_secs().saturating_add(120) as i64),
                service_account_name: Some(
                    object.spec.service_account_name.clone().unwrap_or_else(|| self.settings.service_account.clone()),
                ),
                automount_service_account_token: Some(true),
                node_selector: Some(pod_spec.node_selector.clone()).filter(|n| !n.is_empty()),
                tolerations: Some(pod_spec.tolerations.clone()).filter(|t| !t.is_empty()),
                affinity: pod_spec.affinity.clone(),
                host_aliases: Some(pod_spec.host_aliases.clone()).filter(|h| !h.is_empty()),
                priority_class_name: pod_spec.priority_class_name.clone().filter(|p| !p.is_empty()),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(RUNNER_USER),
                    run_as_group: Some(RUNNER_USER),
                    fs_group: Some(RUNNER_USER),
                    seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                    ..Default::default()
                }),
                init_containers: Some(init_containers).filter(|c| !c.is_empty()),
                containers: vec![Container {
                    name: RUNNER_CONTAINER.into(),
                    image: Some(pod_spec.image.clone().unwrap_or_else(|| self.settings.image.clone())),
                    command: Some(command),
                    env: Some(env),
                    env_from: Some(pod_spec.env_from.clone()).filter(|e| !e.is_empty()),
                    resources: pod_spec.resources.clone(),
                    termination_message_policy: Some("FallbackToLogsOnError".into()),
                    security_context: Some(effective_security_context(pod_spec.security_context.as_ref())),
                    volume_mounts: Some(mounts),
                    ..Default::default()
                }],
                volumes: Some(volumes),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn owned_secret(&self, name: &str, pod: &Pod, key: &str, value: Vec<u8>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: pod.metadata.namespace.clone(),
                labels: Some([(LABEL_MANAGED_BY.to_string(), "driftless".to_string())].into()),
                owner_references: pod.metadata.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                        name: pod.metadata.name.clone().unwrap_or_default(),
                        uid,
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            type_: Some(driftless_core::names::secret_type::RUN_SPEC.into()),
            data: Some([(key.to_string(), ByteString(value))].into()),
            ..Default::default()
        }
    }

    /// Waits until the pod has ended (or cannot start), with `deadline`.
    async fn wait(&self, pods: &Api<Pod>, name: &str, deadline: Duration) -> PodEnd {
        let ended = |pod: Option<&Pod>| pod_end(pod).is_some();
        match tokio::time::timeout(deadline, await_condition(pods.clone(), name, ended)).await {
            Err(_) => PodEnd::DeadlineExceeded,
            Ok(Err(e)) => PodEnd::Lost { message: format!("cannot watch runner pod {name}: {e}") },
            Ok(Ok(pod)) => pod_end(pod.as_ref()).unwrap_or(PodEnd::Lost { message: format!("runner pod {name} disappeared") }),
        }
    }

    /// The result of pod `name` (uid `uid`), from the Secret the runner wrote.
    async fn result(&self, secrets: &Api<Secret>, name: &str, uid: Option<&str>) -> Result<RunResult, String> {
        let secret = secrets.get(&format!("{name}-result")).await.map_err(|e| describe(&e))?;
        trusted_result(secret, uid.unwrap_or_default())
    }

    async fn delete(&self, pods: &Api<Pod>, name: &str) {
        if let Err(e) = pods.delete(name, &DeleteParams::background().grace_period(5)).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            tracing::warn!("cannot delete runner pod {name}: {}", describe(&e));
        }
    }

    /// A runner pod of the same object left by an earlier controller: waited for, and its
    /// result taken when it ran this very spec.
    async fn adopt(&self, pods: &Api<Pod>, secrets: &Api<Secret>, spec: &RunSpec, deadline: Duration) -> Option<RunResult> {
        let selector = format!("{LABEL_MANAGED_BY}=driftless,{LABEL_KIND}={},{LABEL_NAME}={}", spec.object.kind, spec.object.name);
        let existing = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
        let wanted = digest_label(spec);
        let mut adopted = None;
        for pod in existing.items {
            let Some(name) = pod.metadata.name.clone() else { continue };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            tracing::info!(pod = %name, "waiting for a runner pod left by an earlier controller");
            let end = self.wait(pods, &name, deadline).await;
            let same = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_RUN_DIGEST)) == Some(&wanted);
            if same && matches!(end, PodEnd::Succeeded) {
                adopted = self.result(secrets, &name, pod.metadata.uid.as_deref()).await.ok();
            }
            self.delete(pods, &name).await;
        }
        adopted
    }
}

/// The run's result from the Secret named for its pod, trusted only when that pod wrote it:
/// the runner's result type and an ownerReference to the pod's uid. Anyone who may create
/// Secrets in the namespace could create `<pod>-result` first; such a Secret is refused,
/// never taken as the run's outcome (an apply that did not happen reported as applied).
fn trusted_result(secret: Secret, pod_uid: &str) -> Result<RunResult, String> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let owned = !pod_uid.is_empty() && secret.metadata.owner_references.iter().flatten().any(|o| o.kind == "Pod" && o.uid == pod_uid);
    if !owned || secret.type_.as_deref() != Some(driftless_core::names::secret_type::RUN_RESULT) {
        return Err(format!(
            "Secret {name} was not written by the runner pod (uid {pod_uid}): its type or owner differs, so it is not taken as the run's result"
        ));
    }
    let bytes = secret.data.and_then(|mut d| d.remove(RESULT_KEY)).ok_or("the result Secret has no result")?;
    serde_json::from_slice(&bytes.0).map_err(|e| format!("unreadable result: {e}"))
}

/// The end of a pod, or `None` while it may still run.
fn pod_end(pod: Option<&Pod>) -> Option<PodEnd> {
    let Some(pod) = pod else {
        return Some(PodEnd::Lost { message: "the runner pod was deleted before it finished".into() });
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.as_ref().and_then(|c| c.iter().find(|c| c.name == RUNNER_CONTAINER)).cloned();
    if let Some(terminated) = container.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref()) {
        if terminated.reason.as_deref() == Some("OOMKilled") {
            return Some(PodEnd::OomKilled);
        }
        if status.reason.as_deref() == Some("Evicted") {
            return Some(PodEnd::Evicted { message: status.message.clone().unwrap_or_default() });
        }
        if terminated.exit_code == 0 {
            return Some(PodEnd::Succeeded);
        }
        let message = terminated.message.clone().unwrap_or_default();
        return Some(PodEnd::Failed { message: format!("exit code {}: {}", terminated.exit_code, message.trim()) });
    }
    match status.phase.as_deref() {
        Some("Succeeded") => return Some(PodEnd::Succeeded),
        Some("Failed") => {
            return Some(match status.reason.as_deref() {
                Some("Evicted") => PodEnd::Evicted { message: status.message.clone().unwrap_or_default() },
                Some("DeadlineExceeded") => PodEnd::DeadlineExceeded,
                _ => PodEnd::Failed { message: status.message.clone().unwrap_or_else(|| "pod failed".into()) },
            });
        }
        _ => {}
    }
    if let Some(waiting) = container.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if matches!(reason, "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull") {
            return Some(PodEnd::ImagePull { message: format!("{reason}: {}", waiting.message.clone().unwrap_or_default()) });
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        return Some(PodEnd::Lost { message: format!("runner pod {name} on node {node} is being deleted (node lost or pod evicted)") });
    }
    None
}

impl RunnerDispatch for PodDispatch {
    async fn run(&self, spec: &RunSpec) -> Result<RunResult, DispatchError> {
        let outcome = self.run_pod(spec).await;
        self.count(spec, &outcome);
        outcome
    }
}

impl PodDispatch {
    async fn run_pod(&self, spec: &RunSpec) -> Result<RunResult, DispatchError> {
        let object = spec.object.to_string();
        let namespace = spec.object.namespace.clone();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let terraforms: Api<Terraform> = Api::namespaced(self.client.clone(), &namespace);
        let api_error = |e: kube::Error| DispatchError::Api { object: object.clone(), detail: describe(&e) };
        let run_deadline = spec.longest_run().saturating_add(Duration::from_secs(150));
        if let Some(result) = self.adopt(&pods, &secrets, spec, run_deadline).await {
            return Ok(result);
        }
        let owner = terraforms.get(&spec.object.name).await.map_err(api_error)?;
        let name = pod_name(spec);
        let mut spec = spec.clone();
        // The lock holder names the pod, so a lock left by a dead pod is recognisable.
        spec.lock_holder = format!("{} (pod {namespace}/{name})", spec.lock_holder);
        let input = serde_json::to_vec(&spec).map_err(|e| DispatchError::Spawn(std::io::Error::other(e)))?;
        let pod = pods.create(&PostParams::default(), &self.pod(&name, &spec, &owner)).await.map_err(api_error)?;
        tracing::info!(pod = %name, operation = ?spec.operation, "runner pod created");
        let spec_secret = self.owned_secret(&format!("{name}-runspec"), &pod, SPEC_KEY, input);
        if let Err(e) = secrets.create(&PostParams::default(), &spec_secret).await {
            self.delete(&pods, &name).await;
            return Err(api_error(e));
        }
        let end = match tokio::time::timeout(START_DEADLINE + run_deadline, self.wait(&pods, &name, run_deadline)).await {
            Ok(end) => end,
            Err(_) => PodEnd::DeadlineExceeded,
        };
        let keep = keeps_pod(&owner, &end);
        let outcome = match end {
            PodEnd::Succeeded => self
                .result(&secrets, &name, pod.metadata.uid.as_deref())
                .await
                .map_err(|detail| DispatchError::NoResult { object: object.clone(), status: "exit code 0".into(), stderr_tail: detail }),
            PodEnd::Failed { message } => match self.result(&secrets, &name, pod.metadata.uid.as_deref()).await {
                Ok(r) => Ok(r),
                Err(_) => Err(DispatchError::NoResult { object: object.clone(), status: "failed".into(), stderr_tail: message }),
            },
            PodEnd::OomKilled => Err(DispatchError::RunnerEnded {
                kind: RunErrorKind::RunnerOomKilled,
                message: format!("runner pod {name} was OOM-killed; raise spec.runnerPodTemplate.spec.resources.limits.memory"),
            }),
            PodEnd::Evicted { message } => Err(DispatchError::RunnerEnded {
                kind: RunErrorKind::RunnerEvicted,
                message: format!("runner pod {name} was evicted: {message}"),
            }),
            PodEnd::ImagePull { message } => Err(DispatchError::RunnerEnded {
                kind: RunErrorKind::RunnerImagePull,
                message: format!("runner pod {name} cannot pull its image ({message}); check spec.runnerPodTemplate.spec.image"),
            }),
            PodEnd::DeadlineExceeded => Err(DispatchError::RunnerEnded {
                kind: RunErrorKind::RunnerDeadline,
                message: format!("runner pod {name} did not finish within {}s", run_deadline.as_secs()),
            }),
            PodEnd::Lost { message } => Err(DispatchError::RunnerEnded { kind: RunErrorKind::RunnerLost, message }),
        };
        if keep {
            self.forget_run(&secrets, &name).await;
            tracing::info!(pod = %name, "runner pod kept (alwaysCleanupRunnerPod: false) until the object's next run");
        } else {
            self.delete(&pods, &name).await;
        }
        outcome
    }

    /// Deletes a kept pod's RunSpec and result Secrets: the first holds the run's
    /// credentials, which a finished pod never reads again, and without the second a later
    /// controller never adopts the pod's result as that of another run of the same spec.
    async fn forget_run(&self, secrets: &Api<Secret>, name: &str) {
        for secret in [format!("{name}-runspec"), format!("{name}-result")] {
            if let Err(e) = secrets.delete(&secret, &DeleteParams::default()).await
                && !matches!(&e, kube::Error::Api(s) if s.code == 404)
            {
                tracing::warn!("cannot delete Secret {secret} of kept runner pod {name}: {}", describe(&e));
            }
        }
    }
}

/// Whether a pod that ended with `end` stays after its run: tofu-controller's
/// `alwaysCleanupRunnerPod: false`, for pods that have ended (their status and logs are
/// what a user keeps it for). One still running or stuck (a deadline passed, an image that
/// cannot be pulled) is deleted whatever the setting: the run was given up.
fn keeps_pod(owner: &Terraform, end: &PodEnd) -> bool {
    owner.spec.always_cleanup_runner_pod == Some(false)
        && matches!(end, PodEnd::Succeeded | PodEnd::Failed { .. } | PodEnd::OomKilled | PodEnd::Evicted { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(type_: &str, owner_uid: Option<&str>) -> Secret {
        let result = RunResult::failed(RunErrorKind::Terraform, "planned");
        Secret {
            metadata: ObjectMeta {
                name: Some("web-plan-abc123-result".into()),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                        name: "web-plan-abc123".into(),
                        uid: uid.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            type_: Some(type_.into()),
            data: Some([(RESULT_KEY.to_string(), ByteString(serde_json::to_vec(&result).expect("json")))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn only_an_ended_pod_is_kept_and_only_when_asked() {
        let mut owner = Terraform::new(
            "app",
            serde_json::from_value(serde_json::json!({
                "sourceRef": { "kind": "GitRepository", "name": "app" }, "interval": "1h"
            }))
            .expect("spec"),
        );
        assert!(!keeps_pod(&owner, &PodEnd::Succeeded), "deleted by default");
        owner.spec.always_cleanup_runner_pod = Some(true);
        assert!(!keeps_pod(&owner, &PodEnd::Succeeded));
        owner.spec.always_cleanup_runner_pod = Some(false);
        for end in
            [PodEnd::Succeeded, PodEnd::Failed { message: "exit 1".into() }, PodEnd::OomKilled, PodEnd::Evicted { message: String::new() }]
        {
            assert!(keeps_pod(&owner, &end), "{end:?} kept");
        }
        for end in [PodEnd::DeadlineExceeded, PodEnd::ImagePull { message: String::new() }, PodEnd::Lost { message: String::new() }] {
            assert!(!keeps_pod(&owner, &end), "{end:?} deleted: it may still run");
        }
    }

    #[test]
    fn a_result_written_by_the_pod_is_taken() {
        let taken = trusted_result(secret(driftless_core::names::secret_type::RUN_RESULT, Some("uid-1")), "uid-1").expect("trusted");
        assert_eq!(taken.error.map(|e| e.message), Some("planned".into()));
    }

    #[test]
    fn a_result_secret_created_by_someone_else_is_refused() {
        let type_ = driftless_core::names::secret_type::RUN_RESULT;
        for (secret, why) in [
            (secret(type_, None), "no owner"),
            (secret(type_, Some("uid-other")), "another pod"),
            (secret("Opaque", Some("uid-1")), "another type"),
        ] {
            let err = trusted_result(secret, "uid-1").expect_err(why);
            assert!(err.contains("not written by the runner pod"), "{why}: {err}");
        }
        assert!(trusted_result(secret(type_, Some("")), "").is_err(), "an unknown pod uid trusts nothing");
    }
}
