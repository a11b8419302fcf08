//! The runner contract: one `RunSpec` in, one `RunResult` out, as JSON. The same contract
//! serves a local process and a pod, so the reconcilers never know how a run executes.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::drift::{DriftIgnoreRule, DriftObject};
pub use crate::engine::Engine;
pub use crate::key::ObjectKey;
use crate::plan::PlanSummary;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Plan; store the plan. With `apply_after_plan`, apply that saved plan in the same
    /// workspace (auto-approval) — one init instead of two.
    Plan,
    /// Apply the stored plan `plan_id` (and nothing else).
    Apply,
    /// A refresh plan on the drift interval: the drift entries plus a corrective plan.
    DriftCheck,
    /// A destroy plan (spec.destroy or deletion with destroyResourcesOnDeletion).
    DestroyPlan,
    /// Save `unsaved_state` (the state an earlier apply could not save) to the backend,
    /// under the lock it names or one of its own, never over a state written since; nothing
    /// else runs. The controller starts it, because the runner has the backend's rights.
    SaveState,
    /// A plan nobody will apply (`driftless diff terraform`): no state lock taken or broken,
    /// nothing stored; the result carries terraform's readable plan.
    SpeculativePlan,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunVariable {
    pub name: String,
    pub value: serde_json::Value,
    /// Came from a Secret: never echoed anywhere.
    #[serde(default)]
    pub sensitive: bool,
}

/// Where a [`RunFile`] goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileLocation {
    /// The home directory terraform runs with: a directory of the run's own, so a run on a
    /// workstation never writes into its user's home.
    Home,
    /// The module directory.
    Workspace,
    /// A path of the source artifact, from its root, replacing the file there: a var file
    /// the controller decrypted (`spec.decryption`). What it sets is secret: scrubbed from
    /// everything the run reports.
    Source,
}

/// One file the runner writes before `init`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct RunFile {
    pub location: FileLocation,
    /// Relative to the location, never leaving it.
    pub path: String,
    /// The bytes, base64 in the JSON (a Secret's value need not be text).
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
}

impl std::fmt::Debug for RunFile {
    /// Never the content: it came from a Secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunFile").field("location", &self.location).field("path", &self.path).finish_non_exhaustive()
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where state and plans live, as the runner sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackendSpec {
    /// Files under `root` (the local store's backend directory).
    Local { root: PathBuf },
    /// An S3 bucket (`spec.backendConfig.s3`). Credentials, when a Secret gave them, travel
    /// inside: the spec goes to the runner over its stdin only, and `Debug` redacts them.
    S3(crate::backend::S3Location),
    /// Secrets (state, plans) and Leases (locks) in `namespace`, the Terraform object's own,
    /// through the runner's Kubernetes credentials (no credentials travel in the spec).
    Kubernetes {
        namespace: String,
        /// Labels of the state Secret (`backendConfig.labels`), under driftless's own.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        labels: std::collections::BTreeMap<String, String>,
    },
}

impl BackendSpec {
    /// Where a saved plan lives, for `status.plan.storedIn`.
    pub fn plan_location(&self, object: &ObjectKey, id: &str) -> String {
        match self {
            BackendSpec::Local { .. } => format!("local/plans/{}/{}/{}/{id}.tfplan", object.kind, object.namespace, object.name),
            BackendSpec::S3(location) => location.url(&location.plan_key(object, id)),
            BackendSpec::Kubernetes { namespace, .. } => {
                format!("secret/{namespace}/{}", crate::backend::kube::plan_meta_secret_name(object, id))
            }
        }
    }

