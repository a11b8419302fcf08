//! The Terraform reconciler: plan ids, approval, drift and outputs, as pure decisions plus a
//! thin sequence of steps.

pub use driftless_core::ids::{PlanId, drift_id, revision_short};
mod decide;

pub use decide::{Next, Observed, approval, auto_applies, decide, drift_interval, drift_mode};
mod inputs;

pub use driftless_core::drift::{filter_drift, summarize as summarize_drift};
pub use inputs::{InputError, inputs_digest, resolve_backend, resolve_variables, secret_strings, state_name};
mod reconcile;

pub use reconcile::{KIND, reconcile};
