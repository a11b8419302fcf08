//! driftless: one reconciler for Terraform modules and Kubernetes manifests kept in Git.
pub mod api;
/// State and plan backends: defined with the runner contract in `driftless-core`.
pub use driftless_core::backend;
pub mod cli;
pub mod context;
pub mod controller;
pub mod dispatch;
pub mod drift;
pub mod kustomization;
pub mod kustomize;
pub mod notify;
pub mod review;
pub mod source;
pub mod store;
pub mod terraform;