    /// Credential strings that must never appear in a message.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            BackendSpec::Local { .. } | BackendSpec::Kubernetes { .. } => Vec::new(),
            BackendSpec::S3(location) => location.connection.credentials.as_ref().map(|c| c.secrets()).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    pub operation: Operation,
    pub object: ObjectKey,
    /// `file://` path or `http(s)://` URL of the source artifact.
    pub artifact_url: String,
    /// `sha256:<hex>`: checked before anything is unpacked.
    pub artifact_digest: String,
    pub source_revision: String,
    /// Module directory inside the artifact.
    pub path: String,
    pub workspace: String,
    /// Name of the state within the object (workspace plus optional suffix).
    pub state_name: String,
    /// tofu-controller's `backendConfig.secretSuffix`, when set: see [`StateKey::secret_suffix`](crate::backend::StateKey).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_suffix: Option<String>,
    /// How terraform is asked to plan and apply (tofu-controller's fields of the same names).
    #[serde(default, skip_serializing_if = "TerraformOptions::is_default")]
    pub options: TerraformOptions,
    pub variables: Vec<RunVariable>,
    /// Digest of everything the plan depends on besides live infrastructure; with the
    /// revision it makes the plan id.
    pub inputs_digest: String,
    pub backend: BackendSpec,
    /// A native backend block replacing driftless's state server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_backend: Option<String>,
    /// The plan to apply (`Apply`), with the digest recorded when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Apply the fresh plan right away (auto-approval).
    #[serde(default)]
    pub apply_after_plan: bool,
    /// `spec.drift.ignore`: drift matching these rules is not reported, and a drift check
    /// whose drift is all ignored applies nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_ignore: Vec<DriftIgnoreRule>,
    /// Render the plan for review (`show -json`): off the auto-apply path, where nobody reads it.
    #[serde(default)]
    pub render_plan: bool,
    /// terraform binary; found on PATH with `which` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_path: Option<PathBuf>,
    /// `spec.engine`: terraform or tofu; unset, the runner picks what it has, tofu first
    /// ([`Engine::PREFERENCE`]). The runner's `engine::locate` is the one place that decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// tofu binary; found on PATH with `which` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tofu_path: Option<PathBuf>,
    /// Identity recorded as the state lock holder.
    pub lock_holder: String,
    /// The deadline of everything up to and including the plan (unpack, init, plan, show,
    /// storing the plan), counted from the runner's start. An apply is not bound by it.
    pub timeout_seconds: u64,
    /// The apply's own deadline, counted from the moment `terraform apply` starts; unset:
    /// [`DEFAULT_APPLY_TIMEOUT_SECONDS`], or `timeout_seconds` if that is longer (see
    /// [`RunSpec::apply_timeout`]). An apply cut off mid-way leaves resources half made, so
    /// it gets its own, longer deadline instead of what is left of the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_timeout_seconds: Option<u64>,
    /// The state to save (`SaveState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsaved_state: Option<UnsavedState>,
}

/// How terraform runs, as a Terraform object sets it: flags of its commands, files and
/// configuration written before `init` (tofu-controller's fields of the same names).
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TerraformOptions {
    /// `-target=<address>` on plan: only these resources (and what they depend on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `-parallelism=<n>` on plan and apply; unset is terraform's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// `init -upgrade`: newest modules and providers within the module's constraints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upgrade_on_init: bool,
    /// `apply -refresh=true`, as tofu-controller passes it. Applying a saved plan refreshes
    /// nothing more (the plan was made on refreshed state, and terraform refuses a plan whose
    /// state changed since), so this is terraform's behaviour either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_before_apply: bool,
    /// `.tfvars` files of the artifact, from its root, given to plan as `-var-file` in order
    /// (`tfVarsFiles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub var_files: Vec<String>,
    /// Files written before `init` (`fileMappings`). Their contents came from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<RunFile>,
    /// terraform's CLI configuration, given as `TF_CLI_CONFIG_FILE` (`cliConfigSecretRef`): it
    /// may hold registry tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_config: Option<RunFile>,
    /// Settings of the module's own backend, given to `init` as `-backend-config`
    /// (`backendConfigsFrom`); a Secret's are sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_configs: Vec<RunVariable>,
    /// `backendConfig.disable`: write no backend block; the module's own backend, or the
    /// run's local state, is used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backend_disabled: bool,
    /// tofu-controller's `tfstate.forceUnlock`: which lock the runner breaks before the run.
    #[serde(default, skip_serializing_if = "ForceUnlock::is_never")]
    pub force_unlock: ForceUnlock,
    /// tofu-controller's `storeReadablePlan`: a plan run also returns the plan in this
    /// readable form ([`RunResult::readable_plan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_plan: Option<ReadablePlanFormat>,
}

/// The readable forms of a plan tofu-controller stores.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ReadablePlanFormat {
    /// `show -json`, sensitive values masked.
    Json,
    /// `show -no-color`, terraform's own text (it masks sensitive values itself).
    Human,
}

