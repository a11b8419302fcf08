//! SOPS decryption, natively: files encrypted by the `sops` CLI (Flux's `spec.decryption`)
//! read in every format sops writes (YAML, JSON, dotenv, INI, binary), their data key
//! opened with an age identity or an OpenPGP private key, every value decrypted and the MAC
//! over them verified, so a file changed after encryption is refused instead of applied.
//!
//! Written here because no maintained crate reads the SOPS format; the cryptography is the
//! `age`, `pgp` and `aes-gcm` crates', this module only walks the tree as sops does.
//! tests/sops_decrypt.rs compares it with the real `sops --decrypt`. Imports nothing else
//! of the crate. No message it makes holds a value of a file.

mod cipher;
mod dotenv;
mod error;
mod ini;
mod json;
mod keys;
mod metadata;
mod read;
mod tree;
mod walk;
mod yaml;

use std::path::Path;

pub use error::SopsError;
pub use keys::Keys;
use tree::{Item, Node};

/// The formats sops stores files in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    /// Any other file: its bytes as one encrypted `data` value in a JSON document.
    Binary,
}

impl Format {
    /// The format sops picks for a path: by its extension, binary for any other.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::Binary,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Dotenv => "dotenv",
            Format::Ini => "INI",
            Format::Binary => "binary",
        }
    }

    /// The format of `bytes` if it is a SOPS-encrypted file, else `None`: by the path's
    /// extension when it names a format, else by what the content holds (an env file a
    /// secretGenerator reads may be named anything; Flux reads `envs` as dotenv).
    pub fn of_encrypted(path: &Path, bytes: &[u8]) -> Option<Format> {
        let text = std::str::from_utf8(bytes).ok()?;
        if !text.contains("ENC[AES256_GCM,") {
            return None;
        }
        let by_path = Format::from_path(path);
        let candidates: &[Format] = match by_path {
            Format::Binary => &[Format::Dotenv, Format::Ini, Format::Json, Format::Yaml],
            _ => std::slice::from_ref(&by_path),
        };
        candidates
            .iter()
            .copied()
            .find(|f| has_metadata(*f, text))
            .map(|f| if f == Format::Json && by_path == Format::Binary && is_binary(text) { Format::Binary } else { f })
    }
}

/// Whether `text` carries sops metadata with a MAC in format `f`.
fn has_metadata(f: Format, text: &str) -> bool {
    let sops_map = |n: &Node| n.get("sops").is_some_and(|m| m.get("mac").is_some());
    match f {
        Format::Dotenv => text.lines().any(|l| l.starts_with("sops_mac=")),
        Format::Ini => text.lines().any(|l| l.trim() == "[sops]"),
        Format::Json | Format::Binary => read::json_document(text.as_bytes()).is_ok_and(|n| sops_map(&n)),
        Format::Yaml => read::yaml_documents(text).is_ok_and(|docs| docs.iter().any(sops_map)),
    }
}

/// A JSON document of sops's binary store: `data` and `sops` only.
fn is_binary(text: &str) -> bool {
    matches!(read::json_document(text.as_bytes()), Ok(Node::Map(items)) if items.len() == 2 && items.iter().all(|i| matches!(i, Item::Pair(k, _) if k == "data" || k == "sops")))
}

/// A decrypted file: its plaintext in its own format, and every value that was decrypted
/// (to scrub from messages).
pub struct Decrypted {
    pub bytes: Vec<u8>,
    pub plaintexts: Vec<String>,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decrypted({} bytes, {} values)", self.bytes.len(), self.plaintexts.len())
    }
}

