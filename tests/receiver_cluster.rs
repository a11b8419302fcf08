//! Receivers served by the real controller (`--receiver-addr`) on the testkit's real API
//! server, through the testkit's proxy, which counts the controller's API requests: an
//! unauthenticated webhook call costs no list of Receivers (they come from a watch), a burst
//! of refused calls gets 429 with Retry-After, and a valid call after that wait is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::kube::KubeWorld;
use common::{MODULE, git_repository};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LONG: Duration = Duration::from_secs(120);
const TOKEN: &str = "receiver-test-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One POST; the status and the raw response.
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

/// A generic-hmac call signed with `key`.
fn signed(addr: &str, path: &str, key: &str, body: &[u8]) -> (u16, String) {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    post(addr, path, &[("X-Signature", &signature)], body)
}

fn header_of<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
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
    let body: &'static [u8] = br#"{"ref":"main"}"#;

    // A burst of refused calls: guessed paths and forged signatures.
    let lists_before = proxy.request_counts().get("list receivers").copied().unwrap_or(0);
    let (a, p) = (addr.clone(), path.clone());
    let (answered, refused) = blocking(move || {
        let mut answered = Vec::new();
        loop {
            let (status, response) = if answered.len() % 2 == 0 {
                post(&a, &format!("/hook/guess-{}", answered.len()), &[], body)
            } else {
                signed(&a, &p, "forged", body)
            };
            if status == 429 {
                return (answered, response);
            }
            answered.push(status);
            assert!(answered.len() <= 40, "no 429 after {} refused calls: {answered:?}", answered.len());
        }
    })
    .await;
    let lists = proxy.request_counts().get("list receivers").copied().unwrap_or(0) - lists_before;
    assert!(answered.iter().all(|s| matches!(s, 401 | 404)), "{answered:?}");
    assert!(answered.len() >= 20, "the budget allows 20 refused calls at once: {answered:?}");
    // The leader's status refresh lists Receivers every 10 s; the calls list none.
    assert!(lists <= 1, "{lists} lists of Receivers for {} calls", answered.len());
    assert!(refused.contains("too many refused calls from your address"), "{refused}");
    let retry_after: u64 = header_of(&refused, "retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{refused}"));
    let annotations = k.get("GitRepository", "app").await["metadata"]["annotations"].clone();
    assert!(annotations["driftless.dev/reconcile-requested-at"].is_null(), "refused calls request nothing: {annotations}");

    // After the wait, a valid call is accepted and asks for the reconcile.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (a, p) = (addr.clone(), path.clone());
    let (status, response) = blocking(move || signed(&a, &p, TOKEN, body)).await;
    assert_eq!(status, 200, "{response}");
    assert!(response.contains(&format!("GitRepository/{}/app", k.ns.name)), "{response}");
    let annotations = k.get("GitRepository", "app").await["metadata"]["annotations"].clone();
    assert!(annotations["driftless.dev/reconcile-requested-at"].is_string(), "{annotations}");
}
