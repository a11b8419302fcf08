use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, Duration, status::Conditions};

/// A Git repository to fetch into a content-addressed artifact (fields as Flux's
/// `source.toolkit.fluxcd.io/v1` GitRepository, so manifests move over unchanged).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "GitRepository",
    namespaced,
    status = "GitRepositoryStatus",
    shortname = "gitrepo",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// `file://`, `http(s)://` or `ssh://` URL of the repository.
    pub url: String,
    /// Secret with `username`/`password` or `bearerToken` (https), or `identity`
    /// (+ optional `known_hosts`) for ssh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// How often to look for a new revision.
    pub interval: Duration,
    /// Timeout of one fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Which revision to check out; defaults to the `master` branch as in Flux.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,
    /// gitignore-style patterns of paths left out of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Only these directories (relative to the repository's root) go into the artifact, as
    /// Flux's `sparseCheckout`; each must exist at the revision. `ignore` applies within them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sparse_checkout: Vec<String>,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    pub name: String,
}

/// Which revision to check out. Precedence as in Flux: commit, then semver, then tag, then branch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A full reference name (`refs/heads/main`, `refs/tags/v1.0.0`, `refs/pull/42/head`),
    /// as Flux's `ref.name`: it takes precedence over branch, tag and semver (a commit wins
    /// over it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range over the repository's tags, e.g. `>=1.0.0 <2.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// A full commit SHA; with `branch`, the commit must be on that branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// A fetched revision, stored as a tar.gz named by its sha256 digest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Path in the artifact store, `<kind>/<namespace>/<name>/<digest hex>.tar.gz`.
    pub path: String,
    /// Where a runner downloads it from (file:// in local mode, the artifact server on a cluster).
    pub url: String,
    /// `branch@sha1:<sha>`, `tag@sha1:<sha>` or `sha1:<sha>` (Git); `sha256:<hex>` of the
    /// object listing (Bucket).
    pub revision: String,
    /// `sha256:<hex>` of the tar.gz.
    pub digest: String,
    pub last_update_time: String,
    #[serde(default)]
    pub size: u64,
}

// One shape for every source kind (GitRepository, Bucket), so the source reconciler and
// the objects reading artifacts treat them alike.
/// Conditions and the artifact of the last fetched revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

pub type GitRepositoryStatus = SourceStatus;

impl Conditions for SourceStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}
