use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, LocalObjectReference, SourceStatus};

/// A Helm chart repository: an HTTP(S) server of an `index.yaml` (`type: default`), or an
/// OCI registry holding charts (`type: oci`). Fields as Flux's `source.toolkit.fluxcd.io/v1`
/// HelmRepository, so manifests move over with a change of `apiVersion`.
///
/// An HTTP repository's artifact is its index, with revision `sha256:<hex>` of the index
/// as served: an unchanged index makes no new artifact. An OCI repository has no index;
/// it is Ready once its URL and Secrets are read, and the HelmCharts naming it pull from
/// the registry themselves (as in Flux).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "HelmRepository",
    namespaced,
    status = "HelmRepositoryStatus",
    shortname = "helmrepo",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositorySpec {
    /// `http(s)://...` (the directory of `index.yaml`), or `oci://host[:port]/path` with
    /// `type: oci`.
    pub url: String,
    /// `default` (an HTTP index) or `oci`.
    #[serde(default, rename = "type")]
    pub repository_type: HelmRepositoryType,
    /// A Secret with `username` and `password` (Basic auth for an HTTP repository, registry
    /// credentials for an OCI one), or a `kubernetes.io/dockerconfigjson` Secret for `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// A Secret with `ca.crt` and/or `tls.crt` + `tls.key`, as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Send `secretRef`'s credentials to chart URLs on other hosts than the repository's
    /// (Helm's `--pass-credentials`); off by default, as in Helm and Flux.
    #[serde(default)]
    pub pass_credentials: bool,
    /// Plain HTTP to an OCI registry (`type: oci` only, as in Flux).
    #[serde(default)]
    pub insecure: bool,
    /// How often to download the index (`type: default`); 1m when unset, as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Timeout of one index download; 60s when unset, as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// `generic` (static credentials from `secretRef`, or none). Flux's `aws`, `azure` and
    /// `gcp` (cloud workload identity for `oci`) are not supported yet.
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HelmRepositoryType {
    #[default]
    Default,
    Oci,
}

fn default_provider() -> String {
    "generic".to_string()
}

pub type HelmRepositoryStatus = SourceStatus;
