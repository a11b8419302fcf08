use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, LocalObjectReference, SourceStatus};

/// An artifact in an OCI registry (what `flux push artifact` and `driftless push artifact`
/// publish) to pull into a content-addressed artifact. Fields as Flux's
/// `source.toolkit.fluxcd.io/v1` OCIRepository, so manifests move over with a change of
/// `apiVersion`. The revision is Flux's: `<tag>@sha256:<manifest digest>`, or the digest
/// alone when `ref.digest` pins one. An unchanged digest downloads nothing: one HEAD request
/// (plus the tag list for a semver range) per interval.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "OCIRepository",
    root = "OciRepository",
    namespaced,
    status = "OciRepositoryStatus",
    shortname = "ocirepo",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OciRepositorySpec {
    /// `oci://<host>[:<port>]/<repository>`, without a tag or digest (`ref` selects those).
    pub url: String,
    /// Which artifact to pull: `digest` wins over `semver`, which wins over `tag`; the
    /// `latest` tag when unset, as in Flux.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<OciRepositoryRef>,
    /// Which layer of the artifact becomes the artifact: the first with `mediaType` (the
    /// first layer when unset), extracted (`extract`, the default) or kept as the tar.gz it
    /// is (`copy`). The layer must be a gzipped tarball.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_selector: Option<OciLayerSelector>,
    /// `generic` (static credentials from `secretRef`, or none). Flux's `aws`, `azure` and
    /// `gcp` (cloud workload identity) are not supported yet.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// A `kubernetes.io/dockerconfigjson` Secret (what `kubectl create secret
    /// docker-registry` makes) with the registry's credentials; its entry for the URL's host
    /// is used, Basic or token authentication as the registry asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// A Secret with `ca.crt` (CAs to trust besides the system's) and/or `tls.crt` +
    /// `tls.key` (a client certificate for mutual TLS), as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Plain HTTP to the registry (Flux's `insecure`); https otherwise.
    #[serde(default)]
    pub insecure: bool,
    /// How often to look for a new digest.
    pub interval: Duration,
    /// Timeout of one pull; 60s when unset, as in Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// gitignore-style patterns of paths left out of the artifact (with `extract`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    #[serde(default)]
    pub suspend: bool,
}

/// Which artifact of the repository to pull.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciRepositoryRef {
    /// `sha256:<hex>` of a manifest: pinned, wins over the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A semver range (Masterminds syntax, as Flux): the highest matching tag wins over `tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// A regular expression the tags must match to be considered for `semver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Which layer becomes the artifact, and how.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciLayerSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `extract` (default) or `copy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OciLayerOperation>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OciLayerOperation {
    #[default]
    Extract,
    Copy,
}

fn default_provider() -> String {
    "generic".to_string()
}

pub type OciRepositoryStatus = SourceStatus;
