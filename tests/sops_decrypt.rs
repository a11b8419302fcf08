//! driftless's SOPS decryption against the real sops CLI (`.tools/bin/sops`, built by
//! `scripts/build-go-tool.sh sops`): fixtures written here are encrypted by `sops encrypt` with an age
//! key the test makes (the `age` crate) and with a PGP key it makes (gpg in a private
//! GNUPGHOME), in every format and with every rule of what is encrypted; driftless must
//! decrypt each to what `sops decrypt` prints. JSON, dotenv, INI and binary are compared byte
//! for byte; YAML as parsed trees, since driftless writes YAML with its own quoting and
//! without comments. Tampered files, a wrong key and a KMS-only file are refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use age::secrecy::ExposeSecret;
use common::sops::Env;
use driftless::sops::{self, Format, Keys, SopsError};

const YAML: &str = "\
# a comment at the top
apiVersion: v1
kind: Secret
metadata:
  name: db
  labels:
    tier: backend
stringData:
  password: hunter22 # inline
  multi: |
    line one
    line two
  empty: \"\"
numbers:
  int: 42
  negative: -7
  float: 3.25
  whole_float: 2.0
  bool: true
  nothing: null
list:
  - one
  # between items
  - 2
  - {nested: value, deeper: [a, b]}
port_unencrypted: 8080
data_encrypted_suffix: x
quoted: 'true'
";

#[test]
fn yaml_in_every_rule_matches_sops() {
    let Some(env) = Env::new() else { return };
    let age = env.age();
    for options in [
        &[][..],
        &["--unencrypted-suffix", "_unencrypted"],
        &["--encrypted-suffix", "_suffix"],
        &["--unencrypted-regex", "^(apiVersion|kind|metadata)$"],
        &["--encrypted-regex", "^(stringData|data)$"],
        &["--encrypted-regex", "^(stringData|data)$", "--mac-only-encrypted"],
        &["--unencrypted-comment-regex", "inline"],
        &["--encrypted-comment-regex", "between"],
    ] {
        env.differential("secret.yaml", YAML, &age, options);
    }
}

#[test]
fn yaml_with_several_documents_matches_sops() {
    let Some(env) = Env::new() else { return };
    let two = "a: 1\nb: [x]\n---\nc: {d: e}\n";
    env.differential("two.yaml", two, &env.age(), &[]);
}

#[test]
fn json_matches_sops_byte_for_byte() {
    let Some(env) = Env::new() else { return };
    let json = r#"{"z": 1, "a": {"b": [1, 2.5, "<x>&", null, true, {}], "e": {}, "f": []}, "big": 1e300, "small": 1.5e-9, "u": "é\u2028\t\"", "n": -0.5, "i": 9007199254740993}"#;
    for options in [&[][..], &["--encrypted-regex", "^a$", "--mac-only-encrypted"], &["--unencrypted-regex", "^z$"]] {
        env.differential("doc.json", json, &env.age(), options);
    }
}

#[test]
fn dotenv_ini_and_binary_match_sops_byte_for_byte() {
    let Some(env) = Env::new() else { return };
    let age = env.age();
    let dotenv = "# database\nDB_USER=app\nDB_PASSWORD=s3cr3t with spaces=and equals\nMULTI=one\\ntwo\nEMPTY=\nPORT_unencrypted=5432\n";
    env.differential("app.env", dotenv, &age, &[]);
    env.differential("app.env", dotenv, &age, &["--encrypted-regex", "PASSWORD", "--mac-only-encrypted"]);
    let ini = "top=1\n; about the section\n[database]\n# the user\nuser = app\npassword = \"  padded \"\nurl = postgres://h:5432/db\n[empty]\n[cache]\nttl=60\n";
    env.differential("app.ini", ini, &age, &[]);
    env.differential("app.ini", ini, &age, &["--unencrypted-regex", "^user$"]);
    env.differential("blob.bin", "raw\u{0}bytes\nwith lines and ENC[ looking text\n", &age, &[]);
    env.differential("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", &age, &[]);
}

