use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, LocalObjectReference, SourceStatus};

/// An S3-compatible bucket (or a prefix of one) to download into a content-addressed
/// artifact. Fields as Flux's `source.toolkit.fluxcd.io/v1` Bucket, so manifests move over
/// with a change of `apiVersion`. The revision is `sha256:<hex>` of the sorted object
/// listing (key and ETag): an unchanged bucket makes no new artifact and downloads nothing.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Bucket",
    namespaced,
    status = "BucketStatus",
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.endpoint"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.bucketName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.artifact.revision"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// `generic` (any S3-compatible server, static or ambient credentials). Flux's `aws`,
    /// `gcp` and `azure` providers are not supported yet.
    #[serde(default = "default_provider")]
    pub provider: String,
    pub bucket_name: String,
    /// `host[:port]` (https, or http with `insecure: true`); a URL with a scheme is accepted too.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only objects whose key starts with this prefix (listed server-side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Plain HTTP to the endpoint.
    #[serde(default)]
    pub insecure: bool,
    /// Secret with `accesskey` and `secretkey` (Flux), or `accessKeyID`/`secretAccessKey`
    /// (+ `sessionToken`). Without it, the standard AWS credential chain is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// gitignore-style patterns of keys left out of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// How often to list the bucket.
    pub interval: Duration,
    /// Timeout of one list-and-download; defaults to 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub suspend: bool,
}

fn default_provider() -> String {
    "generic".to_string()
}

pub type BucketStatus = SourceStatus;
