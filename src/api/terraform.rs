use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvFromSource, EnvVar, HostAlias, ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use driftless_core::drift::DriftIgnoreRule;
pub use driftless_core::engine::Engine;

use super::{Condition, Duration, LockStatus, ObjectStatus, status::Conditions};

/// A Terraform module at a path of a source artifact, planned and applied by runner
/// processes or pods. Field names follow tofu-controller's `infra.contrib.fluxcd.io` Terraform.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Terraform",
    namespaced,
    status = "TerraformStatus",
    shortname = "tf",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".status.plan.id"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TerraformSpec {
    pub source_ref: CrossNamespaceSourceReference,
    /// Directory of the root module inside the artifact.
    #[serde(default = "default_path")]
    pub path: String,
    /// How often to reconcile: look at the source and re-plan when it or an input changed.
    pub interval: Duration,
    /// Wait before retrying a failed reconcile; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<Duration>,
    #[serde(default)]
    pub suspend: bool,
    /// `auto` applies every plan; a plan id (or, as tofu-controller allows, the start of one
    /// that names at least its revision: `plan-<7 hex>`) applies that plan only; empty plans
    /// and waits; `disable` only checks for drift (tofu-controller's drift-detection-only
    /// mode: nothing is planned for a new revision, nothing applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_plan: Option<String>,
    /// Input variables; values may be any JSON (strings, numbers, lists, objects), or read
    /// from one key of a Secret or ConfigMap (`valueFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<Variable>,
    /// tofu-controller's `values`: any JSON object, passed as the variable `values` (the
    /// module must declare `variable "values"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub values: Option<serde_json::Value>,
    /// Variables read from Secrets or ConfigMaps. As in tofu-controller, they win over
    /// `vars` (and over `values`), and of two entries naming one variable the later wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars_from: Vec<VarsReference>,
    /// `.tfvars` (or `.tfvars.json`) files of the source artifact, paths from the artifact's
    /// root, given to plan as `-var-file` in order. As in tofu-controller, a variable a file
    /// sets wins over `vars`, `varsFrom` and `values` (terraform's own precedence for
    /// `-var-file`), and a later file wins over an earlier one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tf_vars_files: Vec<String>,
    /// Files written before `init` from one key of a Secret: into the module directory
    /// (`workspace`) or into the home directory terraform runs with (`home`), for example
    /// cloud credentials or a `.netrc`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_mappings: Vec<FileMapping>,
    /// SOPS-encrypted var files, decrypted before the run with the keys of a Secret, as a
    /// Kustomization's `decryption` (driftless's own: tofu-controller has none): the
    /// `tfVarsFiles`, and the `terraform.tfvars` and `*.auto.tfvars` files terraform loads
    /// from the module directory (`.json` ones encrypted by sops as JSON, others as sops
    /// binary files). What they set is secret: never in status, events, logs or plans.
    /// Without it, an encrypted var file fails the run instead of reaching terraform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<super::Decryption>,
    /// Secrets whose keys `values` may refer to as `${{ .<as>.<key> }}` (tofu-controller's
    /// inputs; typically another Terraform's `writeOutputsToSecret`, with that Terraform in
    /// `dependsOn`). A value read so makes `values` sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_inputs_from_secrets: Vec<ReadInputsFromSecret>,
    /// `init -backend-config=<key>=<value>` from the keys of Secrets and ConfigMaps: settings
    /// of a module's own backend (`backendConfig.customConfiguration` or a backend block of
    /// the module), such as credentials that stay out of Git.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_configs_from: Vec<BackendConfigsReference>,
    /// A Secret with one key ending in `.tfrc`: terraform's CLI configuration
    /// (`TF_CLI_CONFIG_FILE`), for private registries' credentials and provider mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_config_secret_ref: Option<SecretReference>,
    /// Terraform workspace; state is kept per workspace.
    #[serde(default = "default_workspace")]
    pub workspace: String,
    /// Which engine plans and applies the module: `terraform` or `tofu` (OpenTofu).
    /// driftless's own field: tofu-controller has none (its runner image runs OpenTofu).
    /// Unset, the runner runs tofu when it has it (the runner image does), else terraform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// Plan a destroy of everything the module manages.
    #[serde(default)]
    pub destroy: bool,
    /// Destroy the managed resources when this object is deleted.
    #[serde(default)]
    pub destroy_resources_on_deletion: bool,
    /// Objects that must be Ready before this one is planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_outputs_to_secret: Option<WriteOutputsToSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_config: Option<BackendConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSpec>,
    /// Runs as this ServiceAccount's identity on a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_pod_template: Option<RunnerPodTemplate>,
    /// tofu-controller's switch for drift checks: `true` is `drift.mode: disabled`, no drift
    /// plan and no drift report. Unlike tofu-controller, which still plans (and under `auto`
    /// applies) on every interval, driftless then plans when the source or an input changes,
    /// or when asked (`driftless reconcile`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_drift_detection: bool,
    /// Plan (and apply) only these resource addresses (`-target`), as tofu-controller does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Concurrent operations of terraform's plan and apply (`-parallelism`); 0 is
    /// terraform's default (10).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parallelism: i32,
    /// Upgrade modules and providers within their constraints on each init (`init -upgrade`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upgrade_on_init: bool,
    /// tofu-controller's `refreshBeforeApply` (`apply -refresh=true`). Every plan is made on
    /// refreshed state, and terraform refuses to apply a plan whose state changed since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_before_apply: bool,
    /// tofu-controller's `alwaysCleanupRunnerPod`: `true` (the default) deletes a runner pod
    /// when its run ends; `false` keeps an ended pod, with its status and logs, until the
    /// object's next run starts (which deletes it) or the object is deleted. tofu-controller
    /// keeps its long-lived runner running and reuses it; driftless's runner pods run one
    /// operation each, so the kept pod is the last run's, finished, without its RunSpec and
    /// result Secrets. Local runs have no pods: the field changes nothing there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_cleanup_runner_pod: Option<bool>,
    /// tofu-controller's `storeReadablePlan`: besides driftless's own rendering (`driftless
    /// plan show`, the review page), store each plan readable where tofu-controller does:
    /// `json` in the Secret `tfplan-<workspace>-<name>.json` (key `tfplan`, gzipped `show
    /// -json`), `human` in the ConfigMap `tfplan-<workspace>-<name>` (key `tfplan`, `show
    /// -no-color`); `none` (the default) stores neither. Written after each plan (not a
    /// drift check's), replacing the last, deleted with the object. Unlike tofu-controller,
    /// the JSON has every sensitive value masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_readable_plan: Option<StoreReadablePlan>,
    /// tofu-controller's `tfstate`: breaking a stuck state lock without `driftless unlock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tfstate: Option<TfStateSpec>,
    /// tofu-controller's `force`: plan on every interval and apply every plan, whatever
    /// `approvePlan` says (drift included).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// tofu-controller's `healthChecks`: after an apply, the controller connects to each
    /// `address` (tcp) or GETs each `url` (http, any answer from 200 to 399 after following
    /// redirects), one after the other, and stops at the first that fails. `url` and
    /// `address` may name outputs as tofu-controller writes them, `${{ .name }}`, read from
    /// the outputs `spec.writeOutputsToSecret` writes (its keys; sensitive ones too, though
    /// a check whose target holds a sensitive value is shown as written, never rendered).
    /// The result is the `HealthCheck` condition (`HealthChecksSucceed` or
    /// `HealthChecksFailed`). Failing checks are run again at `retryInterval` until they
    /// pass. Where driftless differs: a failing check makes the object not Ready (naming the
    /// check), and the checks run after every apply, not only the first; also when they were
    /// added or changed since they last ran, and when a person asks (`driftless reconcile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
}

