use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CrossNamespaceSourceReference, Duration, SourceStatus};

/// One chart, packaged as a chart archive artifact (`<name>-<version>.tgz`, what `helm
/// install` takes): picked by semver range from a HelmRepository, or packaged from a
/// directory of a GitRepository or Bucket artifact. Fields as Flux's
/// `source.toolkit.fluxcd.io/v1` HelmChart. The revision is the chart version (with
/// `reconcileStrategy: Revision`, the version plus `+<source revision>` metadata, so that
/// every new commit makes a new chart, as in Flux).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "HelmChart",
    namespaced,
    status = "HelmChartStatus",
    shortname = "hc",
    printcolumn = r#"{"name":"Chart","type":"string","jsonPath":".spec.chart"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Source Kind","type":"string","jsonPath":".spec.sourceRef.kind"}"#,
    printcolumn = r#"{"name":"Source Name","type":"string","jsonPath":".spec.sourceRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// The chart's name in a HelmRepository, or its directory in a GitRepository or
    /// Bucket artifact (`./charts/app`).
    pub chart: String,
    /// A semver range (Masterminds syntax, as Flux) the chart version must match; `*` (the
    /// highest stable version) when unset. Ignored for a chart from Git or a Bucket, whose
    /// version is its Chart.yaml's (as in Flux).
    #[serde(default = "default_version")]
    pub version: String,
    /// The HelmRepository, GitRepository or Bucket in the HelmChart's namespace (as in
    /// Flux, a HelmChart reads no other namespace: `namespace` is refused).
    pub source_ref: CrossNamespaceSourceReference,
    /// How often to look for a new chart version.
    pub interval: Duration,
    /// When a chart from Git or a Bucket is a new one: `ChartVersion` (default, when its
    /// version changes) or `Revision` (at every new source revision).
    #[serde(default)]
    pub reconcile_strategy: ReconcileStrategy,
    /// Values files in the chart (paths relative to its root; for a Git or Bucket chart,
    /// relative to the artifact's root too), merged in order over the chart's
    /// `values.yaml` and packaged as its `values.yaml`, as Flux does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// A values file in `valuesFiles` that does not exist is skipped instead of failing.
    #[serde(default)]
    pub ignore_missing_values_files: bool,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReconcileStrategy {
    #[default]
    ChartVersion,
    Revision,
}

fn default_version() -> String {
    "*".to_string()
}

pub type HelmChartStatus = SourceStatus;
