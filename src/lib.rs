//! driftless: one reconciler for Terraform modules and Kubernetes manifests kept in Git.
pub mod api;
pub mod source;
