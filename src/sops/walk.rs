//! The tree walk of a decryption, as sops walks it: which values are encrypted (the
//! metadata's one rule over the key path, or over the comments above a value), each one
//! decrypted with its path as additional data, and the MAC, a SHA-512 over the plaintext
//! values in file order, compared with the one stored in the file.

use regex::Regex;
use sha2::{Digest, Sha512};

use super::cipher;
use super::metadata::{Metadata, Rule};
use super::tree::{Item, Node};

/// The rule of a file, with its regular expression compiled.
enum Compiled {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedCommentRegex(Regex),
    EncryptedCommentRegex(Regex),
}

/// What a walk found out besides the decrypted tree.
pub struct Walked {
    /// The MAC computed over the tree, upper-case hex as sops writes it.
    pub mac: String,
    /// Every value that was decrypted, as text, so messages can be scrubbed of them.
    pub plaintexts: Vec<String>,
}

/// Why a walk stopped: the path of the value and what failed.
pub struct WalkError {
    pub path: String,
    pub reason: String,
}

struct Walker<'a> {
    rule: Compiled,
    comments_known: bool,
    mac_only_encrypted: bool,
    key: &'a [u8; 32],
    hash: Sha512,
    plaintexts: Vec<String>,
}

/// Decrypts every encrypted value of `branches` (one per YAML document; one for the other
/// formats) in place, and returns the MAC over them. `comments_known`: the tree holds the
/// file's comments (dotenv, INI, JSON, which has none); YAML is read without them, so under
/// a comment rule a YAML value counts as encrypted when it is in the `ENC[...]` form, which
/// is what sops decided when it wrote the file (comments are not under the MAC either way,
/// so reading the decision from the value trusts nothing the comments did not already).
pub fn decrypt(branches: &mut [Vec<Item>], metadata: &Metadata, key: &[u8; 32], comments_known: bool) -> Result<Walked, WalkError> {
    let regex =
        |r: &str| Regex::new(r).map_err(|e| WalkError { path: "sops".into(), reason: format!("invalid regular expression {r:?}: {e}") });
    let rule = match &metadata.rule {
        Rule::UnencryptedSuffix(s) => Compiled::UnencryptedSuffix(s.clone()),
        Rule::EncryptedSuffix(s) => Compiled::EncryptedSuffix(s.clone()),
        Rule::UnencryptedRegex(r) => Compiled::UnencryptedRegex(regex(r)?),
        Rule::EncryptedRegex(r) => Compiled::EncryptedRegex(regex(r)?),
        Rule::UnencryptedCommentRegex(r) => Compiled::UnencryptedCommentRegex(regex(r)?),
        Rule::EncryptedCommentRegex(r) => Compiled::EncryptedCommentRegex(regex(r)?),
    };
    let mut hash = Sha512::new();
    if metadata.mac_only_encrypted {
        // sops starts such a MAC with SHA-256("sops"), so that it never equals the MAC of
        // the same file over all values.
        hash.update(sha2::Sha256::digest(b"sops"));
    }
    let mut w = Walker { rule, comments_known, mac_only_encrypted: metadata.mac_only_encrypted, key, hash, plaintexts: Vec::new() };
    for branch in branches.iter_mut() {
        w.branch(branch, &mut Vec::new(), &mut Vec::new())?;
    }
    Ok(Walked { mac: hex::encode_upper(w.hash.finalize()), plaintexts: w.plaintexts })
}

