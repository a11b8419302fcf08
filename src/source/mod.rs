//! Sources: fetch a GitRepository revision into a content-addressed artifact.
//!
//! [`git`] resolves and fetches a revision (blocking: wrap it in `spawn_blocking`);
//! [`artifact`] turns a checked-out tree into a deterministic tar.gz and unpacks one safely.

pub mod artifact;
pub mod git;

/// The store every reconciler and runner reads artifacts from, so they share one layout.
pub use artifact::{ArtifactError, ArtifactStore, StoredArtifact, parse_digest, unpack_verified};
/// The Git source the GitRepository reconciler drives, with its auth and outcomes.
pub use git::{ArtifactOutcome, Checkout, FetchOutcome, GitAuth, GitError, GitReference, GitSource, Resolved};
pub mod reconcile;
