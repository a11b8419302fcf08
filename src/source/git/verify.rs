//! GitRepository `verify` (Flux's): the OpenPGP signatures of the commit checked out and of
//! the annotated tag its ref names, checked against the armored public keys of a Secret
//! before any artifact is made.
//!
//! What is verified is the object as git stores it: a commit without its `gpgsig` header
//! (libgit2 splits the two: [`Repository::extract_signature`]), a tag object up to the
//! signature git appends to its message. A signature counts when a key of the Secret made it:
//! a primary key, or a signing subkey whose binding to its primary key verifies. Key
//! expiry and revocation are not looked at: a key leaves the keyring by leaving the Secret.

use std::collections::BTreeMap;
use std::fmt;

use git2::{ErrorCode, ObjectType, Oid, Repository};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::api::{GitVerificationMode, reason};

const PUBLIC_KEY_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const PRIVATE_KEY_BEGIN: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";
const SIGNATURE_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
const SSH_SIGNATURE_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
/// Flux's suffix of the SSH public keys a `verify` Secret may hold.
const SSH_KEY_SUFFIX: &str = ".sshpub";

/// Why a revision is not verified. Messages name the Secret, the repository and the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "spec.verify.secretRef: Secret {secret} holds no OpenPGP public key{why}; put ASCII-armored public keys (gpg --export --armor) in it"
    )]
    NoKeys { secret: String, why: String },
    #[error("spec.verify.secretRef: Secret {secret} key {key:?} is not an ASCII-armored OpenPGP public key: {detail}")]
    BadKey { secret: String, key: String, detail: String },
    #[error(
        "spec.verify.mode {mode} verifies a tag object, and {reference} of {url} is not a tag; use mode HEAD or a tag ref (ref.tag, ref.semver, or ref.name refs/tags/...)"
    )]
    NotATag { mode: GitVerificationMode, reference: String, url: String },
    #[error(
        "tag {tag:?} of {url} is a lightweight tag, with no tag object to sign; spec.verify.mode {mode} needs an annotated tag signed with git tag -s"
    )]
    LightweightTag { tag: String, url: String, mode: GitVerificationMode },
    #[error("tag {tag:?} of {url} is not signed; spec.verify.mode {mode} needs a tag signed with git tag -s")]
    UnsignedTag { tag: String, url: String, mode: GitVerificationMode },
    #[error("commit {commit} of {url} is not signed; spec.verify.mode {mode} needs a commit signed with git commit -S")]
    UnsignedCommit { commit: String, url: String, mode: GitVerificationMode },
    #[error("the signature of {object} of {url} is not verified by any key of Secret {secret}: {detail}")]
    NotVerified { object: SignedObject, url: String, secret: String, detail: String },
    #[error("reading {object} of {url} to verify its signature: {detail}")]
    Read { object: String, url: String, detail: String },
}

impl VerifyError {
    /// The condition reason, Flux's for the same failure.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::NoKeys { .. } | VerifyError::BadKey { .. } => reason::VERIFICATION_ERROR,
            VerifyError::NotATag { .. } => reason::INVALID_VERIFICATION_MODE,
            VerifyError::LightweightTag { .. } | VerifyError::UnsignedTag { .. } => reason::INVALID_GIT_OBJECT,
            VerifyError::UnsignedCommit { .. } | VerifyError::NotVerified { object: SignedObject::Commit(_), .. } => {
                reason::INVALID_COMMIT_SIGNATURE
            }
            VerifyError::NotVerified { object: SignedObject::Tag(_), .. } => reason::INVALID_TAG_SIGNATURE,
            VerifyError::Read { .. } => reason::GIT_OPERATION_FAILED,
        }
    }
}

/// The Git object a signature is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedObject {
    Commit(String),
    Tag(String),
}

impl fmt::Display for SignedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedObject::Commit(sha) => write!(f, "commit {sha}"),
            SignedObject::Tag(name) => write!(f, "tag {name:?}"),
        }
    }
}