impl Walker<'_> {
    fn branch(&mut self, items: &mut [Item], path: &mut Vec<String>, comments: &mut Vec<Vec<String>>) -> Result<(), WalkError> {
        comments.push(Vec::new());
        for item in items.iter_mut() {
            match item {
                Item::Comment(c) => {
                    // A comment counts for the rules of what follows it, and may itself be
                    // encrypted (at the path of its mapping).
                    if let Some(last) = comments.last_mut() {
                        last.push(c.clone());
                    }
                    match self.leaf(Node::Comment(std::mem::take(c)), path, comments)? {
                        Node::Comment(s) | Node::Str(s) => *c = s,
                        _ => return Err(WalkError { path: shown(path), reason: "a comment decrypted to a value".into() }),
                    }
                }
                Item::Pair(key, value) => {
                    let is_comment = matches!(value, Node::Comment(_));
                    if let (Node::Comment(c), Some(last)) = (&*value, comments.last_mut()) {
                        last.push(c.clone());
                    }
                    path.push(key.clone());
                    let walked = self.value(value, path, comments);
                    path.pop();
                    walked?;
                    if !is_comment && let Some(last) = comments.last_mut() {
                        last.clear();
                    }
                }
            }
        }
        comments.pop();
        Ok(())
    }

    fn list(&mut self, values: &mut [Node], path: &mut Vec<String>, comments: &mut Vec<Vec<String>>) -> Result<(), WalkError> {
        comments.push(Vec::new());
        for v in values.iter_mut() {
            let is_comment = matches!(v, Node::Comment(_));
            if let (Node::Comment(c), Some(last)) = (&*v, comments.last_mut()) {
                last.push(c.clone());
            }
            self.value(v, path, comments)?;
            if !is_comment && let Some(last) = comments.last_mut() {
                last.clear();
            }
        }
        comments.pop();
        Ok(())
    }

    fn value(&mut self, v: &mut Node, path: &mut Vec<String>, comments: &mut Vec<Vec<String>>) -> Result<(), WalkError> {
        match v {
            Node::Map(items) => self.branch(items, path, comments),
            Node::List(values) => self.list(values, path, comments),
            Node::Null => Ok(()),
            leaf => {
                let taken = std::mem::replace(leaf, Node::Null);
                *leaf = self.leaf(taken, path, comments)?;
                Ok(())
            }
        }
    }

    fn leaf(&mut self, v: Node, path: &[String], comments: &[Vec<String>]) -> Result<Node, WalkError> {
        let is_comment = matches!(v, Node::Comment(_));
        let comment_rule = matches!(self.rule, Compiled::UnencryptedCommentRegex(_) | Compiled::EncryptedCommentRegex(_));
        let encrypted = if comment_rule && !self.comments_known {
            matches!(&v, Node::Str(s) if cipher::is_encrypted(s))
        } else {
            self.encrypted(path, comments, is_comment)
        };
        let out = if !encrypted {
            v
        } else {
            let aad = format!("{}:", path.join(":"));
            match v {
                // A comment that does not decrypt was written plain by an older sops.
                Node::Comment(c) => match cipher::decrypt(&c, self.key, &aad) {
                    Ok(d) => {
                        if let Node::Comment(text) | Node::Str(text) = &d {
                            self.plaintexts.push(text.clone());
                        }
                        d
                    }
                    Err(_) => Node::Comment(c),
                },
                Node::Str(s) => {
                    let d = cipher::decrypt(&s, self.key, &aad).map_err(|reason| WalkError { path: shown(path), reason })?;
                    if let Some(text) = plaintext(&d) {
                        self.plaintexts.push(text);
                    }
                    d
                }
                _ => {
                    return Err(WalkError {
                        path: shown(path),
                        reason: "expected an encrypted value (a string), found a plain one".into(),
                    });
                }
            }
        };
        if (!self.mac_only_encrypted || encrypted)
            && let Some(bytes) = out.mac_bytes()
        {
            self.hash.update(&bytes);
        }
        Ok(out)
    }

    /// sops's `shouldBeEncrypted`.
    fn encrypted(&self, path: &[String], comments: &[Vec<String>], is_comment: bool) -> bool {
        match &self.rule {
            Compiled::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Compiled::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Compiled::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Compiled::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
            Compiled::UnencryptedCommentRegex(r) => !comments.iter().flatten().any(|c| r.is_match(c)),
            Compiled::EncryptedCommentRegex(r) => {
                // The comment that matches is itself left plain: only the comments before
                // the last one count for a comment.
                let last = comments.len().saturating_sub(1);
                comments
                    .iter()
                    .enumerate()
                    .any(|(i, cs)| cs.iter().enumerate().any(|(j, c)| !(is_comment && i == last && j + 1 == cs.len()) && r.is_match(c)))
            }
        }
    }
}

/// A decrypted value as text, for scrubbing.
fn plaintext(n: &Node) -> Option<String> {
    match n {
        Node::Str(s) | Node::Time(s) => Some(s.clone()),
        Node::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        // Booleans are left out: scrubbing every "True" would mangle messages, hiding nothing.
        Node::Int(_) | Node::Float(_) => n.mac_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

/// A key path for messages (`data.password`); never a value.
fn shown(path: &[String]) -> String {
    if path.is_empty() { "the top level".into() } else { path.join(".") }
}
