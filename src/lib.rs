//! driftless: one reconciler for Terraform modules and Kubernetes manifests kept in Git.
pub mod api;
pub mod backend;
pub mod cli;
pub mod context;
pub mod controller;
pub mod dispatch;
pub mod manifests;
pub mod review;
pub mod source;
pub mod store;
pub mod terraform;