/// The key that made a signature: its primary key's fingerprint, and the subkey's when a
/// subkey signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub primary: String,
    pub subkey: Option<String>,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subkey {
            None => f.write_str(&self.primary),
            Some(subkey) => write!(f, "{} (subkey {subkey})", self.primary),
        }
    }
}

/// The public keys of a `verify` Secret.
#[derive(Clone)]
pub struct Keyring {
    /// `namespace/name` of the Secret, for messages.
    secret: String,
    keys: Vec<SignedPublicKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fingerprints: Vec<String> = self.keys.iter().map(|k| fingerprint(&k.primary_key)).collect();
        f.debug_struct("Keyring").field("secret", &self.secret).field("keys", &fingerprints).finish()
    }
}

impl Keyring {
    /// The keys of the Secret `secret` (`namespace/name`) whose text values are `data`: every
    /// value but Flux's SSH keys (`*.sshpub`) must hold one or more armored public keys.
    pub fn from_secret_data(secret: &str, data: &BTreeMap<String, String>) -> Result<Self, VerifyError> {
        let mut keys = Vec::new();
        let mut ssh = 0;
        for (name, value) in data {
            if name.ends_with(SSH_KEY_SUFFIX) {
                ssh += 1;
                continue;
            }
            let parsed =
                parse_keys(value).map_err(|detail| VerifyError::BadKey { secret: secret.to_string(), key: name.clone(), detail })?;
            keys.extend(parsed);
        }
        if keys.is_empty() {
            let why = if ssh > 0 {
                " (only SSH keys, *.sshpub, and driftless verifies OpenPGP signatures only)"
            } else if data.is_empty() {
                " (it has no data)"
            } else {
                ""
            };
            return Err(VerifyError::NoKeys { secret: secret.to_string(), why: why.to_string() });
        }
        Ok(Keyring { secret: secret.to_string(), keys })
    }

    /// `namespace/name` of the Secret the keys come from.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The primary keys' fingerprints.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fingerprint(&k.primary_key)).collect()
    }

    /// The key of this keyring that made the armored detached `signature` over `payload`, or
    /// why none did.
    pub fn verify(&self, signature: &str, payload: &[u8]) -> Result<Signer, String> {
        if signature.trim_start().starts_with(SSH_SIGNATURE_BEGIN) {
            return Err("it is an SSH signature, and driftless verifies OpenPGP signatures only".into());
        }
        let (signature, _) = DetachedSignature::from_string(signature).map_err(|e| format!("the signature cannot be read: {e}"))?;
        for key in &self.keys {
            if signature.verify(&key.primary_key, payload).is_ok() {
                return Ok(Signer { primary: fingerprint(&key.primary_key), subkey: None });
            }
            for sub in &key.public_subkeys {
                let signs = sub.signatures.iter().any(|s| s.key_flags().sign());
                if signs && signature.verify(sub, payload).is_ok() && sub.verify_bindings(&key.primary_key).is_ok() {
                    return Ok(Signer { primary: fingerprint(&key.primary_key), subkey: Some(fingerprint(sub)) });
                }
            }
        }
        let issuers = issuers(&signature);
        let held = self.keys.iter().any(|k| {
            std::iter::once(names(&k.primary_key))
                .chain(k.public_subkeys.iter().map(names))
                .any(|(fpr, id)| issuers.iter().any(|i| i.eq_ignore_ascii_case(&fpr) || i.eq_ignore_ascii_case(&id)))
        });
        let issuer = if issuers.is_empty() { "an unnamed key".to_string() } else { format!("key {}", issuers.join(" / ")) };
        Err(if held {
            format!("the signature by {issuer} does not match the object's content")
        } else {
            format!("it was made by {issuer}, which the Secret does not hold")
        })
    }
}

