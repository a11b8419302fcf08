//! What every reconciled object exposes to the reconcile core, the scheduler, the CLI and
//! the review page: its status, suspension, source, dependencies, approval and intervals.
//! Each kind answers from its own spec; nobody else reads a kind's spec for these.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Artifact, Bucket, Conditions, CrossNamespaceSourceReference, DependencyReference, DriftMode, GitRepository, Kind, Kustomization,
    KustomizationStatus, ObjectStatus, SourceStatus, Terraform, TerraformStatus, Validate,
};

/// The status of a reconciled kind: conditions and bookkeeping every kind has, plus the
/// plan, drift and history of the kinds that plan ([`ObjectStatus`]).
pub trait StatusModel: Conditions + Clone + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static {
    fn observed_generation(&self) -> Option<i64>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
    /// `lastHandledReconcileAt`: the last `reconcile-requested-at` value handled.
    fn last_handled_reconcile_at(&self) -> Option<&str>;
    fn set_last_handled_reconcile_at(&mut self, at: Option<String>);
    /// Plan, drift and history; `None` for kinds that do not plan (sources).
    fn common(&self) -> Option<&ObjectStatus>;
    fn common_mut(&mut self) -> Option<&mut ObjectStatus>;
    /// The artifact a source kind produced, for the objects that read it.
    fn artifact(&self) -> Option<&Artifact> {
        None
    }
    /// The revision events about the object name: the artifact's (sources), or the one
    /// last attempted.
    fn revision(&self) -> Option<&str> {
        self.common().and_then(|c| c.last_attempted_revision.as_deref())
    }
}

/// A kind the reconcile core reconciles.
pub trait Reconciled:
    kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Send + Sync + Validate + std::fmt::Debug + 'static
{
    const KIND: Kind;
    /// Whether an unset `approvePlan` applies every plan (Flux's Kustomization does) or
    /// plans and waits (tofu-controller's Terraform does).
    const APPLIES_BY_DEFAULT: bool = false;
    type Status: StatusModel;

    fn status(&self) -> Option<&Self::Status>;
    fn status_mut(&mut self) -> &mut Option<Self::Status>;
    fn suspended(&self) -> bool;
    fn set_suspended(&mut self, suspended: bool);
    /// How often to reconcile when nothing else asks for it.
    fn interval(&self) -> Duration;
    /// The first wait after a failure (doubled per consecutive failure, up to the interval).
    fn retry_interval(&self) -> Duration {
        self.interval()
    }
    /// The source whose artifact this object reads.
    fn source_ref(&self) -> Option<&CrossNamespaceSourceReference> {
        None
    }
    /// Objects that must be Ready first.
    fn depends_on(&self) -> &[DependencyReference] {
        &[]
    }
    /// `spec.approvePlan` as written.
    fn approve_plan(&self) -> Option<&str> {
        None
    }
    fn drift_mode(&self) -> DriftMode {
        DriftMode::Disabled
    }
    /// How often to check for drift while nothing changes.
    fn drift_interval(&self) -> Duration {
        self.interval()
    }

    /// What its deletion does first, for the person deleting it (`destroying its resources`).
    fn cleanup_on_deletion(&self) -> Option<&'static str> {
        None
    }

    /// The object's namespace (`default` when it names none, as in a local store).
    fn namespace_or_default(&self) -> String {
        self.meta().namespace.clone().unwrap_or_else(|| "default".into())
    }
    fn name_or_empty(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }
    /// This object as a schedule and the CLI name it.
    fn reference(&self) -> super::ObjectRef {
        super::ObjectRef::new(Self::KIND, self.namespace_or_default(), self.name_or_empty())
    }
    /// The common status, empty when the object was never reconciled.
    fn common_status(&self) -> ObjectStatus {
        self.status().and_then(StatusModel::common).cloned().unwrap_or_default()
    }
}

