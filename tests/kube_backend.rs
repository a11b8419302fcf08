//! The Kubernetes backend against a real kube-apiserver (the testkit's shared cluster, a
//! namespace per test): state in a gzip Secret (chunked when too big for one), locks as Leases, chunked plans and their
//! digests, pruning, a client without rights, and the real
//! `driftless-runner` planning and applying with real terraform.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backend::{lock_info, object, plan_meta, state_key};

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use driftless::backend::kube::{lock_lease_name, plan_chunk_secret_name, plan_meta_secret_name, state_secret_name};
use driftless::backend::{BackendError, LockInfo, PlanStore, SecretBackend, StateKey, StateStore};
use driftless::dispatch::{BackendSpec, Operation, Outcome, RunResult, RunSpec, RunVariable};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use testkit::TestNamespace;
use tokio::io::AsyncWriteExt;

const TTL: Duration = Duration::from_secs(600);

/// A test namespace and a backend in it, or `None` when the control plane is not built.
async fn setup(prefix: &str) -> Option<(TestNamespace, SecretBackend)> {
    let cluster = testkit::shared_cluster_or_skip().await?;
    let ns = cluster.namespace(prefix).await.unwrap();
    let backend = SecretBackend::new(ns.client.clone(), ns.name.clone(), TTL);
    Some((ns, backend))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// Bytes that do not compress, so a plan really spans several Secrets.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn state_round_trips_gzip_compressed_in_one_labelled_secret() {
    let Some((ns, b)) = setup("kube-state").await else { return };
    let key = state_key(&ns.name, "app");
    assert_eq!(b.get(&key).await.unwrap(), None, "no state yet");

    let first = br#"{"version": 4, "serial": 1, "resources": []}"#.repeat(50);
    b.put(&key, &first, None).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), first);
    let second = br#"{"version": 4, "serial": 2, "resources": [{"type": "null_resource"}]}"#.to_vec();
    b.put(&key, &second, None).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), second);

    let secret = ns.api::<Secret>().get("tfstate-default-app").await.unwrap();
    assert_eq!(state_secret_name(&key), "tfstate-default-app");
    let data = secret.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["tfstate"]);
    let stored = &data["tfstate"].0;
    assert_eq!(&stored[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(gunzip(stored), second);
    let labels = secret.metadata.labels.unwrap();
    for (k, v) in [
        ("app.kubernetes.io/managed-by", "driftless"),
        ("driftless.dev/kind", "Terraform"),
        ("driftless.dev/name", "app"),
        ("driftless.dev/state", "default"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }
    let all = ns.api::<Secret>().list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.iter().filter(|s| s.metadata.name.as_deref().unwrap_or("").starts_with("tfstate-")).count(), 1);

    // A Secret that is not gzip is reported, never taken for an empty state.
    let mut bad = ns.api::<Secret>().get("tfstate-default-app").await.unwrap();
    bad.data = Some([("tfstate".to_string(), ByteString(b"plain".to_vec()))].into());
    ns.api::<Secret>().replace("tfstate-default-app", &PostParams::default(), &bad).await.unwrap();
    let err = b.get(&key).await.unwrap_err();
    assert!(matches!(err, BackendError::Corrupt { .. }) && err.to_string().contains("gzip"), "{err}");

    b.delete(&key).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap(), None);
}

/// A terraform state with one attribute of `len` random characters (6 bits each): its gzip
/// is about three quarters of `len`, far more than one Secret holds.
fn big_state(serial: u32, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let blob: String = noise(len + serial as usize).iter().skip(serial as usize).map(|b| ALPHABET[usize::from(b & 63)] as char).collect();
    serde_json::to_vec(&serde_json::json!({
        "version": 4,
        "serial": serial,
        "lineage": "big",
        "resources": [{"mode": "managed", "type": "null_resource", "name": "big", "instances": [{"attributes": {"blob": blob}}]}],
    }))
    .unwrap()
}

