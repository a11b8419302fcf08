//! One encrypted value, `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>]`:
//! AES-256-GCM with the file's data key, the 32-byte IV sops uses (not GCM's usual 12), and
//! the value's path in the tree as additional data, so a value moved to another key does not
//! decrypt.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;

use super::tree::Node;

/// AES-256-GCM with sops's 32-byte nonce.
type SopsGcm = AesGcm<Aes256, U32>;

const PREFIX: &str = "ENC[AES256_GCM,data:";

/// Whether `value` is an encrypted sops value.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The parts of an encrypted value.
struct Parts<'a> {
    data: &'a str,
    iv: &'a str,
    tag: &'a str,
    kind: &'a str,
}

fn parts(value: &str) -> Option<Parts<'_>> {
    let rest = value.strip_prefix(PREFIX)?;
    let (data, rest) = rest.split_once(",iv:")?;
    let (iv, rest) = rest.split_once(",tag:")?;
    let (tag, rest) = rest.split_once(",type:")?;
    let kind = rest.strip_suffix(']')?;
    Some(Parts { data, iv, tag, kind })
}

/// Decrypts one value with the data key and `aad` (the key path joined by `:`, with a
/// trailing `:`), typed by its `type:`. An empty string stays empty (sops never encrypts
/// one). The error says what failed, never the plaintext.
pub fn decrypt(value: &str, key: &[u8; 32], aad: &str) -> Result<Node, String> {
    if value.is_empty() {
        return Ok(Node::Str(String::new()));
    }
    let p = parts(value).ok_or("not in sops's ENC[AES256_GCM,...] format")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = b64.decode(p.data).map_err(|e| format!("data is not base64: {e}"))?;
    let iv = b64.decode(p.iv).map_err(|e| format!("iv is not base64: {e}"))?;
    let tag = b64.decode(p.tag).map_err(|e| format!("tag is not base64: {e}"))?;
    if iv.len() != 32 {
        return Err(format!("iv is {} bytes, sops writes 32", iv.len()));
    }
    let cipher = SopsGcm::new_from_slice(key).map_err(|_| "the data key is not 32 bytes")?;
    let mut msg = data;
    msg.extend_from_slice(&tag);
    let plain = cipher
        .decrypt(Nonce::<U32>::from_slice(&iv), Payload { msg: &msg, aad: aad.as_bytes() })
        .map_err(|_| "authentication failed (wrong data key, or the value or its path was changed)")?;
    typed(plain, p.kind)
}

/// The plaintext as the value `type:` names, parsed as Go's strconv does.
fn typed(plain: Vec<u8>, kind: &str) -> Result<Node, String> {
    let text = || String::from_utf8(plain.clone()).map_err(|_| format!("a {kind} value is not UTF-8"));
    Ok(match kind {
        "str" => Node::Str(text()?),
        "int" => Node::Int(text()?.parse().map_err(|_| "an int value is not an integer")?),
        "float" => Node::Float(text()?.parse().map_err(|_| "a float value is not a number")?),
        "bool" => Node::Bool(match text()?.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err("a bool value is not a boolean".into()),
        }),
        "bytes" => Node::Bytes(plain),
        "time" => Node::Time(text()?),
        "comment" => Node::Comment(text()?),
        other => return Err(format!("unknown value type {other:?}")),
    })
}

/// Encrypts as sops does (tests only: driftless never writes SOPS files).
#[cfg(test)]
pub fn encrypt(plain: &str, kind: &str, key: &[u8; 32], aad: &str, iv: &[u8; 32]) -> String {
    let cipher = SopsGcm::new_from_slice(key).expect("32-byte key");
    let out = cipher.encrypt(Nonce::<U32>::from_slice(iv), Payload { msg: plain.as_bytes(), aad: aad.as_bytes() }).expect("encrypt");
    let (data, tag) = out.split_at(out.len() - 16);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]", b64.encode(data), b64.encode(iv), b64.encode(tag))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_round_trip_with_their_type_and_path() {
        let key = [7u8; 32];
        let iv = [9u8; 32];
        let enc = encrypt("42", "int", &key, "a:b:", &iv);
        assert_eq!(decrypt(&enc, &key, "a:b:").unwrap(), Node::Int(42));
        let err = decrypt(&enc, &key, "a:c:").unwrap_err();
        assert!(err.contains("authentication failed"), "{err}");
        assert_eq!(decrypt(&encrypt("True", "bool", &key, ":", &iv), &key, ":").unwrap(), Node::Bool(true));
        assert_eq!(decrypt("", &key, ":").unwrap(), Node::Str(String::new()));
        assert!(decrypt("ENC[AES256_GCM,data:x]", &key, ":").unwrap_err().contains("format"));
    }
}