/// One of `spec.healthChecks`, as tofu-controller's `HealthCheck`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Names the check in status and events.
    pub name: String,
    /// `tcp` (connect to `address`) or `http` (GET `url`).
    #[serde(rename = "type")]
    pub type_: HealthCheckType,
    /// The http check's `http://` or `https://` URL; may name outputs (`${{ .url }}/healthz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The tcp check's `host:port`; may name outputs (`${{ .host }}:${{ .port }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// How long to wait for the connection (tcp) or the whole answer (http); 20s unset, as in
    /// tofu-controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl HealthCheck {
    /// tofu-controller's default timeout.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.as_ref().map_or(Self::DEFAULT_TIMEOUT, Duration::as_std)
    }

    /// The field the check's target is written in (`url` or `address`) and its text.
    pub fn target(&self) -> (&'static str, Option<&str>) {
        match self.type_ {
            HealthCheckType::Http => ("url", self.url.as_deref()),
            HealthCheckType::Tcp => ("address", self.address.as_deref()),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    Tcp,
    Http,
}

impl HealthCheckType {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckType::Tcp => "tcp",
            HealthCheckType::Http => "http",
        }
    }

    /// A target (rendered, or written without outputs) as tofu-controller accepts it: an
    /// `http(s)://host[:port]/...` URL, or `host:port` with an IP or a host name (RFC 952
    /// labels) and a port from 1 to 65535. `Err` says what is wrong with it.
    pub fn parse_target(self, text: &str) -> Result<HealthTarget, String> {
        match self {
            HealthCheckType::Http => parse_url(text).map(|url| HealthTarget::Http { url }),
            HealthCheckType::Tcp => parse_address(text).map(|(host, port)| HealthTarget::Tcp { host, port }),
        }
    }
}