/// The names of the chunk Secrets of the state `app` (workspace `default`), sorted.
async fn state_chunks(ns: &TestNamespace) -> Vec<Secret> {
    let selector = "driftless.dev/name=app,driftless.dev/state=default,driftless.dev/state-part=chunk";
    let mut chunks = ns.api::<Secret>().list(&ListParams::default().labels(selector)).await.unwrap().items;
    chunks.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chunks
}

fn names(secrets: &[Secret]) -> Vec<String> {
    secrets.iter().map(|s| s.metadata.name.clone().unwrap()).collect()
}

#[tokio::test]
async fn a_two_mib_state_is_chunked_and_a_small_one_after_it_is_one_secret_again() {
    let Some((ns, b)) = setup("kube-bigstate").await else { return };
    let key = state_key(&ns.name, "app");
    b.lock(&key, &lock_info("r1")).await.unwrap();
    let big = big_state(1, 2 * 1024 * 1024);
    b.put(&key, &big, Some("r1")).await.expect("a state bigger than a Secret is written");
    assert!(b.get(&key).await.unwrap().unwrap() == big, "the big state comes back byte for byte");

    let main = ns.api::<Secret>().get(&state_secret_name(&key)).await.unwrap();
    let data = main.data.unwrap();
    assert!(!data.contains_key("tfstate"), "no partial state under tofu-controller's key");
    let count: usize = std::str::from_utf8(&data["chunks"].0).unwrap().parse().unwrap();
    let digest = std::str::from_utf8(&data["digest"].0).unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let first = state_chunks(&ns).await;
    assert_eq!(first.len(), count);
    assert!(count >= 3, "about 1.5 MiB of gzip in chunks of 512 KiB: {count}");
    for (n, chunk) in first.iter().enumerate() {
        let name = chunk.metadata.name.clone().unwrap();
        assert!(name.starts_with("tfstate-default-app-") && name.ends_with(&format!("-{n}")), "{name}");
        assert_eq!(chunk.metadata.labels.as_ref().unwrap()["driftless.dev/kind"], "Terraform");
        let size: usize = chunk.data.as_ref().unwrap().values().map(|v| v.0.len()).sum();
        assert!(size <= 512 * 1024, "{name} holds {size} bytes");
    }

    // Another big state: a new generation of chunks, the first one's are gone.
    let bigger = big_state(2, 2 * 1024 * 1024 + 100);
    b.put(&key, &bigger, Some("r1")).await.unwrap();
    assert!(b.get(&key).await.unwrap().unwrap() == bigger);
    let second = names(&state_chunks(&ns).await);
    assert_eq!(second.len(), count);
    assert!(second.iter().all(|n| !names(&first).contains(n)), "old {:?}, new {second:?}", names(&first));

    // A small state: back in one Secret, as tofu-controller and terraform read it.
    let small = br#"{"version": 4, "serial": 3, "resources": []}"#.to_vec();
    b.put(&key, &small, Some("r1")).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), small);
    let data = ns.api::<Secret>().get(&state_secret_name(&key)).await.unwrap().data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["tfstate"], "no chunk manifest left");
    assert_eq!(gunzip(&data["tfstate"].0), small);
    assert!(state_chunks(&ns).await.is_empty(), "the chunks of the big state are gone");
    b.unlock(&key, "r1").await.unwrap();
}