/// The armored public keys of one Secret value (one or more blocks, each one or more keys).
fn parse_keys(text: &str) -> Result<Vec<SignedPublicKey>, String> {
    if text.contains(PRIVATE_KEY_BEGIN) {
        return Err("it holds a private key; put only the public key (gpg --export --armor) in the Secret".into());
    }
    let starts: Vec<usize> = text.match_indices(PUBLIC_KEY_BEGIN).map(|(i, _)| i).collect();
    if starts.is_empty() {
        return Err(format!("it has no {PUBLIC_KEY_BEGIN} line"));
    }
    let mut keys = Vec::new();
    for (n, start) in starts.iter().enumerate() {
        let block = &text[*start..starts.get(n + 1).copied().unwrap_or(text.len())];
        let (parsed, _) = SignedPublicKey::from_string_many(block).map_err(|e| e.to_string())?;
        for key in parsed {
            keys.push(key.map_err(|e| e.to_string())?);
        }
    }
    if keys.is_empty() {
        return Err("its armored block holds no public key".into());
    }
    Ok(keys)
}

fn fingerprint(key: &impl KeyDetails) -> String {
    format!("{:X}", key.fingerprint())
}

/// A key's fingerprint and its (legacy) key id, upper-case hex.
fn names(key: &impl KeyDetails) -> (String, String) {
    (fingerprint(key), hex::encode_upper(key.legacy_key_id().as_ref()))
}

/// The fingerprints, else the key ids, a signature names as its issuer.
fn issuers(signature: &DetachedSignature) -> Vec<String> {
    let fingerprints: Vec<String> = signature.signature.issuer_fingerprint().into_iter().map(|f| format!("{f:X}")).collect();
    if !fingerprints.is_empty() {
        return fingerprints;
    }
    signature.signature.issuer_key_id().into_iter().map(|id| hex::encode_upper(id.as_ref())).collect()
}

/// A tag object's signed part and the signature git appended to its message: the last line
/// that opens a signature starts it, as git reads it. `None` for an unsigned tag.
pub fn split_tag(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let opens = |i: usize| {
        (i == 0 || raw[i - 1] == b'\n')
            && (raw[i..].starts_with(SIGNATURE_BEGIN.as_bytes()) || raw[i..].starts_with(SSH_SIGNATURE_BEGIN.as_bytes()))
    };
    let start = (0..raw.len()).rev().find(|&i| opens(i))?;
    Some(raw.split_at(start))
}

/// What `verify` asks of one GitRepository: the mode, and the keys that may sign.
#[derive(Debug, Clone)]
pub struct Verification {
    pub mode: GitVerificationMode,
    pub keyring: Keyring,
}

impl Verification {
    /// Verify what the mode asks of `commit`, checked out through `refname` (none for a bare
    /// commit); `reference` and `url` are for messages. Gives the `SourceVerified` message.
    pub(super) fn check(
        &self,
        repo: &Repository,
        refname: Option<&str>,
        reference: &str,
        commit: Oid,
        url: &str,
    ) -> Result<String, VerifyError> {
        let mut verified = Vec::new();
        if self.mode.verifies_tag() {
            let (refname, tag) = refname
                .and_then(|r| r.strip_prefix("refs/tags/").map(|t| (r, t)))
                .ok_or_else(|| VerifyError::NotATag { mode: self.mode, reference: reference.to_string(), url: url.to_string() })?;
            let read = |detail: String| VerifyError::Read { object: format!("tag {tag:?}"), url: url.to_string(), detail };
            let target = repo
                .find_reference(refname)
                .map_err(|e| read(e.message().to_string()))?
                .target()
                .ok_or_else(|| read(format!("{refname} is a symbolic reference")))?;
            let odb = repo.odb().map_err(|e| read(e.message().to_string()))?;
            let object = odb.read(target).map_err(|e| read(e.message().to_string()))?;
            if object.kind() != ObjectType::Tag {
                return Err(VerifyError::LightweightTag { tag: tag.to_string(), url: url.to_string(), mode: self.mode });
            }
            let unsigned = || VerifyError::UnsignedTag { tag: tag.to_string(), url: url.to_string(), mode: self.mode };
            let (payload, signature) = split_tag(object.data()).ok_or_else(unsigned)?;
            let signer = self.signer(SignedObject::Tag(tag.to_string()), signature, payload, url)?;
            verified.push(format!("tag {tag:?} with key {signer}"));
        }
        if self.mode.verifies_head() {
            let (signature, payload) = match repo.extract_signature(&commit, None) {
                Ok(parts) => parts,
                Err(e) if e.code() == ErrorCode::NotFound => {
                    return Err(VerifyError::UnsignedCommit { commit: commit.to_string(), url: url.to_string(), mode: self.mode });
                }
                Err(e) => {
                    return Err(VerifyError::Read {
                        object: format!("commit {commit}"),
                        url: url.to_string(),
                        detail: e.message().to_string(),
                    });
                }
            };
            let signer = self.signer(SignedObject::Commit(commit.to_string()), &signature, &payload, url)?;
            verified.push(format!("commit {commit} with key {signer}"));
        }
        Ok(format!("verified signature of {}", verified.join(" and ")))
    }

