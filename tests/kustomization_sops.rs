//! A Kustomization's `spec.decryption` on a real kube-apiserver, with files encrypted by the
//! real sops CLI: an encrypted Secret and an encrypted secretGenerator env file apply their
//! plain values beside a plain ConfigMap; a tampered file, a file for another key, a
//! KMS-only file and an encrypted file without `spec.decryption` are each refused with a
//! `DecryptionFailed` condition that says what is wrong, and nothing of those builds is
//! applied. No decrypted value reaches a status, an Event or the controller's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::git_repository;
use common::kube::{KubeWorld, condition_in, reason_of};
use common::sops::Env;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);
const PASSWORD: &str = "hunter2-from-sops";
const TOKEN: &str = "tok-9f8e7d6c5b4a";

fn kustomization(name: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: {path}\n  interval: 1h\n  prune: true\n{extra}"
    )
}

fn secret(name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n  password: {PASSWORD}\n  user: app\n")
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: plain\n")
}

fn failed(o: &Value) -> bool {
    reason_of(&condition_in(o, "Ready")) == "DecryptionFailed"
}

fn message(o: &Value) -> String {
    condition_in(o, "Ready")["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_manifests_and_generator_files_apply_decrypted_and_bad_ones_are_refused() {
    let Some(env) = Env::new() else { return };
    let Some(mut k) = KubeWorld::new("ks-sops").await else { return };
    let flux = ["--encrypted-regex", "^(data|stringData)$"];
    let enc = |name: &str, content: &str, recipient: &[&str], options: &[&str]| {
        String::from_utf8(env.encrypt(name, content.as_bytes(), recipient, options)).unwrap()
    };
    let age = env.age();
    let secret_yaml = enc("secret.yaml", &secret("db"), &age, &flux);
    let env_file = enc("app.env", &format!("API_TOKEN={TOKEN}\nMODE=prod\n"), &age, &[]);
    // The name is plain under this rule but covered by the MAC: changing one byte of it is
    // tampering.
    let tampered = enc("tampered.yaml", &secret("db-tampered"), &age, &flux).replace("name: db-tampered", "name: db-tamperee");
    let other = age::x25519::Identity::generate().to_public().to_string();
    let for_other = enc("other.yaml", &secret("db-other"), &["--age", &other], &flux);
    let mut kms: serde_yaml::Value = serde_yaml::from_str(&enc("kms.yaml", &secret("db-kms"), &age, &flux)).unwrap();
    let meta = kms["sops"].as_mapping_mut().unwrap();
    meta.remove("age");
    meta.insert("kms".into(), serde_yaml::from_str("[{arn: 'arn:aws:kms:eu-west-1:111122223333:key/k1', enc: AQID}]").unwrap());
    let kms = serde_yaml::to_string(&kms).unwrap();
    let generator = "resources: [secret.yaml, plain.yaml]\nsecretGenerator:\n  - name: gen\n    envs: [app.env]\n    options: {disableNameSuffixHash: true}\n";
    k.world.commit(
        &[
            ("app/kustomization.yaml", generator),
            ("app/secret.yaml", &secret_yaml),
            ("app/app.env", &env_file),
            ("app/plain.yaml", &config_map("plain")),
            ("tampered/secret.yaml", &tampered),
            ("tampered/plain.yaml", &config_map("plain-tampered")),
            ("other/secret.yaml", &for_other),
            ("kms/secret.yaml", &kms),
        ],
        "encrypted manifests",
    );
    k.apply(&git_repository("app", "main")).await;
    let key = base64::engine::general_purpose::STANDARD.encode(format!("{}\n", env.age_secret));
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: sops-keys\ndata:\n  identity.agekey: {key}\n")).await;
    let ns = format!("  targetNamespace: {}\n", k.ns.name);
    let decryption = format!("{ns}  decryption:\n    provider: sops\n    secretRef:\n      name: sops-keys\n");
    k.apply(&kustomization("app", "./app", &decryption)).await;
    k.apply(&kustomization("tampered", "./tampered", &decryption)).await;
    k.apply(&kustomization("other", "./other", &decryption)).await;
    k.apply(&kustomization("kms", "./kms", &decryption)).await;
    k.apply(&kustomization("undeclared", "./app", &format!("{ns}  namePrefix: undeclared-\n"))).await;
    k.apply(&kustomization(
        "nosecret",
        "./app",
        &format!("{ns}  namePrefix: nosecret-\n  decryption:\n    provider: sops\n    secretRef:\n      name: missing\n"),
    ))
    .await;
    let controller = k.start_controller(&[]);

    let o = k.wait_for("Kustomization", "app", "Ready", LONG, |o| condition_in(o, "Ready")["status"] == "True").await;
    let b64 = |v: &Value| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap();
    let db = k.get("Secret", "db").await;
    assert_eq!(b64(&db["data"]["password"]), PASSWORD, "the Secret's value is the plain one");
    assert_eq!(b64(&db["data"]["user"]), "app");
    assert!(db.get("sops").is_none_or(Value::is_null), "no sops metadata applied");
    let generated = k.get("Secret", "gen").await;
    assert_eq!(b64(&generated["data"]["API_TOKEN"]), TOKEN, "the generator read the decrypted env file");
    assert_eq!(b64(&generated["data"]["MODE"]), "prod");
    assert_eq!(k.get("ConfigMap", "plain").await["data"]["key"], "plain", "plain documents mix with encrypted ones");
    let mut statuses = vec![o];

    for (name, needles) in [
        ("tampered", &["tampered/secret.yaml", "MAC mismatch"][..]),
        ("other", &["other/secret.yaml", other.as_str(), "none of the decryption keys"][..]),
        ("kms", &["kms/secret.yaml", "kms arn:aws:kms:eu-west-1:111122223333:key/k1", "does not support"][..]),
        ("undeclared", &["secret.yaml", "spec.decryption is not set"][..]),
        ("nosecret", &["Secret", "missing", "not found"][..]),
    ] {
        let o = k.wait_for("Kustomization", name, "DecryptionFailed", LONG, failed).await;
        let m = message(&o);
        for n in needles {
            assert!(m.contains(n), "{name}: {n:?} not in {m}");
        }
        statuses.push(o);
    }
    assert!(k.get("ConfigMap", "plain-tampered").await.is_null(), "nothing of a tampered build is applied");
    assert!(k.get("Secret", "db-tamperee").await.is_null() && k.get("Secret", "db-tampered").await.is_null());
    assert!(k.get("Secret", "db-other").await.is_null() && k.get("Secret", "db-kms").await.is_null());
    assert!(k.get("ConfigMap", "undeclared-plain").await.is_null(), "ciphertext is never applied");

    // No decrypted value anywhere people read: statuses, Events, the controller's log.
    let events = serde_json::to_string(&k.events().await).unwrap();
    let everything = format!("{}\n{events}\n{}", serde_json::to_string(&statuses).unwrap(), k.controller_log(controller));
    for secret in [PASSWORD, TOKEN, env.age_secret.as_str()] {
        assert!(!everything.contains(secret), "a decrypted value leaked: {secret}");
    }
}
