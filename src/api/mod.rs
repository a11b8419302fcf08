//! The `driftless.dev/v1alpha1` API: custom resource types and the status model every kind
//! shares, so one CLI, one alert and one review page serve Terraform and manifests alike.

mod bucket;
mod duration;
mod gitrepository;
mod helmchart;
mod helmrepository;
mod kind;
mod kustomization;
mod notification;
mod ocirepository;
mod reconciled;
pub mod runner_pod;
mod schema;
mod status;
mod tenancy;
mod terraform;
mod validation;

pub use bucket::{Bucket, BucketSpec, BucketStatus};
pub use duration::{Duration, MAX as DURATION_MAX, PATTERN as DURATION_PATTERN};
pub use gitrepository::{
    Artifact, GitRepository, GitRepositoryInclude, GitRepositoryRef, GitRepositorySpec, GitRepositoryStatus, GitRepositoryVerification,
    GitVerificationMode, LocalObjectReference, SourceStatus,
};
pub use helmchart::{HelmChart, HelmChartSpec, HelmChartStatus, ReconcileStrategy};
pub use helmrepository::{HelmRepository, HelmRepositorySpec, HelmRepositoryStatus, HelmRepositoryType};
pub use kind::{Kind, ObjectRef, object_path, path_segment, review_link};
pub use kustomization::{
    CommonMetadata, CustomHealthCheck, Decryption, DecryptionProvider, DecryptionSecretRef, DeletionPolicy, HealthCheckReference,
    KubeConfigReference, KubeConfigSecretRef, Kustomization, KustomizationSpec, KustomizationStatus, KustomizeImage, KustomizePatch,
    ManifestDriftSpec, ManifestIgnoreRule, PatchSelector, PostBuild, ResourceInventory, ResourceRef, SubstituteReference, cel_env,
    parse_cel,
};
pub use notification::{
    Alert, AlertSpec, EventSourceReference, NotificationStatus, PROVIDER_TYPES, Provider, ProviderSpec, RECEIVER_TYPES, Receiver,
    ReceiverSpec, ReceiverStatus,
};
pub use ocirepository::{OciLayerOperation, OciLayerSelector, OciRepository, OciRepositoryRef, OciRepositorySpec, OciRepositoryStatus};
pub use reconciled::{Reconciled, StatusModel, applies_automatically, default_drift_mode};
pub use schema::unknown_fields;
pub use status::{
    Acknowledgement, Condition, ConditionStatus, Conditions, DRIFT_CHECKED, DriftObject, DriftStatus, HISTORY_LIMIT, HistoryEntry,
    LockStatus, ObjectStatus, PlanApprover, PlanStatus, PlanSummary, condition_type, reason,
};
pub use tenancy::{Tenancy, cross_namespace_refusal};
pub use terraform::{
    BackendConfig, BackendConfigsReference, CrossNamespaceSourceReference, DependencyReference, DriftIgnoreRule, DriftMode, DriftSpec,
    Engine, FileLocation, FileMapping, ForceUnlockMode, HealthCheck, HealthCheckType, HealthTarget, KeySelector, ReadInputsFromSecret,
    RunnerPodTemplate, S3BackendConfig, SecretKeyReference, SecretReference, StoreReadablePlan, Terraform, TerraformSpec, TerraformStatus,
    TfStateSpec, Variable, VariableSource, VarsReference, WriteOutputsToSecret, bare_go_action,
};
pub use validation::{FieldError, Validate, ValidationError};

/// The API group of every driftless kind.
pub const GROUP: &str = "driftless.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Annotations a user sets to steer a reconcile without editing the spec in Git.
pub use driftless_core::names::annotation;

/// Every CRD this crate defines, for `driftless crds`.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![
        Alert::crd(),
        Bucket::crd(),
        GitRepository::crd(),
        HelmChart::crd(),
        HelmRepository::crd(),
        Kustomization::crd(),
        OciRepository::crd(),
        Provider::crd(),
        Receiver::crd(),
        Terraform::crd(),
    ]
}
