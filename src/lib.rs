//! driftless: one reconciler for Terraform modules and Kubernetes manifests kept in Git.
//!
//! Layers, bottom first; each imports only from those below it:
//! `driftless-core` (vocabulary, runner contract, backends) -> [`api`] (kinds, status model)
//! -> [`store`] (where objects and events live) -> [`kustomize`] (build) -> [`source`]
//! (fetchers, artifacts) -> [`dispatch`] (runs) -> [`reconcile`] (the one reconcile sequence,
//! approval, scheduling) -> the kinds ([`sources`], [`terraform`], [`kustomization`]) -> [`notify`], [`review`] ->
//! the drivers ([`controller`], [`cli`]). [`sops`] (SOPS decryption) imports nothing of the crate
//! and serves the kinds' builds. [`throttle`] (budgets of refused attempts) imports
//! nothing of the crate and serves the receiver and the review page; [`tls`] (system roots, TLS
//! error chains) imports nothing of the crate and serves every HTTPS client.
pub mod api;
/// State and plan backends: defined with the runner contract in `driftless-core`.
pub use driftless_core::backend;
pub mod cli;
pub mod controller;
pub mod dispatch;
pub mod kustomization;
pub mod kustomize;
pub mod notify;
pub mod reconcile;
pub mod review;
pub mod sops;
pub mod source;
pub mod sources;
pub mod store;
pub mod terraform;
pub mod throttle;
pub(crate) mod tls;
