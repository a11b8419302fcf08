//! Leader election over a real Lease: one leader at a time, a quick takeover after a
//! release, a takeover only after expiry when a leader dies, and a leader that learns it
//! lost the lease.

use std::time::{Duration, Instant};

use driftless::controller::leader::{LeaderElector, LeaderError, Leadership, LeaseTiming};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::{Api, Client};
use testkit::{ApiFault, FaultProxy, FaultRule, shared_cluster_or_skip};

const LEASE: &str = "driftless-leader";

/// Short but safe on a loaded two-core machine: a 2 s renew deadline leaves room for slow
/// API answers; the lease lasts twice that.
fn timing() -> LeaseTiming {
    LeaseTiming::new(Duration::from_secs(4), Duration::from_secs(2), Duration::from_millis(250)).expect("valid timing")
}

fn elector(client: &Client, namespace: &str, identity: &str) -> LeaderElector {
    LeaderElector::new(client.clone(), namespace, LEASE, identity, timing())
}

async fn lease(api: &Api<Lease>) -> (Option<String>, Option<i32>) {
    let lease = api.get(LEASE).await.expect("get lease");
    let spec = lease.spec.unwrap_or_default();
    (spec.holder_identity, spec.lease_transitions)
}

/// Waits for the candidate's `acquire` in the background, so the test can act meanwhile.
fn acquire_in_background(elector: LeaderElector) -> tokio::task::JoinHandle<Leadership> {
    tokio::spawn(async move { elector.acquire().await.expect("acquire") })
}

#[tokio::test]
async fn two_candidates_on_one_lease_elect_exactly_one_leader() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("leader-one").await.expect("namespace");
    let a = acquire_in_background(elector(&ns.client, &ns.name, "a"));
    let b = acquire_in_background(elector(&ns.client, &ns.name, "b"));

    let started = Instant::now();
    let (leader, mut waiting) = loop {
        if a.is_finished() {
            break (a.await.expect("a"), b);
        }
        if b.is_finished() {
            break (b.await.expect("b"), a);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nobody was elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (holder, transitions) = lease(&ns.api()).await;
    assert_eq!(holder.as_deref(), Some(leader.identity()));
    assert_eq!(transitions, Some(0), "created, never taken over");

    // The leader renews, so the other waits through more than a lease duration.
    let waited = tokio::time::timeout(Duration::from_secs(6), &mut waiting).await;
    assert!(waited.is_err(), "a second leader was elected while the first renews");
    assert!(!leader.is_lost());
    assert_eq!(lease(&ns.api()).await.0.as_deref(), Some(leader.identity()));
    waiting.abort();
    leader.release().await.expect("release");
}

#[tokio::test]
async fn a_released_lease_is_taken_over_within_a_retry_period() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("leader-release").await.expect("namespace");
    let a = elector(&ns.client, &ns.name, "a").acquire().await.expect("a acquires");
    let b = acquire_in_background(elector(&ns.client, &ns.name, "b"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.is_finished(), "b acquired a held lease");

    let released = Instant::now();
    a.release().await.expect("release");
    let b = tokio::time::timeout(Duration::from_secs(3), b).await.expect("b acquires after the release").expect("b");
    let took = released.elapsed();
    // One retry period (250 ms) plus jitter and API latency; expiry would take 4 s.
    assert!(took < Duration::from_millis(1500), "takeover took {took:?}: waited for expiry?");
    assert_eq!(lease(&ns.api()).await, (Some("b".to_owned()), Some(1)));
    assert!(!b.is_lost());
    b.release().await.expect("release");
    assert_eq!(lease(&ns.api()).await, (None, Some(1)), "released: no holder, transitions kept");
}

#[tokio::test]
async fn a_leader_that_stops_renewing_is_replaced_only_after_its_lease_expires() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("leader-crash").await.expect("namespace");
    let a = elector(&ns.client, &ns.name, "a").acquire().await.expect("a acquires");
    let b = acquire_in_background(elector(&ns.client, &ns.name, "b"));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let crashed = Instant::now();
    a.abandon();
    let b = tokio::time::timeout(Duration::from_secs(10), b).await.expect("b acquires after expiry").expect("b");
    let took = crashed.elapsed();
    // a's last renewal was at most one retry period before the crash.
    assert!(took >= Duration::from_millis(3500), "took over after {took:?}, before the 4 s lease expired");
    assert!(took < Duration::from_secs(7), "took over after {took:?}");
    assert_eq!(lease(&ns.api()).await, (Some("b".to_owned()), Some(1)));
    b.release().await.expect("release");
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_reports_the_loss_and_leaves_it() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("leader-taken").await.expect("namespace");
    let leader = elector(&ns.client, &ns.name, "a").acquire().await.expect("a acquires");
    let lost = leader.lost();
    tokio::pin!(lost);
    assert!(tokio::time::timeout(Duration::from_secs(1), &mut lost).await.is_err(), "lost while renewing");

    // Overwrite the holder, retrying when the leader's renewal wins the race.
    let api: Api<Lease> = ns.api();
    loop {
        let mut lease = api.get(LEASE).await.expect("get");
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = Some("intruder".into());
        }
        match api.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(err) => panic!("overwriting the holder: {err}"),
        }
    }
    let taken = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), &mut lost).await.expect("lost() fires");
    assert!(taken.elapsed() < Duration::from_secs(1), "noticed after {:?}, not on the next renewal", taken.elapsed());
    assert!(leader.is_lost());

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(lease(&ns.api()).await.0.as_deref(), Some("intruder"), "the lost leader wrote the lease again");
    leader.release().await.expect("release after loss does nothing");
    assert_eq!(lease(&ns.api()).await.0.as_deref(), Some("intruder"), "release cleared another's holder");
}

#[tokio::test]
async fn a_leader_that_cannot_reach_the_api_reports_the_loss_by_the_renew_deadline() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("leader-cut-off").await.expect("namespace");
    let proxy = FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let through_proxy = proxy.admin_client().expect("client");
    let leader = elector(&through_proxy, &ns.name, "a").acquire().await.expect("a acquires");
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.add_rule(FaultRule::new(ApiFault::Status(503)).resource("leases"));
    let cut = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), leader.lost()).await.expect("lost() fires");
    let took = cut.elapsed();
    // The deadline counts from the last successful renewal, at most one retry period ago.
    assert!(took >= Duration::from_millis(1500), "gave up after {took:?}, before the 2 s renew deadline");
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    // Lost before the lease could expire for anyone else.
    assert_eq!(lease(&ns.api()).await.0.as_deref(), Some("a"));
    proxy.clear_rules();
}

#[tokio::test]
async fn an_empty_identity_is_refused() {
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let client = cluster.admin_client().expect("client");
    let result = elector(&client, "default", "").acquire().await;
    assert!(matches!(result, Err(LeaderError::EmptyIdentity)), "{result:?}");
}
