//! The one contract every state and plan backend keeps, run against all three: local files,
//! Kubernetes Secrets and Leases (the testkit's real kube-apiserver), and S3 (moto's real
//! S3-compatible server). State round trips; of racing lockers exactly one wins and the
//! others are told the holder; only the holder writes or releases; an expired lock is taken
//! over and a live one is not; a broken lock names its holder; a plan is returned only when
//! its bytes match the digest recorded with it; pruning keeps exactly what it is told to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::backend::{lock_info, object, plan_meta, state_key};

use std::future::Future;
use std::time::Duration;

use driftless::backend::{BackendError, LocalBackend, PlanMeta, PlanStore, S3Backend, SecretBackend, StateStore};

/// A long lifetime: these locks must not expire during a test.
const LIVE: Duration = Duration::from_secs(600);
/// A short one: the lock of a runner that died.
const DYING: Duration = Duration::from_secs(1);

/// Makes a backend whose locks live `ttl`; each call is an independent runner (its own
/// client or handle).
trait Factory: Sync {
    type Backend: StateStore + PlanStore + Send;
    fn make(&self, ttl: Duration) -> impl Future<Output = Self::Backend> + Send;
    /// The namespace objects of this run live in.
    fn namespace(&self) -> &str;
}

struct Local(tempfile::TempDir);

impl Factory for Local {
    type Backend = LocalBackend;
    async fn make(&self, ttl: Duration) -> LocalBackend {
        LocalBackend::new(self.0.path()).with_lock_ttl(ttl)
    }
    fn namespace(&self) -> &str {
        "default"
    }
}

struct Secrets(testkit::TestNamespace, kube::Client);

impl Factory for Secrets {
    type Backend = SecretBackend;
    async fn make(&self, ttl: Duration) -> SecretBackend {
        SecretBackend::new(self.1.clone(), self.0.name.clone(), ttl)
    }
    fn namespace(&self) -> &str {
        &self.0.name
    }
}

struct S3(common::s3::Moto, String);

impl Factory for S3 {
    type Backend = S3Backend;
    async fn make(&self, ttl: Duration) -> S3Backend {
        S3Backend::connect(&self.0.location("tfstate", &self.1), ttl).await
    }
    fn namespace(&self) -> &str {
        "default"
    }
}

async fn state_round_trips<F: Factory>(f: &F) {
    let b = f.make(LIVE).await;
    let key = state_key(f.namespace(), "roundtrip");
    assert_eq!(b.get(&key).await.unwrap(), None, "no state yet");
    b.put(&key, b"{\"serial\":1}", None).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\":1}");
    b.put(&key, b"{\"serial\":2}", None).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\":2}", "the newest state wins");
    let other = state_key(f.namespace(), "other");
    assert_eq!(b.get(&other).await.unwrap(), None, "states of two objects are apart");
    b.delete(&key).await.unwrap();
    assert_eq!(b.get(&key).await.unwrap(), None);
}

async fn of_eight_racing_lockers_exactly_one_wins<F: Factory>(f: &F) {
    for round in 0..3 {
        let key = state_key(f.namespace(), &format!("race{round}"));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for i in 0..8 {
            // One backend each, on its own task: eight independent runners.
            let backend = f.make(LIVE).await;
            let (key, barrier) = (key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                (i, backend.lock(&key, &lock_info(&format!("r{i}"))).await)
            }));
        }
        let mut winners = Vec::new();
        let mut holders = Vec::new();
        for task in tasks {
            let (i, outcome) = task.await.unwrap();
            match outcome {
                Ok(()) => winners.push(i),
                Err(BackendError::Locked { holder, .. }) => holders.push(holder.id.clone()),
                Err(e) => panic!("round {round}: unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one runner takes the lock: {winners:?}");
        let winner = format!("r{}", winners[0]);
        assert_eq!(holders.len(), 7, "round {round}");
        assert!(holders.iter().all(|h| *h == winner), "round {round}: every loser is told the holder: {holders:?}");

        let b = f.make(LIVE).await;
        let loser = format!("r{}", (winners[0] + 1) % 8);
        assert!(
            matches!(b.put(&key, b"{\"serial\":1}", Some(&loser)).await, Err(BackendError::LockMismatch { .. })),
            "a loser cannot write"
        );
        b.put(&key, b"{\"serial\":2}", Some(&winner)).await.unwrap();
        let released = b.unlock(&key, &loser).await;
        assert!(
            matches!(released, Err(BackendError::Locked { .. } | BackendError::LockMismatch { .. })),
            "a loser cannot release it: {released:?}"
        );
        assert_eq!(b.lock_info(&key).await.unwrap().map(|l| l.id), Some(winner.clone()), "still held by the winner");
        b.unlock(&key, &winner).await.unwrap();
        assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\":2}", "nothing lost");
        assert!(b.lock_info(&key).await.unwrap().is_none(), "released");
    }
}