impl StatusModel for SourceStatus {
    fn observed_generation(&self) -> Option<i64> {
        self.observed_generation
    }
    fn set_observed_generation(&mut self, generation: Option<i64>) {
        self.observed_generation = generation;
    }
    fn last_handled_reconcile_at(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
    fn set_last_handled_reconcile_at(&mut self, at: Option<String>) {
        self.last_handled_reconcile_at = at;
    }
    fn common(&self) -> Option<&ObjectStatus> {
        None
    }
    fn common_mut(&mut self) -> Option<&mut ObjectStatus> {
        None
    }
    fn artifact(&self) -> Option<&Artifact> {
        self.artifact.as_ref()
    }
    fn revision(&self) -> Option<&str> {
        self.artifact.as_ref().map(|a| a.revision.as_str())
    }
}

macro_rules! planned_status {
    ($status:ty) => {
        impl StatusModel for $status {
            fn observed_generation(&self) -> Option<i64> {
                self.common.observed_generation
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.common.observed_generation = generation;
            }
            fn last_handled_reconcile_at(&self) -> Option<&str> {
                self.common.last_handled_reconcile_at.as_deref()
            }
            fn set_last_handled_reconcile_at(&mut self, at: Option<String>) {
                self.common.last_handled_reconcile_at = at;
            }
            fn common(&self) -> Option<&ObjectStatus> {
                Some(&self.common)
            }
            fn common_mut(&mut self) -> Option<&mut ObjectStatus> {
                Some(&mut self.common)
            }
        }
    };
}

planned_status!(TerraformStatus);
planned_status!(KustomizationStatus);

/// A source kind: a spec with `interval` and `suspend`, a [`SourceStatus`].
macro_rules! source_kind {
    ($type:ty, $kind:expr) => {
        impl Reconciled for $type {
            const KIND: Kind = $kind;
            type Status = SourceStatus;

            fn status(&self) -> Option<&SourceStatus> {
                self.status.as_ref()
            }
            fn status_mut(&mut self) -> &mut Option<SourceStatus> {
                &mut self.status
            }
            fn suspended(&self) -> bool {
                self.spec.suspend
            }
            fn set_suspended(&mut self, suspended: bool) {
                self.spec.suspend = suspended;
            }
            fn interval(&self) -> Duration {
                self.spec.interval.as_std()
            }
        }
    };
}

source_kind!(GitRepository, Kind::GitRepository);
source_kind!(Bucket, Kind::Bucket);

impl Reconciled for Terraform {
    const KIND: Kind = Kind::Terraform;
    type Status = TerraformStatus;

    fn status(&self) -> Option<&TerraformStatus> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<TerraformStatus> {
        &mut self.status
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn set_suspended(&mut self, suspended: bool) {
        self.spec.suspend = suspended;
    }
    fn interval(&self) -> Duration {
        self.spec.interval.as_std()
    }
    fn retry_interval(&self) -> Duration {
        self.spec.retry_interval.as_ref().map_or_else(|| self.interval(), |d| d.as_std())
    }
    fn source_ref(&self) -> Option<&CrossNamespaceSourceReference> {
        Some(&self.spec.source_ref)
    }
    fn depends_on(&self) -> &[DependencyReference] {
        &self.spec.depends_on
    }
    fn approve_plan(&self) -> Option<&str> {
        self.spec.approve_plan.as_deref()
    }
    fn drift_mode(&self) -> DriftMode {
        self.spec.drift.as_ref().map(|d| d.mode).unwrap_or_default()
    }
    fn cleanup_on_deletion(&self) -> Option<&'static str> {
        self.spec.destroy_resources_on_deletion.then_some("destroying its resources")
    }
    fn drift_interval(&self) -> Duration {
        self.spec.drift.as_ref().and_then(|d| d.interval.as_ref()).map_or_else(|| self.interval(), |d| d.as_std())
    }
}

impl Reconciled for Kustomization {
    const KIND: Kind = Kind::Kustomization;
    const APPLIES_BY_DEFAULT: bool = true;
    type Status = KustomizationStatus;

    fn status(&self) -> Option<&KustomizationStatus> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<KustomizationStatus> {
        &mut self.status
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn set_suspended(&mut self, suspended: bool) {
        self.spec.suspend = suspended;
    }
    fn interval(&self) -> Duration {
        self.spec.interval.as_std()
    }
    fn retry_interval(&self) -> Duration {
        self.spec.retry_interval.as_ref().map_or_else(|| self.interval(), |d| d.as_std())
    }
    fn source_ref(&self) -> Option<&CrossNamespaceSourceReference> {
        Some(&self.spec.source_ref)
    }
    fn depends_on(&self) -> &[DependencyReference] {
        &self.spec.depends_on
    }
    fn approve_plan(&self) -> Option<&str> {
        self.spec.approve_plan.as_deref()
    }
    fn drift_mode(&self) -> DriftMode {
        self.spec.drift.as_ref().and_then(|d| d.mode).unwrap_or(DriftMode::Detect)
    }
    fn cleanup_on_deletion(&self) -> Option<&'static str> {
        self.spec.prune.then_some("pruning what it applied")
    }
    fn drift_interval(&self) -> Duration {
        self.spec.drift.as_ref().and_then(|d| d.interval.as_ref()).map_or_else(|| self.interval(), |d| d.as_std())
    }
}