#[tokio::test]
async fn a_tampered_or_missing_state_chunk_is_refused_and_delete_takes_the_chunks() {
    let Some((ns, b)) = setup("kube-bigstate-tamper").await else { return };
    let key = state_key(&ns.name, "app");
    b.put(&key, &big_state(1, 2 * 1024 * 1024), None).await.unwrap();
    let api = ns.api::<Secret>();
    let name = names(&state_chunks(&ns).await)[1].clone();
    let mut chunk = api.get(&name).await.unwrap();
    for value in chunk.data.as_mut().unwrap().values_mut() {
        value.0[10] ^= 0xff;
    }
    api.replace(&name, &PostParams::default(), &chunk).await.unwrap();
    let err = b.get(&key).await.expect_err("a tampered state is never returned");
    assert!(matches!(err, BackendError::StateDigestMismatch { .. }) && err.is_integrity(), "{err}");
    assert!(err.to_string().contains("digest"), "{err}");

    api.delete(&name, &Default::default()).await.unwrap();
    let err = b.get(&key).await.expect_err("a state with a chunk missing is never returned");
    assert!(matches!(err, BackendError::Corrupt { .. }) && err.to_string().contains("chunk 1"), "{err}");

    b.delete(&key).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap(), None);
    assert!(state_chunks(&ns).await.is_empty(), "deleting the state deletes its chunks");
}

// Races, expiry, takeover and forced unlocks are the contract every backend keeps:
// tests/backend_contract.rs. What is the Secret backend's own is how a lock looks.

#[tokio::test]
async fn a_lock_is_a_lease_naming_its_holder_and_an_expired_one_is_replaced_in_place() {
    let Some((ns, b)) = setup("kube-lease").await else { return };
    let key = state_key(&ns.name, "app");
    b.lock(&key, &lock_info("r1")).await.unwrap();
    let lease = ns.api::<Lease>().get(&lock_lease_name(&key)).await.unwrap();
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("r1"));
    assert_eq!(spec.lease_duration_seconds, Some(600));
    let annotated: LockInfo = serde_json::from_str(&lease.metadata.annotations.unwrap()["driftless.dev/lock-info"]).unwrap();
    assert_eq!((annotated.who.as_str(), annotated.operation.as_str()), ("runner-r1", "OperationTypeApply"));
    b.unlock(&key, "r1").await.unwrap();
    assert!(ns.api::<Lease>().get_opt(&lock_lease_name(&key)).await.unwrap().is_none(), "released: the Lease is gone");

    let dead = SecretBackend::new(ns.client.clone(), ns.name.clone(), Duration::from_secs(1));
    dead.lock(&key, &lock_info("dead")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.lock(&key, &lock_info("live")).await.expect("an expired lock is taken over");
    let spec = ns.api::<Lease>().get(&lock_lease_name(&key)).await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1), "taken over by a replace of the same Lease");
    assert_eq!((spec.holder_identity.as_deref(), spec.lease_duration_seconds), (Some("live"), Some(600)));
}

/// `tfstate-<workspace>-<name>` is one name for Terraform `a-b` workspace `c` and Terraform
/// `b` workspace `c-a`: the second never reads or overwrites the first's state.
#[tokio::test]
async fn a_state_secret_of_another_object_is_neither_read_nor_overwritten() {
    let Some((ns, b)) = setup("kube-foreign").await else { return };
    let owner = StateKey { object: object(&ns.name, "a-b"), state_name: "c".into(), secret_suffix: None };
    let other = StateKey { object: object(&ns.name, "b"), state_name: "c-a".into(), secret_suffix: None };
    assert_eq!(state_secret_name(&owner), state_secret_name(&other), "the names collide");
    b.put(&owner, b"{\"serial\":1}", None).await.unwrap();
    let err = b.get(&other).await.expect_err("another object's state is refused");
    assert!(matches!(err, BackendError::Foreign { .. }) && err.to_string().contains("Terraform a-b"), "{err}");
    assert!(matches!(b.put(&other, b"{\"serial\":9}", None).await, Err(BackendError::Foreign { .. })));
    assert_eq!(b.get(&owner).await.unwrap().unwrap(), b"{\"serial\":1}", "the owner's state is untouched");

    // A state Secret without driftless's labels (as tofu-controller writes it) is adopted.
    let unlabelled = Secret {
        metadata: kube::api::ObjectMeta { name: Some("tfstate-default-migrated".into()), ..Default::default() },
        data: Some([("tfstate".to_string(), ByteString(gzip(b"{\"serial\":7}")))].into()),
        ..Default::default()
    };
    ns.api::<Secret>().create(&PostParams::default(), &unlabelled).await.unwrap();
    let migrated = state_key(&ns.name, "migrated");
    assert_eq!(b.get(&migrated).await.unwrap().unwrap(), b"{\"serial\":7}");
}

