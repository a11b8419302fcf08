//! What every reconciled object exposes to the reconcile core, the scheduler, the CLI and
//! the review page: its status, suspension, source, dependencies, approval and intervals.
//! Each kind answers from its own spec; nobody else reads a kind's spec for these.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Artifact, Bucket, Conditions, CrossNamespaceSourceReference, DependencyReference, DriftMode, GitRepository, HelmChart, HelmRepository,
    Kind, Kustomization, KustomizationStatus, ObjectStatus, OciRepository, SourceStatus, Terraform, TerraformStatus, Validate,
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

/// Whether `spec.approvePlan` (as written) applies every plan: `auto`, or unset where the
/// kind applies by default.
pub fn applies_automatically(approve_plan: Option<&str>, applies_by_default: bool) -> bool {
    match approve_plan.map(str::trim) {
        None => applies_by_default,
        Some(v) => v == "auto",
    }
}

/// The drift mode of an object that names none: the peers' behaviour. Where plans apply
/// automatically, drift is corrected (Flux's Kustomization re-applies on every interval,
/// tofu-controller's `approvePlan: auto` corrects drift); elsewhere it is reported and its
/// correction waits for approval. `detect` under `auto` is the opt-in for reporting only.
pub fn default_drift_mode(applies_automatically: bool) -> DriftMode {
    if applies_automatically { DriftMode::Correct } else { DriftMode::Detect }
}

/// A kind the reconcile core reconciles.
pub trait Reconciled:
    kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Send + Sync + Validate + std::fmt::Debug + 'static
{
    const KIND: Kind;
    /// Whether an unset `approvePlan` applies every plan (Flux's Kustomization does) or
    /// plans and waits (tofu-controller's Terraform does).
    const APPLIES_BY_DEFAULT: bool = false;
    /// The source kinds its `sourceRef` may name.
    const SOURCE_KINDS: &'static [Kind] = &Kind::TREE_SOURCES;
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
    /// The GitRepositories of its own namespace whose artifacts go into its own (a
    /// GitRepository's `include`).
    fn included(&self) -> Vec<String> {
        Vec::new()
    }
    /// `spec.approvePlan` as written.
    fn approve_plan(&self) -> Option<&str> {
        None
    }
    fn drift_mode(&self) -> DriftMode {
        DriftMode::Disabled
    }
    /// Every plan is applied whatever the approval says (tofu-controller's `force`).
    fn force_applies(&self) -> bool {
        false
    }
    /// How often to check for drift while nothing changes.
    fn drift_interval(&self) -> Duration {
        self.interval()
    }

    /// Why the cluster owner's rules refuse this object, if they do: a reference to another
    /// namespace under `--no-cross-namespace-refs`, a URL or credentials it may not use.
    fn refused_by(&self, tenancy: &super::Tenancy) -> Option<String> {
        super::cross_namespace_refusal(tenancy, &self.namespace_or_default(), self.references())
    }

    /// Every reference to another object: the field and the namespace it names (`None`: the
    /// object's own).
    fn references(&self) -> Vec<(String, Option<&str>)> {
        let mut refs: Vec<(String, Option<&str>)> = Vec::new();
        if let Some(s) = self.source_ref() {
            refs.push(("spec.sourceRef".into(), s.namespace.as_deref()));
        }
        for (i, d) in self.depends_on().iter().enumerate() {
            refs.push((format!("spec.dependsOn[{i}]"), d.namespace.as_deref()));
        }
        refs
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

/// A source kind: a spec with `interval` (or its own reading of it) and `suspend`, a
/// [`SourceStatus`].
macro_rules! source_kind {
    ($type:ty, $kind:expr, { $($own:tt)* }) => {
        source_kind!($type, $kind, interval = |object| object.spec.interval.as_std(), { $($own)* });
    };
    ($type:ty, $kind:expr, interval = |$object:ident| $interval:expr, { $($own:tt)* }) => {
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
                let $object = self;
                $interval
            }
            $($own)*
        }
    };
}

