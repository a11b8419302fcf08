//! The reconcile core: the one sequence every reconciled kind runs ([`sequence`]), the one
//! approval rule ([`approval`]), the one drift transition ([`drift`]), the one scheduler
//! ([`schedule`]), and what a reconcile shares ([`Context`]). A kind is a module that
//! implements [`Reconcile`] plus its arm in [`with_reconciled_kind!`](crate::with_reconciled_kind);
//! [`reconcile`] is the registry every driver calls.

pub mod approval;
mod context;
pub mod decryption;
pub mod drift;
mod references;
pub mod schedule;
mod sequence;

pub use context::{Clusters, Context, NoClient};
pub use references::{source_artifact, unready_dependency};
pub use schedule::{Refs, Requeue, Schedule};
pub use sequence::{Done, Reconcile, Run, approver_name, reconcile as object};

use crate::api::Kind;
use crate::dispatch::RunnerDispatch;
use crate::store::ObjectStore;

/// Why a reconcile could not even record its outcome (the object store failed). Everything
/// else a reconcile meets becomes a condition on the object, not an error.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reconciles the `kind` object `namespace/name` now, with that kind's steps. `forced`: a
/// person asked for a complete reconcile (it also reconciles a suspended object).
pub async fn reconcile<S: ObjectStore, D: RunnerDispatch>(
    ctx: &Context<S, D>,
    kind: Kind,
    namespace: &str,
    name: &str,
    forced: bool,
) -> Result<Requeue, ReconcileError> {
    crate::with_reconciled_kind!(kind, K => sequence::reconcile::<K, S, D>(ctx, namespace, name, forced).await, _ => Ok(Requeue::GONE))
}
