//! The Kustomization kind: build the source's manifests (with [`crate::kustomize`]), plan
//! them as a server-side dry run, apply in stages, keep an inventory and prune, check health
//! and drift. Decisions are pure functions: [`decide`] (what to do next), [`record`] (what
//! a dry run, an apply or a check means for status), [`inventory`] (what to prune, and
//! whether an object may be, and what deleting the Kustomization deletes), [`policy`] (what
//! Flux's marks on one object ask), [`managers`] (whose fields an apply takes over), [`diff`]
//! (what drifted), [`health`] and [`cel`] (what is healthy, by kind or by `healthCheckExprs`).
//! [`decrypt`] reads SOPS-encrypted files of a build (`spec.decryption`).
//! [`apply`] is the only part that talks to the cluster; [`reconcile`] is the thin sequence
//! of the kind's own steps after the reconcile core's.

pub mod apply;
pub mod build;
pub mod cel;
pub mod decide;
pub mod decrypt;
pub mod diff;
pub mod health;
pub mod inventory;
pub mod managers;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod record;

pub use reconcile::KIND;
