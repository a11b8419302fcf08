//! Receivers served by the real controller (`--receiver-addr`) on the testkit's real API
//! server, through the testkit's proxy, which counts the controller's API requests: an
//! unauthenticated webhook call costs no list of Receivers (they come from a watch), a burst
//! of refused calls gets 429 with Retry-After, and a valid call after that wait is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http::{Reply, request};
use common::kube::KubeWorld;
use common::{MODULE, git_repository};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LONG: Duration = Duration::from_secs(120);
const TOKEN: &str = "receiver-test-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A generic-hmac call signed with `key`.
fn signed(addr: &str, path: &str, key: &str, body: &str) -> Reply {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    request(addr, "POST", path, &[("X-Signature", &signature)], Some(body))
}

/// The webhook calls on a blocking thread (the test's runtime keeps serving the proxy).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_calls_find_receivers_in_the_watch_and_refused_bursts_get_429() {
    let Some(mut k) = KubeWorld::new("receiver").await else { return };
    let cluster = testkit::shared_cluster().await.unwrap();
    let proxy = testkit::FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let kubeconfig = k.world.path().join("proxied.kubeconfig");
    proxy.access().write_kubeconfig(&kubeconfig, testkit::ADMIN).unwrap();
    k.kubeconfig = kubeconfig;

    k.world.commit(&[("main.tf", MODULE)], "module");
    let hook = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hook-token\nstringData:\n  token: {TOKEN}\n---\n\
         apiVersion: driftless.dev/v1alpha1\nkind: Receiver\nmetadata:\n  name: hook\nspec:\n  type: generic-hmac\n  \
         secretRef:\n    name: hook-token\n  resources:\n    - kind: GitRepository\n      name: app\n"
    );
    k.apply(&format!("{}---\n{hook}", git_repository("app", "main"))).await;
    let addr = format!("127.0.0.1:{}", free_port());
    k.start_controller(&[&format!("--receiver-addr={addr}")]);
    let receiver = k.wait_for("Receiver", "hook", "a published webhook path", LONG, |o| o["status"]["webhookPath"].is_string()).await;
    let path = receiver["status"]["webhookPath"].as_str().unwrap().to_string();
    let body = r#"{"ref":"main"}"#;

    // A burst of refused calls: guessed paths and forged signatures.
    let lists_before = proxy.request_counts().get("list receivers").copied().unwrap_or(0);
    let (a, p) = (addr.clone(), path.clone());
    let (answered, refused) = blocking(move || {
        let mut answered = Vec::new();
        loop {
            let reply = if answered.len() % 2 == 0 {
                request(&a, "POST", &format!("/hook/guess-{}", answered.len()), &[], Some(body))
            } else {
                signed(&a, &p, "forged", body)
            };
            if reply.status == 429 {
                return (answered, reply);
            }
            answered.push(reply.status);
            assert!(answered.len() <= 40, "no 429 after {} refused calls: {answered:?}", answered.len());
        }
    })
    .await;
    let lists = proxy.request_counts().get("list receivers").copied().unwrap_or(0) - lists_before;
    assert!(answered.iter().all(|s| matches!(s, 401 | 404)), "{answered:?}");
    assert!(answered.len() >= 20, "the budget allows 20 refused calls at once: {answered:?}");
    // The leader's status refresh lists Receivers every 10 s; the calls list none.
    assert!(lists <= 1, "{lists} lists of Receivers for {} calls", answered.len());
    assert!(refused.body.contains("too many refused calls from your address"), "{refused:?}");
    let retry_after: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{refused:?}"));
    let annotations = k.get("GitRepository", "app").await["metadata"]["annotations"].clone();
    assert!(annotations["driftless.dev/reconcile-requested-at"].is_null(), "refused calls request nothing: {annotations}");

    // After the wait, a valid call is accepted and asks for the reconcile.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (a, p) = (addr.clone(), path.clone());
    let reply = blocking(move || signed(&a, &p, TOKEN, body)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains(&format!("GitRepository/{}/app", k.ns.name)), "{reply:?}");
    let annotations = k.get("GitRepository", "app").await["metadata"]["annotations"].clone();
    assert!(annotations["driftless.dev/reconcile-requested-at"].is_string(), "{annotations}");
}