#[test]
fn pgp_keys_decrypt_as_sops_does() {
    let Some(mut env) = Env::new() else { return };
    let (fingerprint, _) = env.pgp();
    let pgp = ["--pgp", fingerprint.as_str()];
    env.differential("pgp.yaml", YAML, &pgp, &[]);
    env.differential("pgp.env", "A=1\nB=two\n", &pgp, &[]);
    // With the PGP key only (no age identity), and with only the age key of a file made
    // for both.
    let encrypted = env.encrypt("both.json", br#"{"k": "v"}"#, &["--pgp", &fingerprint, "--age", &env.age_recipient.clone()], &[]);
    let (_, armored) = env.pgp();
    let mut pgp_only = Keys::default();
    pgp_only.add_pgp("pgp.asc", &armored).unwrap();
    assert_eq!(sops::decrypt("both.json", Format::Json, &encrypted, &pgp_only).unwrap().bytes, b"{\n\t\"k\": \"v\"\n}\n");
    let mut age_only = Keys::default();
    age_only.add_age("age.agekey", &env.age_secret).unwrap();
    assert!(sops::decrypt("both.json", Format::Json, &encrypted, &age_only).is_ok());
}

/// The encrypted YAML of `YAML`, for the refusal tests.
fn encrypted_yaml(env: &Env) -> String {
    String::from_utf8(env.encrypt("s.yaml", YAML.as_bytes(), &env.age(), &[])).unwrap()
}

#[test]
fn tampered_files_are_refused() {
    let Some(env) = Env::new() else { return };
    let text = encrypted_yaml(&env);
    let keys = env.keys();
    // A plain value changed: the MAC no longer matches.
    let edited = text.replace("port_unencrypted: 8080", "port_unencrypted: 8081");
    let err = sops::decrypt("s.yaml", Format::Yaml, edited.as_bytes(), &keys).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch { .. }), "{err}");
    assert!(err.to_string().contains("s.yaml: MAC mismatch"), "{err}");
    // An encrypted value removed: the MAC no longer matches.
    let removed: String = text.lines().filter(|l| !l.trim_start().starts_with("negative:")).map(|l| format!("{l}\n")).collect();
    assert!(matches!(sops::decrypt("s.yaml", Format::Yaml, removed.as_bytes(), &keys), Err(SopsError::MacMismatch { .. })));
    // One byte of a ciphertext changed: the value no longer authenticates.
    let at = text.find("password: ENC[AES256_GCM,data:").unwrap() + "password: ENC[AES256_GCM,data:".len();
    let mut bytes = text.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let err = sops::decrypt("s.yaml", Format::Yaml, &bytes, &keys).unwrap_err();
    assert!(matches!(err, SopsError::Value { .. }), "{err}");
    assert!(err.to_string().contains("stringData.password") && err.to_string().contains("changed"), "{err}");
    // The real sops refuses both too.
    std::fs::write(env.dir.path().join("edited.yaml"), &edited).unwrap();
    let out = Command::new(&env.sops)
        .args(["decrypt", "edited.yaml"])
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("SOPS_AGE_KEY_FILE", env.dir.path().join("age.agekey"))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("MAC mismatch"));
}

