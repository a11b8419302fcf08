use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, CrossNamespaceSourceReference, DependencyReference, Duration, ObjectStatus, status::Conditions};

/// Kubernetes manifests at a path of a source artifact, built (plain YAML or kustomize) and
/// server-side applied, with inventory and pruning. Field names follow Flux's
/// `kustomize.toolkit.fluxcd.io/v1` Kustomization; `approvePlan` and `drift` are driftless's,
/// shared with Terraform.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Kustomization",
    namespaced,
    status = "KustomizationStatus",
    shortname = "ks",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".status.plan.id"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    pub source_ref: CrossNamespaceSourceReference,
    /// Directory inside the artifact (a kustomization or plain YAML, recursively).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub interval: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<Duration>,
    /// How long to wait for applies and health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Delete objects that left the source (only objects this Kustomization applied).
    pub prune: bool,
    /// What deleting this Kustomization does to the objects it applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Wait for every applied object to become healthy.
    #[serde(default)]
    pub wait: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckReference>,
    /// How to tell the health of the objects of a kind (or of every kind of a group) by CEL
    /// expressions over the object, as Flux's `healthCheckExprs`: for the kinds the built-in
    /// rules do not know (or read otherwise), wherever `wait` and `healthChecks` check health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_check_exprs: Vec<CustomHealthCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<KustomizePatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<KustomizeImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,
    /// Directories of kustomize Components (`kind: Component`), relative to `path`, added to
    /// the `components` of the path's kustomization (one is generated for a directory
    /// without it), as Flux does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Leave out a component of `components` whose directory is not in the source, instead
    /// of failing the build (for components that only some revisions or branches have).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_missing_components: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuild>,
    /// Applies as this ServiceAccount (impersonation) on a cluster; with `kubeConfig`, on
    /// that cluster, as Flux does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Flux's `kubeConfig`: apply (and prune, health-check, check drift) on another cluster,
    /// reached with the kubeconfig a Secret of this namespace holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config: Option<KubeConfigReference>,
    /// Flux's `decryption`: SOPS-encrypted manifests, and SOPS-encrypted files that
    /// secretGenerator and configMapGenerator read, are decrypted before apply with the age
    /// and PGP keys of a Secret of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<Decryption>,
    #[serde(default)]
    pub suspend: bool,
    /// Recreate objects whose immutable fields changed.
    #[serde(default)]
    pub force: bool,
    /// `auto` (the default, as Flux applies every revision), a plan id, or empty to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<ManifestDriftSpec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What deleting a Kustomization does to the objects of its inventory, as Flux's
/// `deletionPolicy`: `MirrorPrune` (the default) deletes them when `prune` is set, `Delete`
/// whatever `prune` says, `WaitForTermination` too and keeps the Kustomization until they are
/// gone (up to `timeout`), `Orphan` never. A suspended Kustomization deletes nothing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete them when `prune` is set, keep them otherwise.
    #[default]
    MirrorPrune,
    /// Delete them, whatever `prune` says.
    Delete,
    /// Delete them and keep the Kustomization until they are gone (their finalizers done), up
    /// to `timeout`.
    WaitForTermination,
    /// Keep them, whatever `prune` says.
    Orphan,
}

/// CEL expressions telling the health of the objects of one kind, as Flux's. Each sees the
/// object's top-level fields as variables (`metadata`, `spec`, `status`...); an object whose
/// `status.observedGeneration` is behind its generation is in progress whatever they say.
/// `inProgress` is asked first, then `failed`, then `current`; none true: in progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomHealthCheck {
    /// The objects' apiVersion (its group is what is matched).
    pub api_version: String,
    /// Their kind; empty: every kind of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// True when the object reached the state wanted (healthy).
    pub current: String,
    /// True while it is on its way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// True when it failed (the health check fails at once, naming the expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl CustomHealthCheck {
    /// The expressions set, with their field names, in the order they are asked.
    pub fn expressions(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::with_capacity(3);
        if let Some(e) = self.in_progress.as_deref().filter(|e| !e.is_empty()) {
            out.push(("inProgress", e));
        }
        if let Some(e) = self.failed.as_deref().filter(|e| !e.is_empty()) {
            out.push(("failed", e));
        }
        out.push(("current", self.current.as_str()));
        out
    }

    /// The group these expressions are for (`apps` of `apps/v1`, empty for `v1`).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }
}

/// The CEL environment of `healthCheckExprs`, close to Flux's: the standard library and
/// macros, the strings, lists and encoders (base64) extensions. Not in it: `timestamp()` and
/// `duration()` (the `chrono` feature) and the sets extension.
pub fn cel_env() -> &'static std::sync::Arc<cel::Env> {
    static ENV: std::sync::LazyLock<std::sync::Arc<cel::Env>> = std::sync::LazyLock::new(|| {
        let mut env = cel::Env::stdlib();
        for extension in [cel::extensions::strings, cel::extensions::lists, cel::extensions::encoders] {
            if let Err(e) = env.add_extension(extension) {
                tracing::warn!("a CEL extension is not available: {e}");
            }
        }
        std::sync::Arc::new(env)
    });
    &ENV
}

