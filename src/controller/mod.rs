//! The in-cluster controller: kube-runtime wiring of the reconcilers, leader election,
//! metrics and probes. The reconcilers themselves live with their kinds and do not know
//! whether they run here or on a local store.

pub mod leader;
pub mod metrics;
pub mod probes;
mod run;

pub use run::{ControllerError, ControllerOptions, run};