/// Decrypts a whole file as `sops --decrypt` does (for YAML, every document with the
/// metadata of the first). `file` names it in messages.
pub fn decrypt(file: &str, format: Format, bytes: &[u8], keys: &Keys) -> Result<Decrypted, SopsError> {
    let parse_err = |reason: String| SopsError::Parse { file: file.to_string(), format: format.name(), reason };
    let text = std::str::from_utf8(bytes).map_err(|_| parse_err("not UTF-8".into()))?;
    let (mut branches, meta) = match format {
        Format::Yaml => {
            let mut docs = Vec::new();
            for d in read::yaml_documents(text).map_err(parse_err)? {
                match d {
                    Node::Map(items) => docs.push(items),
                    _ => return Err(parse_err("a document is not a mapping".into())),
                }
            }
            let meta = docs.first().and_then(|d| Node::Map(d.clone()).get("sops").cloned());
            for d in &mut docs {
                d.retain(|i| !matches!(i, Item::Pair(k, _) if k == "sops"));
            }
            (docs, meta)
        }
        Format::Json | Format::Binary => match read::json_document(bytes).map_err(parse_err)? {
            Node::Map(mut items) => {
                let meta = Node::Map(items.clone()).get("sops").cloned();
                items.retain(|i| !matches!(i, Item::Pair(k, _) if k == "sops"));
                (vec![items], meta)
            }
            _ => return Err(parse_err("not a JSON object".into())),
        },
        Format::Dotenv => {
            let (items, flat) = dotenv::parse(text).map_err(parse_err)?;
            (vec![items], (!flat.is_empty()).then(|| metadata::unflatten(flat)))
        }
        Format::Ini => {
            let (items, flat) = ini::parse(text).map_err(parse_err)?;
            (vec![items], (!flat.is_empty()).then(|| metadata::unflatten(flat)))
        }
    };
    let meta = meta.ok_or_else(|| SopsError::Metadata {
        file: file.to_string(),
        reason: "no sops metadata: the file is not encrypted by sops".into(),
    })?;
    let plaintexts = decrypt_branches(file, &mut branches, &meta, keys, format != Format::Yaml)?;
    let emit_err = |reason: String| SopsError::Emit { file: file.to_string(), format: format.name(), reason };
    let bytes = match format {
        Format::Yaml => yaml::emit(&branches).map_err(emit_err)?,
        Format::Json => json::emit(&branches[0]).into_bytes(),
        Format::Dotenv => dotenv::emit(&branches[0]).map_err(emit_err)?,
        Format::Ini => ini::emit(&branches[0]).map_err(emit_err)?,
        Format::Binary => match Node::Map(branches[0].clone()).get("data") {
            Some(Node::Str(s)) => s.clone().into_bytes(),
            Some(Node::Bytes(b)) => b.clone(),
            _ => return Err(emit_err("no string 'data' value (not a binary file)".into())),
        },
    };
    Ok(Decrypted { bytes, plaintexts })
}

/// Decrypts the documents of a YAML stream of manifests that carry sops metadata, each
/// document on its own (or, for documents one `sops` run encrypted together, sharing a
/// MAC, together), and keeps plain documents as they are: encrypted and plain manifests mix
/// in one file, as Flux decrypts each resource of a build. `None` when no document is
/// encrypted.
pub fn decrypt_manifests(file: &str, text: &str, keys: &Keys) -> Result<Option<Decrypted>, SopsError> {
    let parse_err = |reason: String| SopsError::Parse { file: file.to_string(), format: "YAML", reason };
    let docs = read::yaml_documents(text).map_err(parse_err)?;
    let mac_of = |d: &Node| d.get("sops").and_then(|m| m.get("mac")).and_then(Node::as_str).map(str::to_string);
    if !docs.iter().any(|d| mac_of(d).is_some()) {
        return Ok(None);
    }
    let mut plaintexts = Vec::new();
    let mut done = vec![false; docs.len()];
    let mut slots: Vec<Option<Vec<Item>>> = vec![None; docs.len()];
    for i in 0..docs.len() {
        if done[i] {
            continue;
        }
        let Some(mac) = mac_of(&docs[i]) else {
            done[i] = true;
            slots[i] = Some(match &docs[i] {
                Node::Map(items) => items.clone(),
                _ => return Err(parse_err("a document is not a mapping".into())),
            });
            continue;
        };
        let group: Vec<usize> = (i..docs.len()).filter(|&j| !done[j] && mac_of(&docs[j]).as_deref() == Some(mac.as_str())).collect();
        let meta = docs[i].get("sops").cloned().unwrap_or(Node::Null);
        let mut branches: Vec<Vec<Item>> = group
            .iter()
            .map(|&j| match &docs[j] {
                Node::Map(items) => items.iter().filter(|it| !matches!(it, Item::Pair(k, _) if k == "sops")).cloned().collect(),
                _ => Vec::new(),
            })
            .collect();
        plaintexts.extend(decrypt_branches(file, &mut branches, &meta, keys, false)?);
        for (&j, b) in group.iter().zip(branches) {
            done[j] = true;
            slots[j] = Some(b);
        }
    }
    let out: Vec<Vec<Item>> = slots.into_iter().flatten().collect();
    let bytes = yaml::emit(&out).map_err(|reason| SopsError::Emit { file: file.to_string(), format: "YAML", reason })?;
    Ok(Some(Decrypted { bytes, plaintexts }))
}

/// The shared core: metadata, data key, the walk, the MAC check.
fn decrypt_branches(
    file: &str,
    branches: &mut [Vec<Item>],
    meta: &Node,
    keys: &Keys,
    comments_known: bool,
) -> Result<Vec<String>, SopsError> {
    let meta = metadata::Metadata::parse(meta).map_err(|reason| SopsError::Metadata { file: file.to_string(), reason })?;
    let key = keys.data_key(file, &meta)?;
    let walked = walk::decrypt(branches, &meta, &key, comments_known).map_err(|e| SopsError::Value {
        file: file.to_string(),
        path: e.path,
        reason: e.reason,
    })?;
    match cipher::decrypt(&meta.mac, &key, &meta.last_modified) {
        Ok(Node::Str(stored)) if stored == walked.mac => Ok(walked.plaintexts),
        _ => Err(SopsError::MacMismatch { file: file.to_string() }),
    }
}

#[cfg(test)]
mod tests;
