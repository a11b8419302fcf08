//! Every annotation, label, finalizer and Secret type driftless writes or reads, in one
//! place: a name is a contract with users, scripts and other tools (kubectl selectors,
//! Flux's objects), so it is spelled once.

/// Annotations a user (or the CLI and the review page for them) sets to steer a reconcile
/// without editing the spec in Git.
pub mod annotation {
    /// Approves the pending plan whose id is the value; avoids an approve-in-Git commit loop.
    pub const APPROVE_PLAN: &str = "driftless.dev/approve-plan";
    /// Any new value requests an immediate reconcile (as Flux's `reconcile.fluxcd.io/requestedAt`).
    pub const RECONCILE_REQUESTED_AT: &str = "driftless.dev/reconcile-requested-at";
    /// Acknowledges the drift whose id is the value: its alerts stop until it changes.
    pub const ACKNOWLEDGE_DRIFT: &str = "driftless.dev/acknowledge-drift";
    /// Who set the approval or acknowledgement (the CLI and the review page write it), for
    /// the object's history.
    pub const ACTED_BY: &str = "driftless.dev/acted-by";
    /// `disabled` on an applied object: never pruned.
    pub const PRUNE: &str = "driftless.dev/prune";
    /// Flux's annotation of the same meaning, honoured alike, so objects a Flux user kept
    /// from pruning stay after the move.
    pub const FLUX_PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";
    /// Flux's server-side apply policy of one applied object, honoured with Flux's meaning:
    /// `Override` (the default: fields kubectl set are taken over, so the source alone
    /// decides), `Merge` (fields other managers set are left to them), `IfNotPresent` (created
    /// when absent, never updated), `Ignore` (neither applied nor pruned).
    pub const FLUX_SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
    /// Flux's `enabled` on one object: recreated when an immutable field changed, as
    /// `spec.force` does for every object.
    pub const FLUX_FORCE: &str = "kustomize.toolkit.fluxcd.io/force";
    /// Flux's `disabled` on an object of the source or on its live object: neither applied
    /// nor pruned while it carries it.
    pub const FLUX_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
    /// Flux's request for a reconcile (`flux reconcile`, Flux's receivers, scripts), honoured
    /// as [`RECONCILE_REQUESTED_AT`] is.
    pub const FLUX_RECONCILE_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
    /// `<Kind>/<name>` of the driftless object that wrote a Secret (outputs, plan renderings).
    pub const OWNER: &str = "driftless.dev/owner";
    /// The plan id a stored plan rendering belongs to.
    pub const PLAN_ID: &str = "driftless.dev/plan-id";
    /// The whole lock info of a state lock Lease.
    pub const LOCK_INFO: &str = "driftless.dev/lock-info";
    /// Which chunk of a plan (or of a state too big for one Secret) a Secret holds.
    pub const CHUNK: &str = "driftless.dev/chunk";
}

/// Labels on the objects driftless creates, so they are found by selector.
pub mod label {
    /// Always `driftless` ([`MANAGED_BY_VALUE`]).
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "driftless";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    /// The kind of the driftless object a state, plan or runner pod belongs to.
    pub const KIND: &str = "driftless.dev/kind";
    /// Its name.
    pub const NAME: &str = "driftless.dev/name";
    /// The state (workspace plus suffix) a Secret holds.
    pub const STATE: &str = "driftless.dev/state";
    /// `chunk` on a Secret holding part of a state too big for one Secret.
    pub const STATE_PART: &str = "driftless.dev/state-part";
    /// The short digest of the compressed state a state chunk belongs to (its generation).
    pub const STATE_DIGEST: &str = "driftless.dev/state-digest";
    /// The plan id of a plan's Secrets.
    pub const PLAN: &str = "driftless.dev/plan";
    /// `meta` or `chunk` of a plan's Secrets.
    pub const PLAN_PART: &str = "driftless.dev/plan-part";
    /// Digest of a runner pod's RunSpec (adoption after a controller restart).
    pub const RUN_DIGEST: &str = "driftless.dev/run-digest";
    /// The Kustomization that applied an object (with [`KUSTOMIZATION_NAMESPACE`]).
    pub const KUSTOMIZATION_NAME: &str = "kustomize.driftless.dev/name";
    pub const KUSTOMIZATION_NAMESPACE: &str = "kustomize.driftless.dev/namespace";
}

/// The finalizer on every reconciled object: cleanup (destroy, prune, artifacts) runs before
/// the object goes.
pub const FINALIZER: &str = "driftless.dev/finalizer";

/// Secret types of the Secrets driftless writes.
pub mod secret_type {
    /// A runner's RunSpec.
    pub const RUN_SPEC: &str = "driftless.dev/run-spec";
    /// A runner's RunResult.
    pub const RUN_RESULT: &str = "driftless.dev/run-result";
    /// A Kustomization's readable plan.
    pub const PLAN: &str = "driftless.dev/plan";
}
