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
    /// Secret with `username`/`password` or `bearerToken` (https), or `identity` and
    /// `known_hosts` for ssh. For https also, as in Flux: `ca.crt` (PEM certificates of CAs
    /// to trust besides the system's; Flux's older `caFile` is read when `ca.crt` is absent)
    /// and `tls.crt` + `tls.key` (a client certificate for mutual TLS). TLS keys on a URL
    /// that is not https are refused.
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
    /// Other GitRepositories (of this namespace) whose artifacts are copied into this one's,
    /// as Flux's `include`: the revision stays this repository's commit, the artifact (and
    /// its digest) is made again whenever an included artifact changes, and
    /// `status.includedArtifacts` lists what was included. `ignore` applies to the included
    /// files too; with `sparseCheckout`, each `toPath` is kept as well. Includes that form a
    /// cycle are refused (InvalidSpec): each new artifact would make the other's again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<GitRepositoryInclude>,
    /// Check out the repository's submodules too, recursively, each at the commit the
    /// repository records, from the URL of the commit's `.gitmodules` (relative URLs
    /// resolved against `url`), as Flux's `recurseSubmodules`. Unlike Flux, the Secret's
    /// credentials and the proxy are used only for submodules on the same scheme, host and
    /// port as `url`, and a `file://` submodule is refused unless `url` is `file://` too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recurse_submodules: bool,
    /// Secret with the proxy to reach an http(s) `url` through, as Flux's `proxySecretRef`:
    /// `address` (required, `http://host:port`), `username` and `password`. driftless tunnels
    /// every request with `CONNECT`, also for `http://` URLs, and supports `http://` proxies
    /// only (Flux also takes `https://` and `socks5://` ones, and proxies ssh too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectReference>,
    /// Verify OpenPGP signatures before an artifact is made, as Flux's `verify`: the commit
    /// checked out (`mode: HEAD`, the default), the annotated tag of `ref` (`Tag`) or both
    /// (`TagAndHEAD`), each by one of the public keys of `secretRef`. A revision that fails
    /// makes no artifact; `SourceVerified` says which key verified it or why none did.
    #[serde(default, rename = "verify", skip_serializing_if = "Option::is_none")]
    pub verification: Option<GitRepositoryVerification>,
    #[serde(default)]
    pub suspend: bool,
}

/// Flux's `verify`: which Git objects must be signed, and by whom.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    /// `HEAD` (the commit checked out), `Tag` (the annotated tag `ref` names) or `TagAndHEAD`;
    /// Flux's older `head` is read as `HEAD`.
    #[serde(default)]
    pub mode: GitVerificationMode,
    /// Secret whose values are ASCII-armored OpenPGP public keys (any key names, one or more
    /// keys each; Flux's `.asc` suffix is usual). Keys named `*.sshpub` (Flux's SSH keys) are
    /// not used: driftless verifies OpenPGP signatures only.
    pub secret_ref: LocalObjectReference,
}

/// Which Git objects `verify` checks (Flux's `GitVerificationMode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GitVerificationMode {
    /// The commit the revision checks out.
    #[default]
    #[serde(rename = "HEAD", alias = "head")]
    Head,
    /// The annotated tag object `ref` names (a tag or semver ref, or `ref.name: refs/tags/...`).
    Tag,
    /// The tag object and the commit it points to.
    #[serde(rename = "TagAndHEAD")]
    TagAndHead,
}

impl GitVerificationMode {
    /// The name Flux gives the mode (`head` is given as `HEAD`).
    pub fn as_str(self) -> &'static str {
        match self {
            GitVerificationMode::Head => "HEAD",
            GitVerificationMode::Tag => "Tag",
            GitVerificationMode::TagAndHead => "TagAndHEAD",
        }
    }

    /// Whether the commit checked out is verified.
    pub fn verifies_head(self) -> bool {
        matches!(self, GitVerificationMode::Head | GitVerificationMode::TagAndHead)
    }

    /// Whether the tag object is verified.
    pub fn verifies_tag(self) -> bool {
        matches!(self, GitVerificationMode::Tag | GitVerificationMode::TagAndHead)
    }
}

impl std::fmt::Display for GitVerificationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Flux's CRD takes `head` too, so the schema lists it though it is never written back. No
// default here: `spec.verify.mode` gets HEAD from its field, and status must get none.
impl JsonSchema for GitVerificationMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GitVerificationMode".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": ["head", "HEAD", "Tag", "TagAndHEAD"],
            "description": "Which Git objects are verified: HEAD (the commit), Tag (the annotated tag) or TagAndHEAD."
        })
    }
}

/// One GitRepository whose artifact is copied into this one's (Flux's `include`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryInclude {
    /// The GitRepository, in this object's namespace, whose artifact is included.
    pub repository: LocalObjectReference,
    /// The directory (or file) of its artifact to copy; its root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    /// Where in this artifact the copy goes; the included GitRepository's name when unset.
    /// What the repository already has there is merged with it, the included files winning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_path: Option<String>,
}

impl GitRepositoryInclude {
    /// `toPath`, or the repository's name as Flux defaults it.
    pub fn to_path(&self) -> &str {
        self.to_path.as_deref().filter(|p| !p.is_empty()).unwrap_or(&self.repository.name)
    }
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
    /// A GitRepository's `include`: the included artifacts its artifact was made with, in
    /// the order of `spec.include` (Flux's `includedArtifacts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_artifacts: Vec<Artifact>,
    /// A GitRepository's `verify`: the mode its artifact's revision was verified with
    /// (Flux's `sourceVerificationMode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_verification_mode: Option<GitVerificationMode>,
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
