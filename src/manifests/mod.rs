//! Kubernetes manifests: build (plain YAML or kustomize), server-side apply in stages,
//! inventory and prune, health, and field-level drift. Decisions (what to prune, what
//! drifted, what is healthy) are pure functions; `apply` is the only part that talks to
//! the API.

pub mod apply;
pub mod diff;
pub mod health;
pub mod inventory;