/// Parses a CEL expression of `healthCheckExprs`; the error reads as one line per problem.
///
/// The parser is generated from CEL's grammar and fed with what users write (the version of
/// the crate before this one panicked on malformed input): a panic in it is reported as a
/// parse error, so a bad expression never takes a reconcile down.
pub fn parse_cel(expr: &str) -> Result<cel::Program, String> {
    match std::panic::catch_unwind(|| cel_env().compile(expr)) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(errors)) => Err(errors
            .errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.pos.0, e.pos.1, e.msg.lines().next().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ")),
        Err(_) => Err("the CEL parser gave up on it".into()),
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizePatch {
    /// A strategic merge patch or a JSON 6902 patch, as YAML.
    pub patch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchSelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeImage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How a Kustomization decrypts (Flux's `spec.decryption`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// The only provider: `sops`.
    pub provider: DecryptionProvider,
    /// A Secret of this namespace whose `*.agekey` entries are age identities and whose
    /// `*.asc` entries are armored OpenPGP private keys (without a passphrase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<DecryptionSecretRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DecryptionProvider {
    #[serde(rename = "sops")]
    Sops,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptionSecretRef {
    pub name: String,
}

/// Where the kubeconfig of another cluster is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfigReference {
    pub secret_ref: KubeConfigSecretRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfigSecretRef {
    pub name: String,
    /// The key holding the kubeconfig; unset, `value`, else `value.yaml` (Flux's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    /// `${VAR}` values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    /// ConfigMaps and Secrets whose keys are variables (the spec's `substitute` wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitute_from: Vec<SubstituteReference>,
    /// Flux's `substituteStrategy`: `WithVariables` (unset) substitutes only when at least
    /// one variable is set, so manifests of a Kustomization whose ConfigMaps hold none keep
    /// their `${...}` text; `Always` substitutes anyway (for `${VAR:=default}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_strategy: Option<SubstituteStrategy>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubstituteStrategy {
    WithVariables,
    Always,
}

impl PostBuild {
    /// Whether the build's objects are substituted, as Flux decides: only with `postBuild`
    /// set (`post`), and then when a variable is set or the strategy is `Always`. Without
    /// it, `${HOME}` in a ConfigMap's script is applied as it is written.
    pub fn substitutes(post: Option<&PostBuild>, variables: usize) -> bool {
        post.is_some_and(|p| variables > 0 || p.substitute_strategy == Some(SubstituteStrategy::Always))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    pub name: String,
    /// A missing object is not an error.
    #[serde(default)]
    pub optional: bool,
}

#[cfg(test)]
mod post_build_tests {
    use super::*;

    #[test]
    fn substitution_runs_only_with_post_build_and_a_variable_or_always() {
        let with = |strategy| PostBuild { substitute_strategy: strategy, ..Default::default() };
        assert!(!PostBuild::substitutes(None, 0), "no postBuild: manifests as written");
        assert!(!PostBuild::substitutes(Some(&with(None)), 0), "no variable resolved: Flux's WithVariables");
        assert!(PostBuild::substitutes(Some(&with(None)), 1));
        assert!(!PostBuild::substitutes(Some(&with(Some(SubstituteStrategy::WithVariables))), 0));
        assert!(PostBuild::substitutes(Some(&with(Some(SubstituteStrategy::Always))), 0));
    }
}

/// Drift of manifests: the same modes as Terraform; rules name objects and JSON pointers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDriftSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<super::DriftMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<ManifestIgnoreRule>,
}

/// Drift to leave alone, e.g. `{kind: Deployment, paths: ["/spec/replicas"]}` for an HPA.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestIgnoreRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object name; `*` matches any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON pointers of the fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationStatus {
    #[serde(flatten)]
    pub common: ObjectStatus,
    /// The objects this Kustomization applied (and may prune).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<ResourceInventory>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInventory {
    pub entries: Vec<ResourceRef>,
}

/// Flux's inventory entry: `id` is `<namespace>_<name>_<group>_<kind>`, `v` the version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct ResourceRef {
    pub id: String,
    pub v: String,
}

impl Conditions for KustomizationStatus {
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
    use crate::api::Validate;

    fn kustomization(checks: serde_json::Value) -> Kustomization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Kustomization",
            "metadata": { "name": "apps", "namespace": "team" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "10m", "prune": true,
                      "deletionPolicy": "WaitForTermination", "healthCheckExprs": checks },
        }))
        .expect("kustomization")
    }

    #[test]
    fn health_check_expressions_that_do_not_parse_are_refused_by_field() {
        let good = kustomization(serde_json::json!([
            { "apiVersion": "example.com/v1", "kind": "Widget", "current": "status.phase == 'Ready'", "failed": "status.phase == 'Failed'" },
            { "apiVersion": "example.com/v1", "current": "has(status.ready) && status.ready" },
        ]));
        assert_eq!(good.spec.deletion_policy, Some(DeletionPolicy::WaitForTermination));
        assert!(good.validate().is_ok(), "{:?}", good.validate());
        let bad = kustomization(serde_json::json!([
            { "apiVersion": "example.com/v1", "kind": "Widget", "current": "status.phase ==", "inProgress": "(" },
            { "apiVersion": "example.com/v2", "kind": "Widget", "current": "" },
        ]));
        let message = bad.validate().expect_err("refused").to_string();
        for field in [
            "spec.healthCheckExprs[0].current",
            "spec.healthCheckExprs[0].inProgress",
            "spec.healthCheckExprs[1].current",
            "spec.healthCheckExprs[1]:",
        ] {
            assert!(message.contains(field), "{field} in {message}");
        }
        assert!(!message.contains("healthCheckExprs[0].failed"), "{message}");
    }
}
