//! The Kustomization kind: build the source's manifests (with [`crate::kustomize`]), plan
//! them as a server-side dry run, apply in stages, keep an inventory and prune, check health
//! and drift. Decisions (what to do next, what a result means for status, what to prune,
//! what drifted, what is healthy) are pure functions; [`apply`] is the only part that talks
//! to the cluster.

pub mod apply;
pub mod diff;
pub mod health;
pub mod inventory;
pub mod reconcile;

pub use reconcile::reconcile;