/// What one health check connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthTarget {
    Tcp { host: String, port: u16 },
    Http { url: String },
}

/// Where a delimiter of Go's default `{{ }}` stands alone (not as `${{`): tofu-controller's
/// health checks take it as text, so such a target never names an output.
pub fn bare_go_action(text: &str) -> Option<usize> {
    text.match_indices("{{").map(|(at, _)| at).find(|&at| !text[..at].ends_with('$'))
}

fn parse_url(text: &str) -> Result<String, String> {
    let uri: hyper::Uri = text.parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("{text:?}: the scheme {other:?} is not http or https")),
        None => return Err(format!("{text:?} must be an absolute http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{text:?} names no host"));
    }
    Ok(text.to_string())
}

fn parse_address(text: &str) -> Result<(String, u16), String> {
    if text.contains("://") {
        return Err(format!("{text:?} must be host:port, without a scheme"));
    }
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some((ip, port)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => (ip, port),
            _ => return Err(format!("{text:?} must be [IPv6]:port")),
        },
        None => match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(format!("{text:?}: an IPv6 address goes in brackets, [{host}]:port")),
            Some(split) => split,
            None => return Err(format!("{text:?} must be host:port (no port)")),
        },
    };
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len()) && l.chars().all(|c| c.is_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-')
    };
    if !is_ip && !host.split('.').all(label_ok) {
        return Err(format!("{text:?}: {host:?} is neither an IP address nor a host name"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host.to_string(), p)),
        _ => Err(format!("{text:?}: {port:?} is not a port from 1 to 65535")),
    }
}

/// tofu-controller's `storeReadablePlan` values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreReadablePlan {
    #[default]
    None,
    Json,
    Human,
}

