//! The bottom layer of driftless, shared by the controller and the runner: the vocabulary
//! every layer speaks (object keys, plan and drift ids, digests, names of annotations and
//! labels, drift entries), the runner contract (RunSpec in, RunResult out), the artifact
//! format, and the state and plan backends the runner writes through.
//!
//! Nothing here knows a reconciler, a store of objects or a command line: the runner links
//! this crate alone, and every module above it may use it.

pub mod artifact;
pub mod backend;
pub mod contract;
pub mod drift;
pub mod engine;
pub mod error;
pub mod ids;
pub mod key;
pub mod names;
pub mod plan;
pub mod scrub;
pub mod secret;

pub use ids::{PlanId, drift_id, revision_short, sha256_digest};
pub use key::ObjectKey;
