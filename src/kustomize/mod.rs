//! kustomize build: turns a directory of an unpacked source artifact into the objects to
//! apply, as `kustomize build` (v5.5, as in `kubectl kustomize`) would for the
//! kustomization.yaml fields listed in docs/KUSTOMIZE.md (components and replacements
//! included), refusing every other field by name;
//! and Flux's postBuild variable substitution ([`substitute`]) on the result.
//!
//! Written here because no crate builds kustomizations; tests/kustomize_build.rs compares the
//! output with the real `kubectl kustomize`, object for object. Pure over files: this module
//! imports nothing else of the crate, and reads files only inside the root it is given.

mod build;
mod error;
mod fieldpath;
mod fieldspec;
mod generator;
mod kustomization;
mod loader;
mod nameref;
mod patch;
mod replacement;
mod resource;
mod selector;
mod smp;
mod substitute;
mod transform;
mod yaml;

pub use build::{MAX_DEPTH, build, build_filtered, build_in, build_in_with_components};
pub use error::BuildError;
pub use loader::ReadFilter;
pub use substitute::{DISABLE_KEY, SubstituteError, substitute};
pub use yaml::to_yaml_stream;