impl StoreReadablePlan {
    /// What the runner is asked to render.
    pub fn format(self) -> Option<driftless_core::contract::ReadablePlanFormat> {
        use driftless_core::contract::ReadablePlanFormat;
        match self {
            StoreReadablePlan::None => None,
            StoreReadablePlan::Json => Some(ReadablePlanFormat::Json),
            StoreReadablePlan::Human => Some(ReadablePlanFormat::Human),
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn default_path() -> String {
    "./".to_string()
}

fn default_workspace() -> String {
    "default".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceSourceReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `GitRepository` (or `Bucket`).
    pub kind: String,
    pub name: String,
    /// Defaults to the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    pub name: String,
    /// The value; exactly one of `value` and `valueFrom` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<VariableSource>,
}

/// One key of a Secret or ConfigMap in the object's namespace (tofu-controller's
/// `valueFrom`, shaped like a container's env `valueFrom`); a Secret's value is sensitive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariableSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    /// A missing object or key leaves the variable unset instead of failing.
    #[serde(default)]
    pub optional: bool,
}

fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VarsReference {
    /// `Secret` or `ConfigMap`.
    pub kind: String,
    pub name: String,
    /// Only these keys; all keys when empty. `key:varname` renames.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars_keys: Vec<String>,
    /// A missing object is not an error.
    #[serde(default)]
    pub optional: bool,
}

/// A Secret, by name, and the namespace it is in (the object's own when unset).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One key of a Secret of the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    pub name: String,
    pub key: String,
}

/// Where a file mapping's file goes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileLocation {
    /// The home directory terraform runs with (the runner's own, private to the run).
    Home,
    /// The module directory.
    Workspace,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileMapping {
    pub secret_ref: SecretKeyReference,
    pub location: FileLocation,
    /// Relative to the location; it may not leave it.
    #[schemars(pattern(r"^(.?[/_a-zA-Z0-9]{1,})*$"))]
    pub path: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadInputsFromSecret {
    /// The Secret, in the object's namespace.
    pub name: String,
    /// The name `values` refers to it by: `${{ .<as>.<key> }}`.
    #[serde(rename = "as")]
    pub alias: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendConfigsReference {
    /// `Secret` or `ConfigMap`.
    #[schemars(pattern(r"^(Secret|ConfigMap)$"))]
    pub kind: String,
    pub name: String,
    /// Only these keys; all keys when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// A missing object is not an error (a missing key still is).
    #[serde(default)]
    pub optional: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyReference {
    /// `Terraform` (default) or `Kustomization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteOutputsToSecret {
    pub name: String,
    /// Only these outputs (`name` or `name:key`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Where state and plans live. Without it, the store's own backend is used (files in
/// local mode, Secrets on a cluster) through the runner's state server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendConfig {
    /// Suffix of the state's name (tofu-controller: `tfstate-<workspace>-<secretSuffix>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_suffix: Option<String>,
    /// A native `terraform { backend "..." {} }` block used instead of driftless's state
    /// server; locking and `unlock` are then the backend's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_configuration: Option<String>,
    /// tofu-controller's `disable`: write no backend at all, so the module's own backend
    /// block is used as it is, or, without one, terraform's local state in the run's
    /// workspace, which is gone when the run ends. Plans are still kept by driftless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
    /// Labels of the state Secret (the Secrets backend of a cluster).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// tofu-controller's `inClusterConfig`. driftless's runner always reaches the state
    /// Secrets with its own identity: in a pod its ServiceAccount (what `true` asks for), on
    /// a local store the current kubeconfig; either value is accepted and means that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_cluster_config: Option<bool>,
    /// Keep state and plans in an S3 bucket (through the runner's state server, so locking,
    /// `status.lock` and `driftless unlock` work as with the default backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3BackendConfig>,
}

/// An S3 (or S3-compatible) bucket for state and plans. Keys:
/// `<keyPrefix>/Terraform/<namespace>/<name>/<workspace>.tfstate`, `.../plans/<id>.tfplan`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3BackendConfig {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Defaults to the standard AWS chain's region, else `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `https://host[:port]` of an S3-compatible server; AWS's endpoint when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` (most S3-compatible servers need this).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret with `accessKeyID` and `secretAccessKey` (optional `sessionToken`), or Flux's
    /// `accesskey`/`secretkey`. Without it, the standard AWS credential chain (environment,
    /// profile, web identity, instance metadata) of the runner is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<super::LocalObjectReference>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftMode {
    /// Report drift and plan its correction; apply only when approved (the opt-in for
    /// objects that otherwise apply automatically).
    #[default]
    Detect,
    /// Apply the correction when `approvePlan` is `auto`: the default there, as Flux's
    /// Kustomization re-applies on every interval and tofu-controller corrects drift.
    Correct,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftSpec {
    /// Unset: `correct` under `approvePlan: auto` (tofu-controller corrects drift when it
    /// applies automatically), else `detect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DriftMode>,
    /// How often to check for drift with no source change; defaults to `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<DriftIgnoreRule>,
}

/// tofu-controller's `tfstate`. The run breaks the lock before terraform starts, on the
/// store driftless's state server serves (default, Kubernetes or S3 backend); a module's
/// own backend (`backendConfig.customConfiguration`) is not driftless's to unlock, so the
/// field is refused with it. tofu-controller breaks the lock recorded by an earlier failed
/// run (`status.lock.pending`); driftless breaks the one held when the run starts, so
/// `auto` needs no failed run first. Only for a lock whose run is gone: breaking a live
/// lock lets two runs write the state at once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TfStateSpec {
    /// `no` (the default): a held lock fails the run (`StateLocked`, the holder and the
    /// lock's id in `status.lock`). `yes`: break the lock whose id is `lockIdentifier`, and
    /// no other. `auto`: break whatever lock is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_unlock: Option<ForceUnlockMode>,
    /// The id of the lock `forceUnlock: yes` breaks (`status.lock.id`, also in the
    /// StateLocked message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_identifier: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ForceUnlockMode {
    Yes,
    #[default]
    No,
    Auto,
}

impl TfStateSpec {
    /// What the runner is asked to break.
    pub fn policy(&self) -> driftless_core::contract::ForceUnlock {
        use driftless_core::contract::ForceUnlock;
        match (self.force_unlock.unwrap_or_default(), self.lock_identifier.as_deref().map(str::trim)) {
            (ForceUnlockMode::Yes, Some(id)) if !id.is_empty() => ForceUnlock::Id(id.to_string()),
            (ForceUnlockMode::Auto, _) => ForceUnlock::Any,
            _ => ForceUnlock::Never,
        }
    }
}

/// The runner pod's shape on a cluster (stored and validated now, used by the pod dispatcher).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPodTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RunnerPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<RunnerPodSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPodMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// tofu-controller's `runnerPodTemplate.spec`. The pod stays within the Kubernetes
/// "restricted" Pod Security profile: anything that asks for more (privileged, root, added
/// capabilities, hostPath volumes, host ports, ...) is refused by field (see
/// [`super::runner_pod`]), and driftless's own container and volumes cannot be replaced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Environment of the runner container from whole ConfigMaps or Secrets (its `env`
    /// wins over these, as in Kubernetes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Volumes added to the pod, of the types the restricted profile allows (configMap,
    /// csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret).
    /// `runspec` and `work` are driftless's own names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Mounts added to the runner container; not at driftless's own paths
    /// (`/run/driftless`, `/var/lib/driftless-runner`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Containers run before the runner, e.g. to fetch a CLI config into a shared volume.
    /// Each gets driftless's restricted security context under its own settings (unlike
    /// tofu-controller, which runs them as given), and none may be named `runner`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// The runner container's security context. Unlike tofu-controller, which replaces its
    /// whole default, the fields set here are laid over driftless's restricted defaults
    /// (non-root user 65532, no privilege escalation, all capabilities dropped, read-only
    /// root filesystem), so setting `runAsUser` alone keeps the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerraformStatus {
    #[serde(flatten)]
    pub common: ObjectStatus,
    /// Who holds the state lock, while someone does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockStatus>,
    /// Output names (values live only in the outputs secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_outputs: Vec<String>,
    /// The names of `availableOutputs` the module marks sensitive: health checks never show
    /// a target that holds one of their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_outputs: Vec<String>,
    /// Digest of the inputs the last plan was made from (source, spec, resolved variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inputs_digest: Option<String>,
}

impl Conditions for TerraformStatus {
    fn conditions(&self) -> &[Condition] {
        &self.common.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.common.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_targets_are_checked_as_tofu_controller_checks_them() {
        let tcp = |t: &str| HealthCheckType::Tcp.parse_target(t);
        assert_eq!(tcp("127.0.0.1:5432"), Ok(HealthTarget::Tcp { host: "127.0.0.1".into(), port: 5432 }));
        assert_eq!(tcp("db.internal-1.example:80"), Ok(HealthTarget::Tcp { host: "db.internal-1.example".into(), port: 80 }));
        assert_eq!(tcp("[::1]:8080"), Ok(HealthTarget::Tcp { host: "::1".into(), port: 8080 }));
        for bad in ["tcp://127.0.0.1:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "-db:80", "db_1:80", ":80", "::1:80", "[nope]:80"]
        {
            assert!(tcp(bad).is_err(), "{bad} must be refused");
        }
        let http = |t: &str| HealthCheckType::Http.parse_target(t);
        assert_eq!(http("https://app.example/healthz?x=1"), Ok(HealthTarget::Http { url: "https://app.example/healthz?x=1".into() }));
        for bad in ["app.example/healthz", "ftp://app.example/", "http:///x", "not a url"] {
            assert!(http(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_bare_go_action_is_found_and_tofu_controller_s_delimiters_are_not() {
        assert_eq!(bare_go_action("${{ .url }}/healthz"), None);
        assert_eq!(bare_go_action("${{ .host }}:${{ .port }}"), None);
        assert_eq!(bare_go_action("http://{{ .host }}/"), Some(7));
        assert_eq!(bare_go_action("${{ .a }}{{ .b }}"), Some(9));
    }
}
