//! A SOPS file made here with the same primitives (an age-encrypted data key, AES-GCM
//! values, the MAC) and read back; tests/sops_decrypt.rs checks the same against files the
//! real sops CLI wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sha2::{Digest, Sha512};

use super::*;

const LASTMODIFIED: &str = "2024-05-06T07:08:09Z";

struct Fixture {
    key: [u8; 32],
    identity: age::x25519::Identity,
    enc: String,
}

fn fixture() -> Fixture {
    let identity = age::x25519::Identity::generate();
    let key = [42u8; 32];
    let armored = age::encrypt_and_armor(&identity.to_public(), &key).unwrap();
    Fixture { key, identity, enc: armored }
}

fn keys(f: &Fixture) -> Keys {
    use age::secrecy::ExposeSecret;
    let mut k = Keys::default();
    k.add_age("test.agekey", &format!("# a comment\n{}\n", f.identity.to_string().expose_secret())).unwrap();
    k
}

/// `password: hunter22` encrypted, `port_unencrypted: 8080` plain, the MAC over both.
fn yaml_file(f: &Fixture, mac_values: &[&str]) -> String {
    let iv = [1u8; 32];
    let password = cipher::encrypt("hunter22", "str", &f.key, "data:password:", &iv);
    let mut h = Sha512::new();
    for v in mac_values {
        h.update(v.as_bytes());
    }
    let mac = cipher::encrypt(&hex::encode_upper(h.finalize()), "str", &f.key, LASTMODIFIED, &iv);
    let enc = f.enc.replace('\n', "\n            ");
    format!(
        "data:\n    password: {password}\n    port_unencrypted: 8080\nsops:\n    age:\n        - recipient: {}\n          enc: |\n            {enc}\n    lastmodified: \"{LASTMODIFIED}\"\n    mac: {mac}\n    unencrypted_suffix: _unencrypted\n    version: 3.13.3\n",
        f.identity.to_public()
    )
}

#[test]
fn a_file_decrypts_and_its_mac_is_checked() {
    let f = fixture();
    let text = yaml_file(&f, &["hunter22", "8080"]);
    assert_eq!(Format::of_encrypted(Path::new("s.yaml"), text.as_bytes()), Some(Format::Yaml));
    let out = decrypt("s.yaml", Format::Yaml, text.as_bytes(), &keys(&f)).unwrap();
    assert_eq!(String::from_utf8(out.bytes).unwrap(), "data:\n  password: hunter22\n  port_unencrypted: 8080\n");
    assert_eq!(out.plaintexts, vec!["hunter22".to_string()]);

    // The MAC was made over other values: tampered.
    let tampered = yaml_file(&f, &["hunter22", "8081"]);
    let err = decrypt("s.yaml", Format::Yaml, tampered.as_bytes(), &keys(&f)).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch { .. }), "{err}");
    assert!(err.to_string().contains("s.yaml: MAC mismatch"), "{err}");
    // A changed plain value changes the MAC too.
    let edited = text.replace("8080", "9090");
    assert!(matches!(decrypt("s.yaml", Format::Yaml, edited.as_bytes(), &keys(&f)), Err(SopsError::MacMismatch { .. })));
}

#[test]
fn a_wrong_key_names_the_file_and_recipients_not_values() {
    let f = fixture();
    let text = yaml_file(&f, &["hunter22", "8080"]);
    let other = fixture();
    let err = decrypt("apps/s.yaml", Format::Yaml, text.as_bytes(), &keys(&other)).unwrap_err().to_string();
    assert!(err.contains("apps/s.yaml") && err.contains(&f.identity.to_public().to_string()), "{err}");
    assert!(!err.contains("hunter22"), "{err}");
    let none = Keys::default();
    assert!(matches!(decrypt("s.yaml", Format::Yaml, text.as_bytes(), &none), Err(SopsError::NoMatchingKey { .. })));
}

#[test]
fn a_kms_only_file_names_the_kms() {
    let text = "a: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\nsops:\n    kms:\n        - arn: arn:aws:kms:eu-west-1:1:key/k\n          enc: x\n    lastmodified: \"2024-05-06T07:08:09Z\"\n    mac: ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]\n    version: 3.13.3\n";
    let err = decrypt("k.yaml", Format::Yaml, text.as_bytes(), &Keys::default()).unwrap_err();
    assert!(matches!(err, SopsError::UnsupportedKms { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("kms arn:aws:kms:eu-west-1:1:key/k") && err.contains("does not support"), "{err}");
}

#[test]
fn manifests_mix_plain_and_encrypted_documents() {
    let f = fixture();
    let secret = yaml_file(&f, &["hunter22", "8080"]);
    let stream = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: plain}}\n---\n{secret}");
    let out = decrypt_manifests("all.yaml", &stream, &keys(&f)).unwrap().unwrap();
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(text.contains("kind: ConfigMap") && text.contains("password: hunter22") && !text.contains("sops"), "{text}");
    assert!(decrypt_manifests("plain.yaml", "a: 1\n", &keys(&f)).unwrap().is_none());
}

#[test]
fn bad_keys_are_named() {
    let mut k = Keys::default();
    let err = k.add_age("x.agekey", "not a key\n").unwrap_err().to_string();
    assert!(err.contains("x.agekey"), "{err}");
    let err =
        k.add_pgp("x.asc", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nzz\n-----END PGP PRIVATE KEY BLOCK-----\n").unwrap_err().to_string();
    assert!(err.contains("x.asc"), "{err}");
    assert!(k.is_empty());
}
