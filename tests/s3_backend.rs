//! The S3 backend against a real S3-compatible server (moto, started on 127.0.0.1): state
//! and plans through real terraform, lock expiry and `driftless unlock`, a tampered plan,
//! wrong credentials, a missing bucket, and a server restart mid-run (lock races are in
//! tests/backend_contract.rs, the contract every backend keeps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::s3::{self, ACCESS_KEY, Moto, Proxy, SECRET_KEY};
use common::{MODULE, World, objects};
use driftless::backend::{BackendError, LockInfo, PlanMeta, PlanStore, S3Backend, StateKey, StateStore, sha256_digest};
use driftless::dispatch::ObjectKey;

const BUCKET: &str = "tfstate";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

/// The Secret and the `backendConfig` block of a Terraform keeping state at `endpoint`.
fn s3_objects(name: &str, approve: &str, endpoint: &str, bucket: &str, secret: (&str, &str)) -> String {
    let spec = format!(
        "  backendConfig:\n    s3:\n      bucket: {bucket}\n      keyPrefix: teams/a\n      region: us-east-1\n      endpoint: {endpoint}\n      forcePathStyle: true\n      secretRef:\n        name: s3-creds\n"
    );
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-creds\nstringData:\n  accessKeyID: {}\n  secretAccessKey: {}\n---\n{}",
        secret.0,
        secret.1,
        objects(name, "./", approve, &spec)
    )
}

fn object(name: &str) -> ObjectKey {
    ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: name.into() }
}

fn state_key(name: &str) -> StateKey {
    StateKey { object: object(name), state_name: "default".into(), secret_suffix: None }
}

fn lock_info(id: &str) -> LockInfo {
    LockInfo { id: id.into(), who: format!("runner-{id}"), created: jiff::Timestamp::now().to_string(), ..Default::default() }
}

struct Setup {
    w: World,
    moto: Moto,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Option<Setup> {
    let w = World::new()?;
    let moto = Moto::start()?;
    let rt = rt();
    rt.block_on(async { s3::create_bucket(&s3::client(&moto.endpoint()).await, BUCKET).await });
    Some(Setup { w, moto, rt })
}

#[test]
fn state_and_plans_round_trip_through_s3_with_real_terraform() {
    let Some(Setup { w, moto, rt }) = setup() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&s3_objects("app", "", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();

    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    let tf = w.get("terraform", "app");
    let stored_in = tf["status"]["plan"]["storedIn"].as_str().unwrap().to_string();
    assert_eq!(stored_in, format!("s3://{BUCKET}/teams/a/Terraform/default/app/plans/{plan}.tfplan"));
    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("drifttest_file.main") && shown.contains("2 to add"), "the rendering is read from S3: {shown}");

    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    assert_eq!(w.ready_reason("app"), "Succeeded");

    let c = rt.block_on(s3::client(&moto.endpoint()));
    let base = "teams/a/Terraform/default/app";
    let state = rt.block_on(s3::get(&c, BUCKET, &format!("{base}/default.tfstate"))).expect("state in S3");
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    let types: Vec<&str> = state["resources"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"drifttest_file") && types.contains(&"null_resource"), "{types:?}");
    let all = rt.block_on(s3::keys(&c, BUCKET, base));
    assert!(!all.iter().any(|k| k.ends_with(".lock")), "no lock is left behind: {all:?}");
    assert!(all.iter().any(|k| k.starts_with(&format!("{base}/history/default/"))), "every state write is kept: {all:?}");
    assert!(all.contains(&format!("{base}/plans/{plan}.tfplan")) && all.contains(&format!("{base}/plans/{plan}.json")), "{all:?}");
    assert!(!w.state_dir("app").exists(), "nothing went to the local backend");

    // The credentials are nowhere in the store but their Secret.
    let text = w.store_text_outside_secrets_and_state();
    assert!(!text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY));

    // Applied state is read back: a forced reconcile finds no changes and no drift.
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert!(w.pending_plan("app").is_none());
}

// Lock races are the contract every backend keeps: tests/backend_contract.rs.

