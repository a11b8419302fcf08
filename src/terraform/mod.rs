//! The Terraform kind: a module at a path of a source artifact, planned and applied by runner
//! processes or pods. Its decisions are pure ([`decide`]: what to do next; [`record`]: what a
//! run's result means for status; [`outputs::select`]); [`reconcile`] is the thin sequence of
//! its own steps after the reconcile core's; [`health`] runs `spec.healthChecks` after an
//! apply.

mod decide;
mod decrypt;
pub mod health;
mod inputs;
pub mod outputs;
mod readable_plan;
mod reconcile;
mod record;
pub mod runlog;
pub mod runspec;
pub mod template;
pub mod unsaved;

pub use decide::{Next, Observed, auto_applies, decide};
pub use inputs::{
    InputError, inputs_digest, resolve_backend, resolve_options, resolve_variables, secret_suffix, state_name, terraform_options,
};
pub use reconcile::KIND;
pub use record::{Facts, Recorded, failure_reason, record, wait_for_approval};