#[test]
fn a_wrong_key_and_a_kms_only_file_are_named() {
    let Some(env) = Env::new() else { return };
    let text = encrypted_yaml(&env);
    let mut other = Keys::default();
    other.add_age("other.agekey", age::x25519::Identity::generate().to_string().expose_secret()).unwrap();
    let err = sops::decrypt("apps/s.yaml", Format::Yaml, text.as_bytes(), &other).unwrap_err().to_string();
    assert!(err.contains("apps/s.yaml") && err.contains(&env.age_recipient), "{err}");
    assert!(!err.contains("hunter22") && !err.contains("line one"), "{err}");

    // The same file as if encrypted for AWS KMS and GCP KMS only (metadata is not under the
    // MAC, so the values stay valid; only the recipients change).
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let sops_meta = doc["sops"].as_mapping_mut().unwrap();
    sops_meta.remove("age");
    sops_meta.insert(
        "kms".into(),
        serde_yaml::from_str(
            "[{arn: 'arn:aws:kms:eu-west-1:111122223333:key/k1', created_at: '2024-01-01T00:00:00Z', enc: AQID, aws_profile: ''}]",
        )
        .unwrap(),
    );
    sops_meta.insert(
        "gcp_kms".into(),
        serde_yaml::from_str(
            "[{resource_id: projects/p/locations/global/keyRings/r/cryptoKeys/k, created_at: '2024-01-01T00:00:00Z', enc: AQID}]",
        )
        .unwrap(),
    );
    let kms_only = serde_yaml::to_string(&doc).unwrap();
    let err = sops::decrypt("k.yaml", Format::Yaml, kms_only.as_bytes(), &env.keys()).unwrap_err();
    assert!(matches!(err, SopsError::UnsupportedKms { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("kms arn:aws:kms:eu-west-1:111122223333:key/k1") && err.contains("gcp_kms projects/p"), "{err}");
    assert!(err.contains("does not support") && err.contains("age or PGP"), "{err}");
}

mod property {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[ -~]{0,12}".prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            (-1000i32..1000, 1u8..100).prop_map(|(a, b)| Value::from(f64::from(a) + f64::from(b) / 128.0)),
            Just(Value::Null),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    proptest! {
        // Each case runs the sops binary once: a handful of cases.
        #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn random_trees_encrypted_by_sops_decrypt_to_the_input(entries in prop::collection::vec(("[a-z]{1,8}", tree()), 1..5)) {
            let Some(env) = Env::new() else { return Ok(()) };
            let input = Value::Object(entries.into_iter().collect::<Map<_, _>>());
            let text = serde_json::to_string(&input).unwrap();
            let encrypted = env.encrypt("tree.json", text.as_bytes(), &env.age(), &[]);
            let ours = sops::decrypt("tree.json", Format::Json, &encrypted, &env.keys()).unwrap();
            let back: Value = serde_json::from_slice(&ours.bytes).unwrap();
            prop_assert_eq!(back, input);
        }
    }
}

/// `driftless build` decrypts with `--decryption-key-file` or `SOPS_AGE_KEY_FILE`, and
/// refuses an encrypted file without a key instead of printing ciphertext.
#[test]
fn driftless_build_decrypts_with_a_key_file() {
    let Some(mut env) = Env::new() else { return };
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter22\n";
    let flux = ["--encrypted-regex", "^(data|stringData)$"];
    let encrypted = env.encrypt("secret.yaml", secret.as_bytes(), &env.age(), &flux);
    let (fingerprint, armored) = env.pgp();
    let env_file = env.encrypt("app.env", b"TOKEN=tok-123456\n", &["--pgp", &fingerprint], &[]);
    let app = env.dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("secret.yaml"), &encrypted).unwrap();
    std::fs::write(app.join("app.env"), &env_file).unwrap();
    std::fs::write(app.join("kustomization.yaml"), "resources: [secret.yaml]\nsecretGenerator:\n  - name: gen\n    envs: [app.env]\n")
        .unwrap();
    std::fs::write(env.dir.path().join("pgp.asc"), &armored).unwrap();
    let driftless = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_driftless"));
        c.arg("build").arg(&app).env_remove("SOPS_AGE_KEY_FILE");
        c
    };
    let out = driftless().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is SOPS-encrypted") && stderr.contains("--decryption-key-file"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ENC["), "no ciphertext printed");

    let out = driftless()
        .arg("--decryption-key-file")
        .arg(env.dir.path().join("pgp.asc"))
        .env("SOPS_AGE_KEY_FILE", env.dir.path().join("age.agekey"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_slice(&out.stdout).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let db = docs.iter().find(|d| d["metadata"]["name"] == "db").unwrap();
    assert_eq!(db["stringData"]["password"], "hunter22");
    assert!(db.get("sops").is_none());
    let generated = docs.iter().find(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("gen-"))).unwrap();
    assert_eq!(generated["data"]["TOKEN"], "dG9rLTEyMzQ1Ng==", "the env file was decrypted with the PGP key");

    // Only the age key: the PGP-encrypted env file names its recipient.
    let out = driftless().env("SOPS_AGE_KEY_FILE", env.dir.path().join("age.agekey")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("app.env") && stderr.contains(&fingerprint), "{stderr}");
    assert!(!stderr.contains("tok-123456"), "{stderr}");
}