/// Which state lock a run breaks before terraform starts (tofu-controller's
/// `tfstate.forceUnlock` with its `lockIdentifier`). A lock driftless does not see (a
/// module's own backend) is never broken.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ForceUnlock {
    /// `no`: a held lock fails the run with `StateLocked`, as without the field.
    #[default]
    Never,
    /// `yes` with a `lockIdentifier`: the lock with exactly this id, and no other.
    Id(String),
    /// `auto`: whatever lock is held, whoever holds it.
    Any,
}

impl ForceUnlock {
    pub fn is_never(&self) -> bool {
        *self == ForceUnlock::Never
    }

    /// The held lock this policy breaks, if any.
    pub fn breaks<'a>(&self, held: Option<&'a crate::backend::LockInfo>) -> Option<&'a crate::backend::LockInfo> {
        let held = held?;
        match self {
            ForceUnlock::Never => None,
            ForceUnlock::Id(id) => (held.id == *id).then_some(held),
            ForceUnlock::Any => Some(held),
        }
    }
}

impl std::fmt::Debug for TerraformOptions {
    /// Names and paths only: backend settings and files may come from Secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerraformOptions")
            .field("targets", &self.targets)
            .field("parallelism", &self.parallelism)
            .field("upgrade_on_init", &self.upgrade_on_init)
            .field("refresh_before_apply", &self.refresh_before_apply)
            .field("var_files", &self.var_files)
            .field("files", &self.files)
            .field("cli_config", &self.cli_config.is_some())
            .field("backend_configs", &self.backend_configs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
            .field("backend_disabled", &self.backend_disabled)
            .field("force_unlock", &self.force_unlock)
            .field("readable_plan", &self.readable_plan)
            .finish()
    }
}

impl TerraformOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The flags `plan` takes.
    pub fn plan_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self.targets.iter().map(|t| format!("-target={t}")).collect();
        args.extend(self.parallelism.map(|n| format!("-parallelism={n}")));
        args
    }

    /// The flags `apply` of a saved plan takes (targets are in the plan already).
    pub fn apply_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self.parallelism.map(|n| format!("-parallelism={n}")).into_iter().collect();
        if self.refresh_before_apply {
            args.push("-refresh=true".into());
        }
        args
    }

    /// The flags `init` takes.
    pub fn init_args(&self) -> Vec<String> {
        if self.upgrade_on_init { vec!["-upgrade".to_string()] } else { vec![] }
    }
}

/// How long an apply may take when the RunSpec sets no deadline of its own: applies create
/// databases and clusters, which take far longer than a plan of them.
pub const DEFAULT_APPLY_TIMEOUT_SECONDS: u64 = 60 * 60;

impl RunSpec {
    /// Whether this run applies (a saved plan, or its fresh plan under auto-approval).
    pub fn applies(&self) -> bool {
        self.operation == Operation::Apply || self.apply_after_plan
    }

    /// The deadline of everything before the apply (and of the whole run when it does not
    /// apply).
    pub fn plan_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.max(1))
    }

    /// The apply's own deadline, counted from its start.
    pub fn apply_timeout(&self) -> Duration {
        let seconds = self.apply_timeout_seconds.unwrap_or_else(|| DEFAULT_APPLY_TIMEOUT_SECONDS.max(self.timeout_seconds));
        Duration::from_secs(seconds.max(1))
    }

    /// The longest this run may take before the runner stops terraform: the plan's deadline,
    /// plus the apply's when it applies. What a dispatcher waits for (plus its own slack) and
    /// how long a state lock of this run counts.
    pub fn longest_run(&self) -> Duration {
        if self.applies() { self.plan_timeout().saturating_add(self.apply_timeout()) } else { self.plan_timeout() }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Planned, nothing to change.
    NoChanges,
    /// Planned with changes; the plan is stored and waits for approval.
    Planned,
    /// The plan was applied.
    Applied,
    /// Failed; see `error`.
    Failed,
}

