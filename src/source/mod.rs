//! Sources: fetch a GitRepository revision, a Bucket listing or an OCI artifact into a
//! content-addressed artifact.
//!
//! [`git`] resolves and fetches a revision (blocking: wrap it in `spawn_blocking`);
//! [`bucket`] lists and downloads an S3-compatible bucket; [`artifact`] turns a tree into a
//! deterministic tar.gz and unpacks one safely; [`reconcile`] is the one reconciler of both.

pub use driftless_core::artifact;
pub mod access;
pub mod bucket;
pub mod git;
pub mod helm;
pub mod oci;
pub mod semver;

/// The Bucket source the Bucket reconciler drives.
pub use access::ArtifactAccess;
/// The store every reconciler and runner reads artifacts from, so they share one layout.
pub use artifact::{ArtifactError, ArtifactStore, StoredArtifact, parse_digest, unpack_verified};
pub use bucket::{BucketError, BucketSource, Listing};
/// The Git source the GitRepository reconciler drives, with its auth and outcomes.
pub use git::{
    ArtifactOutcome, Checkout, FetchOutcome, GitAuth, GitError, GitReference, GitSource, Include, Keyring, Proxy, Resolved, Verification,
    VerifyError,
};

pub mod server;