#[tokio::test]
async fn a_three_mib_plan_round_trips_in_chunks() {
    let Some((ns, b)) = setup("kube-plan").await else { return };
    let app = object(&ns.name, "app");
    let plan = noise(3 * 1024 * 1024 + 17);
    let meta = plan_meta("plan-abc1234-0123456789", &plan);
    b.put_plan(&app, &meta, &plan).await.unwrap();

    let (read_meta, bytes) = b.get_plan(&app, &meta.id).await.unwrap();
    assert_eq!(read_meta, meta);
    assert!(bytes == plan, "the plan comes back byte for byte");
    assert_eq!(b.plan_meta(&app, &meta.id).await.unwrap(), Some(meta.clone()));
    assert_eq!(b.plan_meta(&app, "plan-other-0000000000").await.unwrap(), None);
    assert!(matches!(b.get_plan(&app, "plan-other-0000000000").await, Err(BackendError::PlanNotFound { .. })));

    let secrets = ns.api::<Secret>().list(&ListParams::default().labels("driftless.dev/plan=plan-abc1234-0123456789")).await.unwrap();
    let mut names: Vec<String> = secrets.items.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    names.sort();
    let meta_name = plan_meta_secret_name(&app, &meta.id);
    let mut expected: Vec<String> = (0..7).map(|n| plan_chunk_secret_name(&app, &meta.id, n)).chain([meta_name.clone()]).collect();
    expected.sort();
    assert_eq!(names, expected, "seven chunks of at most 512 KiB and one meta");
    for s in &secrets.items {
        let size: usize = s.data.as_ref().unwrap().values().map(|v| v.0.len()).sum();
        assert!(size <= 512 * 1024, "{:?} holds {size} bytes", s.metadata.name);
    }
    assert_eq!(
        BackendSpec::Kubernetes { namespace: ns.name.clone(), labels: Default::default() }.plan_location(&app, &meta.id),
        format!("secret/{}/{meta_name}", ns.name)
    );

    // Stored again (same id, a smaller plan): the extra chunks go.
    let small = b"small plan".to_vec();
    b.put_plan(&app, &plan_meta(&meta.id, &small), &small).await.unwrap();
    assert_eq!(b.get_plan(&app, &meta.id).await.unwrap().1, small);
    let left = ns.api::<Secret>().list(&ListParams::default().labels("driftless.dev/plan=plan-abc1234-0123456789")).await.unwrap();
    assert_eq!(left.items.len(), 2, "one chunk and the meta");
}

#[tokio::test]
async fn a_tampered_or_missing_chunk_is_never_returned() {
    let Some((ns, b)) = setup("kube-tamper").await else { return };
    let app = object(&ns.name, "app");
    let plan = noise(1024 * 1024 + 5);
    let meta = plan_meta("plan-abc1234-1111111111", &plan);
    b.put_plan(&app, &meta, &plan).await.unwrap();

    // Someone with write access to Secrets changes one byte of the middle chunk.
    let api = ns.api::<Secret>();
    let name = plan_chunk_secret_name(&app, &meta.id, 1);
    let mut chunk = api.get(&name).await.unwrap();
    let data = chunk.data.as_mut().unwrap().get_mut("tfplan").unwrap();
    data.0[10] ^= 0xff;
    api.replace(&name, &PostParams::default(), &chunk).await.unwrap();
    match b.get_plan(&app, &meta.id).await {
        Err(BackendError::PlanDigestMismatch { expected, actual, .. }) => {
            assert_eq!(expected, meta.digest);
            assert_ne!(actual, meta.digest);
        }
        Err(e) => panic!("expected PlanDigestMismatch, got {e}"),
        Ok(_) => panic!("a tampered plan was returned"),
    }

    // A chunk that is gone is corrupt data, also never returned.
    api.delete(&plan_chunk_secret_name(&app, &meta.id, 2), &Default::default()).await.unwrap();
    let err = b.get_plan(&app, &meta.id).await.unwrap_err();
    assert!(matches!(err, BackendError::Corrupt { .. }) && err.is_integrity() && err.to_string().contains("chunk 2"), "{err}");
}

