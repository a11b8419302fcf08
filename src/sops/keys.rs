//! The private keys a decryption may use, and how a file's data key is recovered with them:
//! sops encrypts the one 32-byte data key of a file to each recipient (an armored age file
//! per age recipient, an armored OpenPGP message per PGP key), so any one recipient's key
//! opens the whole file.

use std::io::Read;

use super::SopsError;
use super::metadata::Metadata;

/// age identities and OpenPGP secret keys. `Debug` shows how many, never the keys.
#[derive(Default)]
pub struct Keys {
    age: Vec<Box<dyn age::Identity + Send + Sync>>,
    pgp: Vec<pgp::composed::SignedSecretKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} age, {} PGP)", self.age.len(), self.pgp.len())
    }
}

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.pgp.is_empty()
    }

    /// Adds the identities of an age key file (`AGE-SECRET-KEY-1...` lines, `#` comments),
    /// as `age-keygen` writes it; `name` is where it came from, for messages.
    pub fn add_age(&mut self, name: &str, text: &str) -> Result<(), SopsError> {
        let bad = |reason: String| SopsError::Key { name: name.to_string(), reason };
        let file = age::IdentityFile::from_buffer(text.as_bytes()).map_err(|e| bad(format!("not an age identity file: {e}")))?;
        let identities = file.into_identities().map_err(|e| bad(format!("not an age identity: {e}")))?;
        if identities.is_empty() {
            return Err(bad("holds no age identity (AGE-SECRET-KEY-1...)".into()));
        }
        self.age.extend(identities);
        Ok(())
    }

    /// Adds the secret keys of an armored OpenPGP key block (`gpg --export-secret-keys
    /// --armor`), without a passphrase as Flux takes them.
    pub fn add_pgp(&mut self, name: &str, armored: &str) -> Result<(), SopsError> {
        use pgp::composed::Deserializable;
        let bad = |reason: String| SopsError::Key { name: name.to_string(), reason };
        let (keys, _) = pgp::composed::SignedSecretKey::from_armor_many(armored.as_bytes())
            .map_err(|e| bad(format!("not an armored OpenPGP private key: {e}")))?;
        let keys = keys.collect::<Result<Vec<_>, _>>().map_err(|e| bad(format!("not an armored OpenPGP private key: {e}")))?;
        if keys.is_empty() {
            return Err(bad("holds no OpenPGP private key".into()));
        }
        self.pgp.extend(keys);
        Ok(())
    }

    /// The data key of a file: from the first age or PGP recipient one of these keys opens.
    pub fn data_key(&self, file: &str, metadata: &Metadata) -> Result<[u8; 32], SopsError> {
        if metadata.groups.len() > 1 {
            return Err(SopsError::KeyGroups { file: file.to_string(), groups: metadata.groups.len() });
        }
        for group in &metadata.groups {
            for a in &group.age {
                if let Some(k) = self.open_age(&a.enc) {
                    return Ok(k);
                }
            }
            for p in &group.pgp {
                if let Some(k) = self.open_pgp(&p.enc) {
                    return Ok(k);
                }
            }
        }
        let recipients = metadata.recipients();
        if recipients.is_empty() {
            let kms = metadata.others();
            return Err(SopsError::UnsupportedKms {
                file: file.to_string(),
                kms: if kms.is_empty() { "no recipient at all".into() } else { kms.join(", ") },
            });
        }
        let mut listed = recipients.join(", ");
        let others = metadata.others();
        if !others.is_empty() {
            listed.push_str(&format!("; also {} (not supported yet)", others.join(", ")));
        }
        Err(SopsError::NoMatchingKey { file: file.to_string(), recipients: listed })
    }

    fn open_age(&self, enc: &str) -> Option<[u8; 32]> {
        if self.age.is_empty() {
            return None;
        }
        let reader = age::armor::ArmoredReader::new(enc.as_bytes());
        let decryptor = age::Decryptor::new(reader).ok()?;
        let mut out = Vec::new();
        decryptor.decrypt(self.age.iter().map(|i| i.as_ref() as &dyn age::Identity)).ok()?.read_to_end(&mut out).ok()?;
        out.try_into().ok()
    }

    fn open_pgp(&self, enc: &str) -> Option<[u8; 32]> {
        if self.pgp.is_empty() {
            return None;
        }
        let (message, _) = pgp::composed::Message::from_string(enc).ok()?;
        let empty = pgp::types::Password::empty();
        let mut plain = message.decrypt_with_keys(vec![&empty; self.pgp.len()], self.pgp.iter().collect()).ok()?;
        if plain.is_compressed() {
            plain = plain.decompress().ok()?;
        }
        plain.as_data_vec().ok()?.try_into().ok()
    }
}
