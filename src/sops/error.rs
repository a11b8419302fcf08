//! What can go wrong reading a SOPS file. Every message names the file and, for keys, the
//! recipients the file was encrypted for; none quotes a value of the file, decrypted or not,
//! since these messages reach status conditions, events and logs.

/// A SOPS file that could not be decrypted, and why.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The file does not parse in its format (YAML, JSON, dotenv, INI).
    #[error("{file}: not a valid {format} file: {reason}")]
    Parse { file: String, format: &'static str, reason: String },

    /// The `sops` metadata is missing a field or holds a value of the wrong shape.
    #[error("{file}: invalid sops metadata: {reason}")]
    Metadata { file: String, reason: String },

    /// None of the keys given decrypts the data key, and the file has an age or PGP
    /// recipient: the message lists them so the right key can be added.
    #[error(
        "{file}: none of the decryption keys given matches the file's recipients ({recipients}); add the private key of one of them to the decryption Secret (*.agekey for age, *.asc for PGP)"
    )]
    NoMatchingKey { file: String, recipients: String },

    /// The file can only be decrypted by a cloud KMS or Vault, which driftless does not
    /// talk to.
    #[error(
        "{file}: encrypted only for {kms}, which driftless does not support yet; add an age or PGP recipient to the file (sops updatekeys) and its private key to the decryption Secret"
    )]
    UnsupportedKms { file: String, kms: String },

    /// Shamir secret sharing over several key groups.
    #[error(
        "{file}: the data key is split over {groups} key groups (shamir_threshold), which driftless does not support yet; re-encrypt the file with one key group"
    )]
    KeyGroups { file: String, groups: usize },

    /// A value is not `ENC[AES256_GCM,...]` where the metadata says values are encrypted,
    /// or its ciphertext does not authenticate with the data key and its path.
    #[error("{file}: the value at {path} cannot be decrypted: {reason}")]
    Value { file: String, path: String, reason: String },

    /// The MAC over the file's values does not match the one stored in the file: a value
    /// was changed, added or removed after encryption.
    #[error("{file}: MAC mismatch: the file's values were changed after it was encrypted (tampered or edited without sops); it is refused")]
    MacMismatch { file: String },

    /// The decrypted tree cannot be written in the file's format.
    #[error("{file}: cannot write the decrypted {format}: {reason}")]
    Emit { file: String, format: &'static str, reason: String },

    /// A decryption key (an `*.agekey` or `*.asc` entry) does not parse.
    #[error("decryption key {name}: {reason}")]
    Key { name: String, reason: String },
}