    fn signer(&self, object: SignedObject, signature: &[u8], payload: &[u8], url: &str) -> Result<Signer, VerifyError> {
        let not_verified = |detail: String| VerifyError::NotVerified {
            object: object.clone(),
            url: url.to_string(),
            secret: self.keyring.secret.clone(),
            detail,
        };
        let signature = std::str::from_utf8(signature).map_err(|_| not_verified("the signature is not armored text".into()))?;
        self.keyring.verify(signature, payload).map_err(not_verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = include_str!("../../../tests/fixtures/pgp/alice.pub.asc");
    const BOB: &str = include_str!("../../../tests/fixtures/pgp/bob.pub.asc");
    const PAYLOAD: &[u8] = include_bytes!("../../../tests/fixtures/pgp/payload");
    const BY_ALICE: &str = include_str!("../../../tests/fixtures/pgp/payload.alice.sig.asc");
    const BY_ALICE_SUBKEY: &str = include_str!("../../../tests/fixtures/pgp/payload.alice-subkey.sig.asc");
    const BY_BOB: &str = include_str!("../../../tests/fixtures/pgp/payload.bob.sig.asc");
    const ALICE_FPR: &str = "402A153BF36E97022AF87186B53A602F1D998C1A";
    const ALICE_SUBKEY_FPR: &str = "C3DE64EDC0698435557AB1334B67B9E79E2C0CCD";
    const BOB_FPR: &str = "A7C9D5C4E7E1877027730AF4D06167001D7329E6";

    fn keyring(pairs: &[(&str, &str)]) -> Result<Keyring, VerifyError> {
        let data = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Keyring::from_secret_data("default/keys", &data)
    }

    #[test]
    fn a_signature_by_a_key_of_the_secret_verifies_naming_the_key() {
        let keys = keyring(&[("alice.asc", ALICE), ("bob", BOB)]).expect("keys");
        assert_eq!(keys.fingerprints(), vec![ALICE_FPR, BOB_FPR]);
        assert_eq!(keys.verify(BY_ALICE, PAYLOAD), Ok(Signer { primary: ALICE_FPR.into(), subkey: None }));
        assert_eq!(keys.verify(BY_BOB, PAYLOAD).expect("rsa").to_string(), BOB_FPR);
        let by_subkey = keys.verify(BY_ALICE_SUBKEY, PAYLOAD).expect("a bound signing subkey");
        assert_eq!(by_subkey.to_string(), format!("{ALICE_FPR} (subkey {ALICE_SUBKEY_FPR})"));
    }

    #[test]
    fn several_keys_in_one_value_count_each() {
        let both = format!("{ALICE}\n{BOB}");
        let keys = keyring(&[("trusted.asc", &both)]).expect("keys");
        assert_eq!(keys.fingerprints(), vec![ALICE_FPR, BOB_FPR]);
        assert!(keys.verify(BY_BOB, PAYLOAD).is_ok());
    }

    #[test]
    fn a_signature_by_another_key_or_over_other_content_is_refused_saying_which() {
        let keys = keyring(&[("alice.asc", ALICE)]).expect("keys");
        let err = keys.verify(BY_BOB, PAYLOAD).expect_err("bob is not trusted");
        assert!(err.contains(BOB_FPR) && err.contains("does not hold"), "{err}");
        let mut tampered = PAYLOAD.to_vec();
        tampered.extend_from_slice(b"more\n");
        let err = keys.verify(BY_ALICE, &tampered).expect_err("tampered");
        assert!(err.contains(ALICE_FPR) && err.contains("does not match"), "{err}");
        let err = keys.verify("not a signature", PAYLOAD).expect_err("garbage");
        assert!(err.contains("cannot be read"), "{err}");
        let err = keys.verify("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n", PAYLOAD).expect_err("ssh");
        assert!(err.contains("SSH signature"), "{err}");
    }

    #[test]
    fn a_secret_without_a_usable_key_is_refused_naming_it() {
        let err = keyring(&[]).expect_err("empty");
        assert!(err.to_string().contains("Secret default/keys holds no OpenPGP public key (it has no data)"), "{err}");
        assert_eq!(err.reason(), reason::VERIFICATION_ERROR);
        let err = keyring(&[("id.sshpub", "ssh-ed25519 AAAA test")]).expect_err("ssh only");
        assert!(err.to_string().contains("only SSH keys"), "{err}");
        let err = keyring(&[("alice.asc", ALICE), ("notes", "hello")]).expect_err("not a key");
        assert!(err.to_string().contains("Secret default/keys key \"notes\" is not an ASCII-armored OpenPGP public key"), "{err}");
        let broken = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n";
        let err = keyring(&[("alice.asc", broken)]).expect_err("corrupt");
        assert!(matches!(err, VerifyError::BadKey { .. }), "{err}");
        let private = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n";
        let err = keyring(&[("key", private)]).expect_err("private");
        assert!(err.to_string().contains("private key"), "{err}");
        // Flux's SSH keys beside OpenPGP ones are left aside.
        assert!(keyring(&[("alice.asc", ALICE), ("id.sshpub", "ssh-ed25519 AAAA")]).is_ok());
    }

    #[test]
    fn a_tag_is_split_at_its_last_signature_line() {
        let tag = b"object 1\ntype commit\ntag v1\ntagger T <t@e> 0 +0000\n\nrelease\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        let (payload, signature) = split_tag(tag).expect("signed");
        assert!(payload.ends_with(b"release\n"));
        assert!(signature.starts_with(SIGNATURE_BEGIN.as_bytes()));
        assert_eq!(split_tag(b"object 1\ntype commit\ntag v1\n\nmessage with -----BEGIN PGP SIGNATURE----- inline\n"), None);
        assert_eq!(split_tag(b""), None);
    }

    #[test]
    fn failures_carry_fluxs_reasons() {
        let url = "file:///r".to_string();
        let mode = GitVerificationMode::Head;
        let commit = VerifyError::UnsignedCommit { commit: "c".into(), url: url.clone(), mode };
        assert_eq!(commit.reason(), reason::INVALID_COMMIT_SIGNATURE);
        let tag =
            VerifyError::NotVerified { object: SignedObject::Tag("v1".into()), url: url.clone(), secret: "s".into(), detail: "d".into() };
        assert_eq!(tag.reason(), reason::INVALID_TAG_SIGNATURE);
        assert_eq!(VerifyError::LightweightTag { tag: "v1".into(), url: url.clone(), mode }.reason(), reason::INVALID_GIT_OBJECT);
        assert_eq!(VerifyError::NotATag { mode, reference: "branch \"main\"".into(), url }.reason(), reason::INVALID_VERIFICATION_MODE);
    }
}