#[tokio::test]
async fn prune_plans_removes_every_other_plan_of_that_object_only() {
    let Some((ns, b)) = setup("kube-prune").await else { return };
    let app = object(&ns.name, "app");
    let other = object(&ns.name, "other");
    let big = noise(600 * 1024);
    for id in ["plan-a-0000000001", "plan-b-0000000002", "plan-c-0000000003"] {
        b.put_plan(&app, &plan_meta(id, &big), &big).await.unwrap();
    }
    b.put_plan(&other, &plan_meta("plan-a-0000000001", b"x"), b"x").await.unwrap();
    let key = state_key(&ns.name, "app");
    b.put(&key, b"{}", None).await.unwrap();

    b.prune_plans(&app, &["plan-b-0000000002"]).await.unwrap();
    assert_eq!(b.get_plan(&app, "plan-b-0000000002").await.unwrap().1, big);
    for gone in ["plan-a-0000000001", "plan-c-0000000003"] {
        assert!(matches!(b.get_plan(&app, gone).await, Err(BackendError::PlanNotFound { .. })), "{gone}");
    }
    let names: Vec<String> =
        ns.api::<Secret>().list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|s| s.metadata.name).collect();
    assert!(!names.iter().any(|n| n.starts_with("tfplan-app-plan-a") || n.starts_with("tfplan-app-plan-c")), "{names:?}");
    assert_eq!(b.get_plan(&other, "plan-a-0000000001").await.unwrap().1, b"x", "another object's plans stay");
    assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{}", "the state stays");

    b.prune_plans(&app, &[]).await.unwrap();
    assert!(matches!(b.get_plan(&app, "plan-b-0000000002").await, Err(BackendError::PlanNotFound { .. })));
}

