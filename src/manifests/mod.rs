//! Kubernetes manifests: build (plain YAML or kustomize), server-side apply in stages,
//! inventory and prune, health, field-level drift, and the Kustomization reconciler.
//!
//! [`build`] turns a directory of an unpacked source artifact into the objects to apply, as
//! `kustomize build` (v5.5, as in `kubectl kustomize`) would for the kustomization.yaml fields
//! listed in docs/KUSTOMIZE.md, and refuses every other field by name. [`substitute`] runs
//! Flux's postBuild variable substitution on the result. Written here because no crate
//! builds kustomizations; tests/kustomize_build.rs compares the output with the real
//! `kubectl kustomize`, object for object.
//!
//! Decisions (what to prune, what drifted, what is healthy) are pure functions; `apply` is
//! the only part that talks to the API.

pub mod apply;
mod build;
pub mod diff;
mod error;
mod fieldspec;
mod generator;
pub mod health;
pub mod inventory;
mod kustomization;
mod loader;
mod nameref;
mod patch;
pub mod reconcile;
mod resource;
mod selector;
mod smp;
mod substitute;
mod transform;
mod yaml;

pub use build::{build, build_in};
pub use error::BuildError;
pub use reconcile::reconcile;
pub use substitute::{DISABLE_KEY, SubstituteError, substitute};
pub use yaml::to_yaml_stream;