/// What went wrong, classified so the reconciler can pick the condition reason.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    /// Terraform's diagnostics, summary and detail, redacted.
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// The lock's holder when `kind` is `StateLocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::backend::LockInfo>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunErrorKind {
    /// Artifact missing or its digest wrong.
    Artifact,
    /// The module does not parse or does not fit the inputs (before terraform runs).
    InvalidModule,
    VariablesNotFound,
    Init,
    Plan,
    Apply,
    StateLocked,
    /// The stored plan is missing or its digest does not match.
    PlanIntegrity,
    /// The state/plan backend is unreachable, refuses the credentials, or has no bucket.
    Backend,
    Terraform,
    Timeout,
    Internal,
    /// The runner pod was killed for exceeding its memory limit.
    RunnerOomKilled,
    /// The runner pod was evicted (node pressure, drain).
    RunnerEvicted,
    /// The runner image cannot be pulled.
    RunnerImagePull,
    /// The runner pod exceeded its deadline.
    RunnerDeadline,
    /// The runner pod vanished (node lost, deleted by someone).
    RunnerLost,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedResource {
    pub address: String,
    /// `create`, `update`, `delete`, `replace`, `read`.
    pub action: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub name: String,
    /// `None` when sensitive and the value is not meant for this reader.
    pub value: serde_json::Value,
    pub sensitive: bool,
    /// terraform's type of the value (`"string"`, `["list","number"]`), as `output -json`
    /// gives it; an outputs Secret records it beside a value that is not a string, as
    /// tofu-controller does, so readers get the value back typed.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    #[serde(default)]
    pub summary: PlanSummary,
    #[serde(default)]
    pub resources: Vec<PlannedResource>,
    /// Out-of-band changes terraform found on refresh.
    #[serde(default)]
    pub drift: Vec<DriftObject>,
    /// Outputs after an apply. Sensitive values are present only on the trusted channel
    /// (the runner's stdout to its dispatcher) and go nowhere but the outputs secret.
    #[serde(default)]
    pub outputs: Vec<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// Wall time of each step in milliseconds, for benchmarks and slow-run reports.
    #[serde(default)]
    pub timings_ms: Vec<(String, u64)>,
    /// Terraform state an apply could not save to the backend (terraform's
    /// `errored.tfstate`) and the runner could not save either: the only record of what the
    /// apply created, carried here so it is not deleted with the workspace. It travels the
    /// trusted channel only, as sensitive outputs do (it holds the resources' secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsaved_state: Option<UnsavedState>,
    /// The lock the run broke before terraform started (`tfstate.forceUnlock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_lock: Option<crate::backend::LockInfo>,
    /// The plan in the form `options.readable_plan` asks for, redacted and scrubbed of
    /// every secret the run knows: a plan run's only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_plan: Option<String>,
    /// The engine and version that made or applied the run's plan (`OpenTofu 1.10.7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// What terraform printed (init, plan, apply), as it prints it without `-json`, scrubbed
    /// of every secret the run knows and cut to its last [`RUN_LOG_LIMIT`] bytes:
    /// `driftless logs terraform NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The most bytes of a run's log a result carries (its end: where a failure is).
pub const RUN_LOG_LIMIT: usize = 64 * 1024;

/// A terraform state (JSON) no backend holds yet, and the lock terraform held on the state
/// when it could not save it (the save goes in under it: nobody else may write meanwhile).
/// `Debug` shows its size only: a state holds secrets.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnsavedState {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
}

impl std::fmt::Debug for UnsavedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnsavedState({} bytes, lock {:?})", self.state.len(), self.lock)
    }
}