#[tokio::test]
async fn a_client_without_rights_gets_a_clear_forbidden_error() {
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("kube-forbidden").await.unwrap();
    let alice = SecretBackend::new(cluster.client_for("alice").unwrap(), ns.name.clone(), TTL);
    let key = state_key(&ns.name, "app");
    for err in [
        alice.get(&key).await.unwrap_err(),
        alice.lock(&key, &lock_info("a")).await.unwrap_err(),
        alice.put_plan(&key.object, &plan_meta("plan-x-0000000000", b"p"), b"p").await.unwrap_err(),
    ] {
        assert!(matches!(err, BackendError::Forbidden { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&ns.name) && text.contains("driftless-runner") && text.contains("driftless install"), "{text}");
    }
    let text = alice.get(&key).await.unwrap_err().to_string();
    assert!(text.contains("refused to get secrets"), "{text}");
    let text = alice.lock(&key, &lock_info("a")).await.unwrap_err().to_string();
    assert!(text.contains("refused to create leases.coordination.k8s.io"), "{text}");
}

#[tokio::test]
async fn an_unreachable_api_server_is_reported_as_such() {
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let access = cluster.access().with_server(format!("https://127.0.0.1:{closed}"));
    let b = SecretBackend::new(access.admin_client().unwrap(), "default", TTL);
    let err = b.get(&state_key("default", "app")).await.unwrap_err();
    assert!(matches!(err, BackendError::Unreachable { .. }), "{err}");
}

/// A module of null resources only.
const NULL_MODULE: &str = r#"
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

resource "null_resource" "first" {
  triggers = {
    content = var.content
  }
}

resource "null_resource" "second" {
  depends_on = [null_resource.first]
}
"#;

/// A plan of NULL_MODULE for Terraform `app` of `namespace`, its state in that namespace's
/// Secrets, run with the test's terraform.
fn null_module_plan(
    tools: &common::Tools,
    namespace: &str,
    artifacts: &driftless::source::ArtifactStore,
    artifact: &driftless::source::StoredArtifact,
) -> RunSpec {
    RunSpec {
        operation: Operation::Plan,
        object: object(namespace, "app"),
        artifact_url: artifacts.file_url(&artifact.path).unwrap(),
        artifact_digest: artifact.digest.clone(),
        source_revision: "main@sha1:0123456789abcdef".into(),
        path: "./".into(),
        workspace: "default".into(),
        state_name: "default".into(),
        state_suffix: None,
        options: Default::default(),
        variables: vec![RunVariable { name: "content".into(), value: "hello".into(), sensitive: false }],
        inputs_digest: "sha256:inputs".into(),
        backend: BackendSpec::Kubernetes { namespace: namespace.to_string(), labels: Default::default() },
        custom_backend: None,
        plan_id: None,
        plan_digest: None,
        apply_after_plan: false,
        drift_ignore: Vec::new(),
        render_plan: true,
        terraform_path: Some(tools.terraform.clone()),
        engine: None,
        tofu_path: None,
        lock_holder: "kube-backend-test".into(),
        timeout_seconds: 300,
        apply_timeout_seconds: None,
        unsaved_state: None,
    }
}

/// Runs the real `driftless-runner` on `spec`, with `KUBECONFIG` pointing at `kubeconfig`.
async fn run_runner(tools: &common::Tools, home: &std::path::Path, kubeconfig: &std::path::Path, spec: &RunSpec) -> RunResult {
    let mut cmd = tokio::process::Command::new(&tools.runner);
    cmd.env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("TF_CLI_CONFIG_FILE", &tools.cli_config)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("TF_LOG")
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&serde_json::to_vec(spec).unwrap()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The target directory is shared: a runner built from a branch without this backend
    // refuses the spec.
    assert!(!stderr.contains("invalid RunSpec"), "rebuild driftless-runner (cargo build -p driftless-runner): {stderr}");
    assert!(out.status.success(), "runner failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_runner_plans_and_applies_with_state_in_a_secret() {
    let Some(tools) = common::Tools::find() else { return };
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("kube-runner").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (module, home, kubeconfig) = (dir.path().join("module"), dir.path().join("home"), dir.path().join("kubeconfig"));
    std::fs::create_dir_all(&module).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(module.join("main.tf"), NULL_MODULE).unwrap();
    cluster.access().write_kubeconfig(&kubeconfig, "admin").unwrap();
    let artifacts = driftless::source::ArtifactStore::new(dir.path().join("artifacts"));
    let artifact = artifacts.archive_dir("GitRepository", &ns.name, "app", &module, None).unwrap();

    let app = object(&ns.name, "app");
    let base = null_module_plan(&tools, &ns.name, &artifacts, &artifact);
    let spec = |operation: Operation, plan: Option<&RunResult>| RunSpec {
        operation,
        plan_id: plan.and_then(|p| p.plan_id.clone()),
        plan_digest: plan.and_then(|p| p.plan_digest.clone()),
        ..base.clone()
    };

    let planned = run_runner(&tools, &home, &kubeconfig, &spec(Operation::Plan, None)).await;
    assert_eq!(planned.outcome, Outcome::Planned, "{planned:?}");
    let plan_id = planned.plan_id.clone().unwrap();
    let b = SecretBackend::new(ns.client.clone(), ns.name.clone(), TTL);
    let meta = b.plan_meta(&app, &plan_id).await.unwrap().expect("the plan is stored in Secrets");
    assert_eq!(Some(&meta.digest), planned.plan_digest.as_ref());
    assert!(meta.rendering.contains("null_resource.first"), "{}", meta.rendering);

    let applied = run_runner(&tools, &home, &kubeconfig, &spec(Operation::Apply, Some(&planned))).await;
    assert_eq!(applied.outcome, Outcome::Applied, "{applied:?}");

    let secret = ns.api::<Secret>().get("tfstate-default-app").await.expect("the state Secret");
    let state: serde_json::Value = serde_json::from_slice(&gunzip(&secret.data.unwrap()["tfstate"].0)).unwrap();
    let names: Vec<&str> = state["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["first", "second"], "{state}");
    assert!(ns.api::<Lease>().get_opt("tflock-default-app").await.unwrap().is_none(), "the run released its lock");

    let again = run_runner(&tools, &home, &kubeconfig, &spec(Operation::Plan, None)).await;
    assert_eq!(again.outcome, Outcome::NoChanges, "the applied state is read back: {again:?}");

    // A held Lease stops the run and names its holder (what `status.lock` shows).
    let key = state_key(&ns.name, "app");
    b.lock(&key, &lock_info("held")).await.unwrap();
    let locked = run_runner(&tools, &home, &kubeconfig, &spec(Operation::Plan, None)).await;
    let error = locked.error.expect("a lock error");
    assert_eq!(error.kind, driftless::dispatch::RunErrorKind::StateLocked, "{}", error.message);
    let holder = error.lock.expect("the holder");
    assert_eq!((holder.id.as_str(), holder.who.as_str()), ("held", "runner-held"));
    assert!(!holder.created.is_empty() && holder.expires.is_some(), "{holder:?}");
    assert_eq!(b.force_unlock(&key).await.unwrap().map(|h| h.id), Some("held".into()));

    // A runner that cannot reach the API server fails as a backend failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = dir.path().join("kubeconfig-down");
    cluster.access().with_server(format!("https://127.0.0.1:{closed}")).write_kubeconfig(&down, "admin").unwrap();
    let failed = run_runner(&tools, &home, &down, &spec(Operation::Plan, None)).await;
    let error = failed.error.expect("an error");
    assert_eq!((failed.outcome, error.kind), (Outcome::Failed, driftless::dispatch::RunErrorKind::Backend), "{}", error.message);
    assert!(error.message.contains("cannot reach") && error.message.contains(&closed.to_string()), "{}", error.message);
}

/// A Terraform moved from tofu-controller with `backendConfig.secretSuffix`: terraform's own
/// `kubernetes` backend (what tofu-controller configures) wrote `tfstate-<workspace>-<suffix>`;
/// driftless's runner reads that very Secret and plans no change, instead of starting from
/// an empty state and planning to create everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_terraforms_kubernetes_backend_wrote_with_a_secret_suffix_is_adopted_with_no_changes() {
    let Some(tools) = common::Tools::find() else { return };
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("kube-adopt").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (module, legacy, home, kubeconfig) =
        (dir.path().join("module"), dir.path().join("legacy"), dir.path().join("home"), dir.path().join("kubeconfig"));
    for d in [&module, &legacy, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    cluster.access().write_kubeconfig(&kubeconfig, "admin").unwrap();
    std::fs::write(module.join("main.tf"), NULL_MODULE).unwrap();

    // What tofu-controller ran: the module plus its generated kubernetes backend block.
    std::fs::write(legacy.join("main.tf"), NULL_MODULE).unwrap();
    let backend = format!(
        "terraform {{\n  backend \"kubernetes\" {{\n    secret_suffix = \"legacy-app\"\n    namespace     = \"{}\"\n    config_path   = \"{}\"\n  }}\n}}\n",
        ns.name,
        kubeconfig.display()
    );
    std::fs::write(legacy.join("backend_override.tf"), backend).unwrap();
    let terraform = |args: &[&str]| {
        let out = std::process::Command::new(&tools.terraform)
            .args(args)
            .current_dir(&legacy)
            .env("HOME", &home)
            .env("TF_CLI_CONFIG_FILE", &tools.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    terraform(&["init", "-input=false", "-no-color"]);
    terraform(&["apply", "-input=false", "-no-color", "-auto-approve", "-var", "content=hello"]);
    let written = ns.api::<Secret>().get("tfstate-default-legacy-app").await.expect("terraform's kubernetes backend wrote its Secret");
    let labels = written.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("tfstateSecretSuffix").map(String::as_str), Some("legacy-app"), "{labels:?}");

    let artifacts = driftless::source::ArtifactStore::new(dir.path().join("artifacts"));
    let artifact = artifacts.archive_dir("GitRepository", &ns.name, "app", &module, None).unwrap();
    let spec = RunSpec {
        state_name: "default-legacy-app".into(),
        state_suffix: Some("legacy-app".into()),
        ..null_module_plan(&tools, &ns.name, &artifacts, &artifact)
    };
    let planned = run_runner(&tools, &home, &kubeconfig, &spec).await;
    assert_eq!(planned.outcome, Outcome::NoChanges, "the migrated state is found: {planned:?}");
    let names: Vec<String> =
        ns.api::<Secret>().list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|s| s.metadata.name).collect();
    assert!(!names.iter().any(|n| n.starts_with("tfstate-default-legacy-app-")), "no second state beside it: {names:?}");

    // And a change is planned against it: an update of what exists, not a second copy.
    let changed = RunSpec { variables: vec![RunVariable { name: "content".into(), value: "bye".into(), sensitive: false }], ..spec };
    let replanned = run_runner(&tools, &home, &kubeconfig, &changed).await;
    assert_eq!(replanned.outcome, Outcome::Planned, "{replanned:?}");
    assert_eq!((replanned.summary.add, replanned.summary.destroy), (1, 1), "first is replaced, second kept: {:?}", replanned.summary);
}

/// tofu-controller's `backendConfig.labels` label the state Secret; driftless's own labels
/// (whose state it is) win over a user's label of the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_secret_carries_the_labels_of_backend_config() {
    let Some(tools) = common::Tools::find() else { return };
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("kube-labels").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (module, home, kubeconfig) = (dir.path().join("module"), dir.path().join("home"), dir.path().join("kubeconfig"));
    std::fs::create_dir_all(&module).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(module.join("main.tf"), NULL_MODULE).unwrap();
    cluster.access().write_kubeconfig(&kubeconfig, "admin").unwrap();
    let artifacts = driftless::source::ArtifactStore::new(dir.path().join("artifacts"));
    let artifact = artifacts.archive_dir("GitRepository", &ns.name, "app", &module, None).unwrap();
    let labels: std::collections::BTreeMap<String, String> =
        [("team", "payments"), ("driftless.dev/name", "someone-else")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let spec = RunSpec {
        apply_after_plan: true,
        backend: BackendSpec::Kubernetes { namespace: ns.name.clone(), labels },
        ..null_module_plan(&tools, &ns.name, &artifacts, &artifact)
    };
    let applied = run_runner(&tools, &home, &kubeconfig, &spec).await;
    assert_eq!(applied.outcome, Outcome::Applied, "{applied:?}");
    let secret = ns.api::<Secret>().get("tfstate-default-app").await.expect("the state Secret");
    let on_secret = secret.metadata.labels.unwrap_or_default();
    assert_eq!(on_secret.get("team").map(String::as_str), Some("payments"), "{on_secret:?}");
    assert_eq!(on_secret.get("driftless.dev/name").map(String::as_str), Some("app"), "driftless's own label wins: {on_secret:?}");
}