source_kind!(GitRepository, Kind::GitRepository, {
    fn included(&self) -> Vec<String> {
        self.spec.include.iter().map(|i| i.repository.name.clone()).collect()
    }
    /// `file://` reads the controller's own disk: a local store's business, not a tenant's.
    fn refused_by(&self, tenancy: &super::Tenancy) -> Option<String> {
        if !tenancy.file_urls && self.spec.url.starts_with("file://") {
            return Some(
                "spec.url: file:// URLs read the controller's own disk and are refused on a cluster; use https://, ssh:// or http:// (the cluster owner may allow them with --allow-file-urls)"
                    .into(),
            );
        }
        None
    }
});
source_kind!(Bucket, Kind::Bucket, {});
source_kind!(OciRepository, Kind::OciRepository, {});
// Flux's default interval of an index is 1m (an OCI repository has nothing to fetch: it
// is only checked again at this pace).
source_kind!(
    HelmRepository,
    Kind::HelmRepository,
    interval = |object| object.spec.interval.as_ref().map_or(Duration::from_secs(60), |i| i.as_std()),
    {}
);
source_kind!(HelmChart, Kind::HelmChart, {
    const SOURCE_KINDS: &'static [Kind] = &Kind::CHART_SOURCES;
    fn source_ref(&self) -> Option<&CrossNamespaceSourceReference> {
        Some(&self.spec.source_ref)
    }
});

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
    /// Cross-namespace references, and a runner ServiceAccount outside the cluster owner's list.
    fn refused_by(&self, tenancy: &super::Tenancy) -> Option<String> {
        super::cross_namespace_refusal(tenancy, &self.namespace_or_default(), self.references())
            .or_else(|| tenancy.runner_account_refusal(self.spec.service_account_name.as_deref()))
    }
    fn depends_on(&self) -> &[DependencyReference] {
        &self.spec.depends_on
    }
    /// The source, dependencies and the CLI configuration's Secret, which may name a
    /// namespace.
    fn references(&self) -> Vec<(String, Option<&str>)> {
        let mut refs = vec![("spec.sourceRef".to_string(), self.spec.source_ref.namespace.as_deref())];
        for (i, d) in self.spec.depends_on.iter().enumerate() {
            refs.push((format!("spec.dependsOn[{i}]"), d.namespace.as_deref()));
        }
        if let Some(r) = &self.spec.cli_config_secret_ref {
            refs.push(("spec.cliConfigSecretRef".into(), r.namespace.as_deref()));
        }
        refs
    }
    fn approve_plan(&self) -> Option<&str> {
        self.spec.approve_plan.as_deref()
    }
    /// `disableDriftDetection` wins; `force` applies everything, drift corrections included.
    fn drift_mode(&self) -> DriftMode {
        if self.spec.disable_drift_detection {
            return DriftMode::Disabled;
        }
        let explicit = self.spec.drift.as_ref().and_then(|d| d.mode);
        let automatic = self.spec.force || applies_automatically(self.approve_plan(), Self::APPLIES_BY_DEFAULT);
        explicit.unwrap_or_else(|| default_drift_mode(automatic))
    }
    fn force_applies(&self) -> bool {
        self.spec.force
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
        let explicit = self.spec.drift.as_ref().and_then(|d| d.mode);
        explicit.unwrap_or_else(|| default_drift_mode(applies_automatically(self.approve_plan(), Self::APPLIES_BY_DEFAULT)))
    }
    fn cleanup_on_deletion(&self) -> Option<&'static str> {
        self.spec.prune.then_some("pruning what it applied")
    }
    fn references(&self) -> Vec<(String, Option<&str>)> {
        let mut refs = vec![("spec.sourceRef".to_string(), self.spec.source_ref.namespace.as_deref())];
        refs.extend(self.spec.depends_on.iter().enumerate().map(|(i, d)| (format!("spec.dependsOn[{i}]"), d.namespace.as_deref())));
        refs.extend(self.spec.health_checks.iter().enumerate().map(|(i, h)| (format!("spec.healthChecks[{i}]"), h.namespace.as_deref())));
        refs
    }
    fn drift_interval(&self) -> Duration {
        self.spec.drift.as_ref().and_then(|d| d.interval.as_ref()).map_or_else(|| self.interval(), |d| d.as_std())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Tenancy;

    const LOCKED: Tenancy =
        Tenancy { cross_namespace_refs: false, file_urls: false, ambient_credentials: false, runner_service_accounts: None };

    fn object<K: serde::de::DeserializeOwned>(kind: &str, spec: serde_json::Value) -> K {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": kind,
            "metadata": { "name": "x", "namespace": "team-b" },
            "spec": spec,
        }))
        .expect("object")
    }

    #[test]
    fn an_object_without_a_drift_mode_gets_the_peers_default() {
        let base = serde_json::json!({ "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1m", "prune": true });
        let with = |extra: serde_json::Value| {
            let mut spec = base.clone();
            spec.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            spec
        };
        // Flux's Kustomization applies every revision and re-applies on every interval.
        let k: Kustomization = object("Kustomization", base.clone());
        assert_eq!(k.drift_mode(), DriftMode::Correct);
        let k: Kustomization = object("Kustomization", with(serde_json::json!({ "approvePlan": "" })));
        assert_eq!(k.drift_mode(), DriftMode::Detect, "plans that wait: corrections wait too");
        let k: Kustomization = object("Kustomization", with(serde_json::json!({ "drift": { "mode": "detect" } })));
        assert_eq!(k.drift_mode(), DriftMode::Detect, "the opt-in");
        // tofu-controller's Terraform waits unless approvePlan is auto, and corrects drift then.
        let t: Terraform = object("Terraform", base.clone());
        assert_eq!(t.drift_mode(), DriftMode::Detect);
        let t: Terraform = object("Terraform", with(serde_json::json!({ "approvePlan": "auto" })));
        assert_eq!(t.drift_mode(), DriftMode::Correct);
        let t: Terraform = object("Terraform", with(serde_json::json!({ "force": true })));
        assert_eq!((t.drift_mode(), t.force_applies()), (DriftMode::Correct, true));
        let t: Terraform = object("Terraform", with(serde_json::json!({ "approvePlan": "auto", "disableDriftDetection": true })));
        assert_eq!(t.drift_mode(), DriftMode::Disabled);
        let t: Terraform = object("Terraform", with(serde_json::json!({ "approvePlan": "auto", "drift": { "mode": "detect" } })));
        assert_eq!(t.drift_mode(), DriftMode::Detect);
    }

    #[test]
    fn a_file_url_is_refused_on_a_locked_down_cluster_only() {
        let g: GitRepository = object("GitRepository", serde_json::json!({ "url": "file:///etc", "interval": "1m" }));
        assert!(g.refused_by(&LOCKED).is_some_and(|m| m.contains("spec.url") && m.contains("--allow-file-urls")));
        assert_eq!(g.refused_by(&Tenancy::LOCAL), None);
        let g: GitRepository = object("GitRepository", serde_json::json!({ "url": "https://example.com/r.git", "interval": "1m" }));
        assert_eq!(g.refused_by(&LOCKED), None);
    }

    #[test]
    fn every_reference_of_a_kustomization_is_checked_for_its_namespace() {
        let k: Kustomization = object(
            "Kustomization",
            serde_json::json!({
                "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1m", "prune": true,
                "dependsOn": [ { "name": "infra", "namespace": "team-b" } ],
                "healthChecks": [ { "kind": "Deployment", "name": "db", "namespace": "team-a" } ],
            }),
        );
        let refused = k.refused_by(&LOCKED).expect("refused");
        assert!(refused.starts_with("spec.healthChecks[0]") && refused.contains("team-a"), "{refused}");
        let t: Terraform = object(
            "Terraform",
            serde_json::json!({ "sourceRef": { "kind": "GitRepository", "name": "repo", "namespace": "flux-system" }, "interval": "1m" }),
        );
        assert!(t.refused_by(&LOCKED).is_some_and(|m| m.starts_with("spec.sourceRef") && m.contains("flux-system")));
    }
}
