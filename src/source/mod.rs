//! Sources: fetch a GitRepository (or Bucket) revision into a content-addressed artifact.