async fn an_expired_lock_is_taken_over_and_a_live_one_is_not<F: Factory>(f: &F) {
    let key = state_key(f.namespace(), "expiry");
    let dead = f.make(DYING).await;
    let live = f.make(LIVE).await;
    dead.lock(&key, &lock_info("dead")).await.unwrap();
    match live.lock(&key, &lock_info("early")).await {
        Err(BackendError::Locked { holder, .. }) => {
            assert_eq!((holder.id.as_str(), holder.who.as_str()), ("dead", "runner-dead"));
            assert!(holder.expires.is_some(), "the holder's expiry is shown");
        }
        other => panic!("a live lock is not taken over: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    live.lock(&key, &lock_info("live")).await.expect("an expired lock is taken over");
    assert_eq!(live.lock_info(&key).await.unwrap().unwrap().id, "live");
    assert!(matches!(dead.put(&key, b"{}", Some("dead")).await, Err(BackendError::LockMismatch { .. })), "the old holder cannot write");
    assert!(matches!(dead.lock(&key, &lock_info("again")).await, Err(BackendError::Locked { .. })), "nor lock again while it is live");
    live.unlock(&key, "live").await.unwrap();
}

async fn a_broken_lock_names_its_holder_and_a_wrong_id_changes_nothing<F: Factory>(f: &F) {
    let b = f.make(LIVE).await;
    let key = state_key(f.namespace(), "force");
    b.put(&key, b"{\"serial\":1}", None).await.unwrap();
    b.lock(&key, &lock_info("stuck")).await.unwrap();
    assert!(matches!(b.put(&key, b"{\"serial\":9}", Some("other")).await, Err(BackendError::LockMismatch { .. })));
    assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\":1}", "the refused write changed nothing");
    let broken = b.force_unlock(&key).await.unwrap().expect("the broken lock");
    assert_eq!((broken.id.as_str(), broken.who.as_str(), broken.operation.as_str()), ("stuck", "runner-stuck", "OperationTypeApply"));
    assert!(b.lock_info(&key).await.unwrap().is_none());
    assert_eq!(b.force_unlock(&key).await.unwrap(), None, "nothing left to break");
    assert!(matches!(b.put(&key, b"{\"serial\":2}", Some("stuck")).await, Err(BackendError::LockMismatch { .. })), "a broken lock is gone");
    b.lock(&key, &lock_info("next")).await.unwrap();
    b.put(&key, b"{\"serial\":2}", Some("next")).await.unwrap();
    b.unlock(&key, "next").await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().unwrap(), b"{\"serial\":2}");
}

async fn a_plan_is_returned_only_with_the_digest_it_was_stored_with<F: Factory>(f: &F) {
    let b = f.make(LIVE).await;
    let app = object(f.namespace(), "plans");
    let plan = b"a saved plan".to_vec();
    let meta = plan_meta("plan-abc1234-0123456789", &plan);
    b.put_plan(&app, &meta, &plan).await.unwrap();
    let (read_meta, bytes) = b.get_plan(&app, &meta.id).await.unwrap();
    assert_eq!((read_meta.digest.as_str(), bytes.as_slice()), (meta.digest.as_str(), plan.as_slice()));
    assert_eq!(b.plan_meta(&app, &meta.id).await.unwrap().unwrap().rendering, "rendering of plan-abc1234-0123456789");

    // A meta that names other bytes (a plan swapped under its id) is never returned: the
    // backend refuses to store it (S3 checks the upload's checksum) or to return it.
    let lying = PlanMeta { id: "plan-abc1234-9999999999".into(), ..plan_meta("x", b"the plan that was reviewed") };
    if b.put_plan(&app, &lying, b"another plan").await.is_ok() {
        match b.get_plan(&app, &lying.id).await {
            Err(e @ BackendError::PlanDigestMismatch { .. }) => assert!(e.is_integrity()),
            other => panic!("a plan whose bytes do not match its digest must not be returned: {other:?}"),
        }
    }
    match b.get_plan(&app, "plan-missing-0000000000").await {
        Err(e @ BackendError::PlanNotFound { .. }) => assert!(e.is_integrity()),
        other => panic!("{other:?}"),
    }

    // Pruning keeps what it is told to, and only this object's plans are touched.
    let neighbour = object(f.namespace(), "neighbour");
    b.put_plan(&neighbour, &meta, &plan).await.unwrap();
    b.prune_plans(&app, &[meta.id.as_str()]).await.unwrap();
    assert!(b.plan_meta(&app, &meta.id).await.unwrap().is_some(), "kept");
    assert!(b.plan_meta(&app, &lying.id).await.unwrap().is_none(), "pruned");
    assert!(b.plan_meta(&neighbour, &meta.id).await.unwrap().is_some(), "another object's plan stays");
}

async fn contract<F: Factory>(f: &F) {
    state_round_trips(f).await;
    of_eight_racing_lockers_exactly_one_wins(f).await;
    an_expired_lock_is_taken_over_and_a_live_one_is_not(f).await;
    a_broken_lock_names_its_holder_and_a_wrong_id_changes_nothing(f).await;
    a_plan_is_returned_only_with_the_digest_it_was_stored_with(f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_files_keep_the_backend_contract() {
    contract(&Local(tempfile::tempdir().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_secrets_keep_the_backend_contract() {
    let Some(cluster) = testkit::shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("contract").await.unwrap();
    // One admin client per backend would be closer to independent runners, but the API
    // server decides the races either way (create of the Lease is atomic).
    let client = ns.client.clone();
    contract(&Secrets(ns, client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_keeps_the_backend_contract() {
    let Some(moto) = common::s3::Moto::start() else { return };
    common::s3::create_bucket(&common::s3::client(&moto.endpoint()).await, "tfstate").await;
    contract(&S3(moto, "contract".into())).await;
}

/// A lock file left empty by a crash must not block `driftless unlock` (local store).
#[tokio::test]
async fn an_unreadable_local_lock_is_shown_as_held_and_can_be_broken() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path());
    let key = state_key("default", "app");
    let lock = dir.path().join("state/Terraform/default/app/default.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, b"").unwrap();
    let held = b.lock_info(&key).await.unwrap().expect("an empty lock file is a held lock");
    assert!(held.who.contains("unreadable"), "{held:?}");
    assert!(matches!(b.lock(&key, &lock_info("next")).await, Err(BackendError::Locked { .. })), "it still guards the state");
    assert!(b.force_unlock(&key).await.unwrap().is_some());
    b.lock(&key, &lock_info("next")).await.unwrap();
}