#[test]
fn an_expired_lock_is_taken_over_and_driftless_unlock_breaks_a_stuck_one() {
    let Some(Setup { w, moto, rt }) = setup() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&s3_objects("app", "auto", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();
    let location = moto.location(BUCKET, "teams/a");
    let key = state_key("app");

    // A runner that died holding a lock with a short lifetime.
    rt.block_on(async {
        let dead = S3Backend::connect(&location, Duration::from_secs(1)).await;
        dead.lock(&key, &lock_info("dead")).await.unwrap();
        let live = S3Backend::connect(&location, Duration::from_secs(600)).await;
        assert!(matches!(live.lock(&key, &lock_info("early")).await, Err(BackendError::Locked { .. })), "not before it expires");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        live.lock(&key, &lock_info("live")).await.expect("an expired lock is taken over");
        assert_eq!(live.lock_info(&key).await.unwrap().unwrap().id, "live");
    });

    // A live lock stops the reconcile and shows its holder.
    let run = w.driftless(&["run", "--once"]).fails();
    assert!(run.all().contains("StateLocked"), "{}", run.all());
    assert_eq!(w.ready_reason("app"), "StateLocked");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["lock"]["holder"], "runner-live");
    assert!(!w.managed("main.txt").exists());

    // Breaking a live lock needs confirmation; an expired one is broken at once.
    let refused = w.driftless(&["unlock", "app"]).fails();
    assert!(refused.all().contains("expires at") && refused.all().contains("--yes"), "{}", refused.all());
    rt.block_on(async {
        let b = S3Backend::connect(&location, Duration::from_secs(600)).await;
        b.force_unlock(&key).await.unwrap();
        S3Backend::connect(&location, Duration::from_secs(1)).await.lock(&key, &lock_info("stale")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    });
    let broken = w.driftless(&["unlock", "app"]).ok();
    assert!(broken.stdout.contains("expired") && broken.stdout.contains("lock stale broken"), "{}", broken.stdout);
    assert!(w.condition("app", "StateLocked").is_null());

    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    let left = rt.block_on(async { S3Backend::connect(&location, Duration::from_secs(60)).await.lock_info(&key).await.unwrap() });
    assert!(left.is_none(), "the run released its lock: {left:?}");
}

#[test]
fn a_tampered_plan_is_refused_and_nothing_is_applied() {
    let Some(Setup { w, moto, rt }) = setup() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&s3_objects("app", "", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").unwrap();

    // Someone with write access to the bucket swaps the saved plan.
    let c = rt.block_on(s3::client(&moto.endpoint()));
    let plan_key = format!("teams/a/Terraform/default/app/plans/{plan}.tfplan");
    let original = rt.block_on(s3::get(&c, BUCKET, &plan_key)).unwrap();
    let mut tampered = original.clone();
    tampered.truncate(original.len() / 2);
    rt.block_on(s3::put(&c, BUCKET, &plan_key, &tampered));

    w.driftless(&["approve", "app", &plan]).ok();
    let run = w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "PlanIntegrityFailed", "{}", run.all());
    let message = w.condition("app", "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains("corrupt") && message.contains(&sha256_digest(&original)), "{message}");
    assert!(!w.managed("main.txt").exists(), "a tampered plan is never applied");
    let state = rt.block_on(s3::get(&c, BUCKET, "teams/a/Terraform/default/app/default.tfstate"));
    assert!(state.is_none_or(|s| !String::from_utf8_lossy(&s).contains("drifttest_file")), "nothing applied");

    // The backend refuses the same at its own level.
    rt.block_on(async {
        let b = S3Backend::connect(&moto.location(BUCKET, "teams/a"), Duration::from_secs(60)).await;
        assert!(matches!(b.get_plan(&object("app"), &plan).await, Err(BackendError::PlanDigestMismatch { .. })));
        let meta = PlanMeta {
            id: "plan-x".into(),
            digest: sha256_digest(b"real plan"),
            created_at: "t".into(),
            source_revision: "r".into(),
            rendering: String::new(),
            state_address: None,
            engine: None,
        };
        b.put_plan(&object("app"), &meta, b"real plan").await.unwrap();
        assert_eq!(b.get_plan(&object("app"), "plan-x").await.unwrap().1, b"real plan");
    });
}

#[test]
fn wrong_credentials_and_a_missing_bucket_get_clear_messages() {
    let Some(Setup { w, moto, .. }) = setup() else { return };
    let Some(strict) = Moto::with_auth() else { return };
    w.commit(&[("main.tf", MODULE)], "module");

    w.apply(&s3_objects("nobucket", "auto", &moto.endpoint(), "no-such-bucket", (ACCESS_KEY, SECRET_KEY))).ok();
    w.reconcile("nobucket").fails();
    assert_eq!(w.ready_reason("nobucket"), "BackendFailed");
    let m = w.condition("nobucket", "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("bucket no-such-bucket does not exist") && m.contains(&moto.endpoint()), "{m}");

    w.apply(&s3_objects("badcreds", "auto", &strict.endpoint(), BUCKET, ("AKIAWRONGKEY", "wrong-secret-value"))).ok();
    w.reconcile("badcreds").fails();
    assert_eq!(w.ready_reason("badcreds"), "BackendFailed");
    let m = w.condition("badcreds", "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("refused the credentials") && m.contains("secretRef"), "{m}");
    assert!(!m.contains("wrong-secret-value"), "{m}");

    // A Secret without the keys is reported before anything runs.
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-creds\nstringData:\n  user: x\n").ok();
    w.reconcile("badcreds").fails();
    let m = w.condition("badcreds", "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.backendConfig.s3.secretRef") && m.contains("accessKeyID"), "{m}");

    // An endpoint nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    w.apply(&s3_objects("down", "auto", &format!("http://127.0.0.1:{closed}"), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();
    w.reconcile("down").fails();
    let m = w.condition("down", "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("cannot reach the backend") && m.contains(&closed.to_string()), "{m}");
    assert!(!w.store_text_outside_secrets_and_state().contains("wrong-secret-value"));
}

/// A module whose apply waits (bounded) until the test creates `__MANAGED__/go`, so the test
/// can restart the S3 server while terraform holds the lock.
const WAITING_MODULE: &str = r#"
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

variable "content" {
  type = string
}

variable "target_dir" {
  type = string
}

resource "null_resource" "slow" {
  triggers = {
    content = var.content
  }
  provisioner "local-exec" {
    command = "touch ${var.target_dir}/started; i=0; while [ ! -f ${var.target_dir}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"
  }
}

resource "null_resource" "after" {
  depends_on = [null_resource.slow]
}
"#;

#[test]
fn a_restart_of_the_s3_server_mid_run_is_retried_and_nothing_is_lost() {
    let Some(Setup { w, mut moto, rt }) = setup() else { return };
    let proxy = Proxy::start(moto.port);
    w.commit(&[("main.tf", WAITING_MODULE)], "module");
    w.apply(&s3_objects("app", "auto", &proxy.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();

    // Plan and apply in one run; while terraform applies (holding the lock), the server
    // goes away and comes back as a new process.
    let run = std::thread::scope(|scope| {
        let handle = scope.spawn(|| w.reconcile("app"));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !w.managed("started").exists() {
            assert!(std::time::Instant::now() < deadline, "terraform never started applying");
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy.set_down(true);
        moto.restart();
        std::fs::write(w.managed("go"), "").unwrap();
        // Terraform finishes and writes its state while the server is still unreachable:
        // the write is retried until it comes back.
        std::thread::sleep(Duration::from_secs(2));
        proxy.set_down(false);
        handle.join().unwrap()
    });
    assert_eq!(run.status, 0, "{}", run.all());
    assert_eq!(w.ready_reason("app"), "Succeeded");

    let c = rt.block_on(s3::client(&moto.endpoint()));
    let state = rt.block_on(s3::get(&c, BUCKET, "teams/a/Terraform/default/app/default.tfstate")).expect("state survived the restart");
    let text = String::from_utf8_lossy(&state);
    assert!(text.contains("\"slow\"") && text.contains("\"after\""), "every applied resource is in the state: {text}");
    assert!(rt.block_on(s3::keys(&c, BUCKET, "teams/a/")).iter().all(|k| !k.ends_with(".lock")), "the lock was released");

    // Down when a run starts: a clear failure, then the next reconcile proceeds.
    std::fs::write(w.managed("go"), "").unwrap();
    proxy.set_down(true);
    w.apply(&s3_objects("app", "auto", &proxy.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY)).replace("value: hello", "value: again")).ok();
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "BackendFailed");
    assert!(w.condition("app", "Ready")["message"].as_str().unwrap().contains("cannot reach the backend"));
    proxy.set_down(false);
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    let state = rt.block_on(s3::get(&c, BUCKET, "teams/a/Terraform/default/app/default.tfstate")).unwrap();
    assert!(String::from_utf8_lossy(&state).contains("again"), "the retried run applied");
}

#[test]
fn a_state_without_its_history_copy_is_kept_before_it_is_overwritten() {
    let Some(moto) = Moto::start() else { return };
    let rt = rt();
    rt.block_on(async {
        let c = s3::client(&moto.endpoint()).await;
        s3::create_bucket(&c, BUCKET).await;
        let key = state_key("app");
        let base = "h/Terraform/default/app";
        // A runner that died between writing the state and copying it to history.
        s3::put(&c, BUCKET, &format!("{base}/default.tfstate"), b"{\"serial\": 4, \"from\": \"the dead runner\"}").await;

        let b = S3Backend::connect(&moto.location(BUCKET, "h"), Duration::from_secs(600)).await;
        b.lock(&key, &lock_info("next")).await.unwrap();
        b.put(&key, b"{\"serial\": 5}", Some("next")).await.unwrap();
        b.put(&key, b"{\"serial\": 6}", Some("next")).await.unwrap();
        b.flush_history().await.unwrap();
        b.unlock(&key, "next").await.unwrap();

        let history = s3::keys(&c, BUCKET, &format!("{base}/history/default/")).await;
        let mut contents = Vec::new();
        for k in &history {
            contents.push(String::from_utf8(s3::get(&c, BUCKET, k).await.unwrap()).unwrap());
        }
        contents.sort();
        assert_eq!(contents, vec!["{\"serial\": 4, \"from\": \"the dead runner\"}", "{\"serial\": 5}", "{\"serial\": 6}"], "{history:?}");
        assert!(history.iter().any(|k| k.ends_with("-5.tfstate")) && history.iter().any(|k| k.ends_with("-6.tfstate")), "{history:?}");
        assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\": 6}");
    });
}