impl RunResult {
    pub fn failed(kind: RunErrorKind, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            plan_id: None,
            plan_digest: None,
            summary: PlanSummary::default(),
            resources: Vec::new(),
            drift: Vec::new(),
            outputs: Vec::new(),
            error: Some(RunError { kind, message: message.into(), diagnostics: Vec::new(), lock: None }),
            timings_ms: Vec::new(),
            unsaved_state: None,
            broken_lock: None,
            readable_plan: None,
            engine: None,
            log: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(operation: Operation, apply_after_plan: bool, timeout: u64, apply: Option<u64>) -> RunSpec {
        RunSpec {
            operation,
            object: ObjectKey { kind: "Terraform".into(), namespace: "n".into(), name: "x".into() },
            artifact_url: "file:///a".into(),
            artifact_digest: "sha256:00".into(),
            source_revision: "r".into(),
            path: "./".into(),
            workspace: "default".into(),
            state_name: "default".into(),
            state_suffix: None,
            options: Default::default(),
            variables: Vec::new(),
            inputs_digest: "d".into(),
            backend: BackendSpec::Local { root: "/b".into() },
            custom_backend: None,
            plan_id: None,
            plan_digest: None,
            apply_after_plan,
            drift_ignore: Vec::new(),
            render_plan: false,
            terraform_path: None,
            engine: None,
            tofu_path: None,
            lock_holder: "t".into(),
            timeout_seconds: timeout,
            apply_timeout_seconds: apply,
            unsaved_state: None,
        }
    }

    #[test]
    fn an_apply_gets_its_own_longer_deadline_by_default() {
        let s = spec(Operation::Apply, false, 1200, None);
        assert_eq!(s.apply_timeout(), Duration::from_secs(DEFAULT_APPLY_TIMEOUT_SECONDS));
        assert_eq!(s.longest_run(), Duration::from_secs(1200 + DEFAULT_APPLY_TIMEOUT_SECONDS));
        // Never shorter than the plan's.
        assert_eq!(spec(Operation::Apply, false, 7200, None).apply_timeout(), Duration::from_secs(7200));
        assert_eq!(spec(Operation::Apply, false, 7200, Some(60)).apply_timeout(), Duration::from_secs(60));
    }

    #[test]
    fn only_a_run_that_applies_may_run_past_the_plan_deadline() {
        assert_eq!(spec(Operation::Plan, false, 300, Some(900)).longest_run(), Duration::from_secs(300));
        assert_eq!(spec(Operation::DriftCheck, false, 300, None).longest_run(), Duration::from_secs(300));
        assert_eq!(spec(Operation::Plan, true, 300, Some(900)).longest_run(), Duration::from_secs(1200));
        assert_eq!(spec(Operation::Plan, false, 0, None).longest_run(), Duration::from_secs(1));
    }

    #[test]
    fn a_run_spec_without_an_apply_deadline_still_parses() {
        let mut json = serde_json::to_value(spec(Operation::Apply, false, 60, Some(5))).unwrap();
        assert_eq!(json["applyTimeoutSeconds"], 5);
        json.as_object_mut().unwrap().remove("applyTimeoutSeconds");
        let back: RunSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back.apply_timeout_seconds, None);
    }

    #[test]
    fn a_run_spec_without_an_engine_leaves_the_choice_to_the_runner() {
        let mut json = serde_json::to_value(spec(Operation::Plan, false, 60, None)).unwrap();
        assert!(json.get("engine").is_none() && json.get("tofuPath").is_none(), "unset fields are not written: {json}");
        let back: RunSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((back.engine, back.tofu_path), (None, None));
        json["engine"] = "tofu".into();
        assert_eq!(serde_json::from_value::<RunSpec>(json).unwrap().engine, Some(Engine::Tofu));
    }

    #[test]
    fn force_unlock_breaks_the_lock_it_names_or_any_under_auto() {
        let held = crate::backend::LockInfo { id: "abc".into(), who: "someone".into(), ..Default::default() };
        assert_eq!(ForceUnlock::Never.breaks(Some(&held)), None);
        assert_eq!(ForceUnlock::Id("abc".into()).breaks(Some(&held)), Some(&held));
        assert_eq!(ForceUnlock::Id("other".into()).breaks(Some(&held)), None, "another lock is kept");
        assert_eq!(ForceUnlock::Any.breaks(Some(&held)), Some(&held));
        assert_eq!(ForceUnlock::Any.breaks(None), None, "nothing held, nothing broken");
        let options = TerraformOptions { force_unlock: ForceUnlock::Id("abc".into()), ..Default::default() };
        let json = serde_json::to_value(&options).unwrap();
        assert_eq!(json, serde_json::json!({ "forceUnlock": { "id": "abc" } }));
        assert!(serde_json::to_value(TerraformOptions::default()).unwrap().get("forceUnlock").is_none(), "never is not written");
    }

    #[test]
    fn an_unsaved_state_never_shows_in_debug_output() {
        let r = RunResult {
            unsaved_state: Some(UnsavedState { state: "{\"secret\":\"hunter2\"}".into(), lock: None }),
            ..RunResult::failed(RunErrorKind::Apply, "x")
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("hunter2") && shown.contains("UnsavedState(20 bytes"), "{shown}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["unsavedState"]["state"], "{\"secret\":\"hunter2\"}");
    }
}
