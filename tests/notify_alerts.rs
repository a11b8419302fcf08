//! Alerts and Receivers end to end on the local store: real terraform makes real drift, the
//! real binary sends alerts to an HTTP endpoint this test runs on 127.0.0.1, and a signed
//! webhook makes the real `driftless run` fetch a new commit.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MODULE, World, objects};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One request the endpoint received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP endpoint on 127.0.0.1 that records every request and answers with the status
/// codes queued in `answers` (200 once they run out).
struct Endpoint {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

impl Endpoint {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (r, a) = (received.clone(), answers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                r.lock().unwrap().push(Received { path, headers, body });
                let status = {
                    let mut queue = a.lock().unwrap();
                    if queue.is_empty() { 200 } else { queue.remove(0) }
                };
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Self { port, received, answers }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The reasons of the alerts received so far, in order.
    fn reasons(&self) -> Vec<String> {
        self.received().iter().map(|r| r.json()["reason"].as_str().unwrap_or_default().to_string()).collect()
    }

    fn count(&self, reason: &str) -> usize {
        self.reasons().iter().filter(|r| *r == reason).count()
    }
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn provider_and_alert(endpoint: &Endpoint) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: webhook
stringData:
  token: hmac-shared-secret
---
apiVersion: driftless.dev/v1alpha1
kind: Provider
metadata:
  name: ops
spec:
  type: generic-hmac
  address: {}
  secretRef:
    name: webhook
---
apiVersion: driftless.dev/v1alpha1
kind: Alert
metadata:
  name: drift
spec:
  providerRef:
    name: ops
  eventSeverity: info
  eventSources:
    - kind: Terraform
      name: '*'
  inclusionList:
    - "drift"
  eventMetadata:
    env: test
"#,
        endpoint.url("/alerts")
    )
}

#[test]
fn one_alert_per_distinct_drift_none_once_acknowledged_and_one_when_resolved() {
    let Some(w) = World::new() else { return };
    let endpoint = Endpoint::start();
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  drift:\n    mode: detect\n    interval: 1h\n")).ok();
    w.apply(&provider_and_alert(&endpoint)).ok();
    let providers = w.driftless(&["get", "providers"]).ok().stdout;
    assert!(providers.contains("default/ops") && providers.contains("generic-hmac") && providers.contains("True"), "{providers}");
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(endpoint.count("PlanApplied"), 0, "the inclusion list keeps other events out: {:?}", endpoint.reasons());

    // Drift A (the file's content), seen by five checks: one alert.
    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    for _ in 0..5 {
        w.reconcile("app").ok();
    }
    assert_eq!(endpoint.count("DriftDetected"), 1, "{:?}", endpoint.reasons());
    let first = endpoint.received().into_iter().next().unwrap();
    assert_eq!(first.path, "/alerts");
    let signature = first.header("X-Signature").expect("X-Signature header");
    assert_eq!(signature, format!("sha256={}", hmac_hex("hmac-shared-secret", &first.body)), "body signed with the token");
    let alert = first.json();
    assert_eq!(alert["involvedObject"]["kind"], "Terraform");
    assert_eq!(alert["involvedObject"]["name"], "app");
    assert_eq!(alert["severity"], "error");
    assert_eq!(alert["metadata"]["env"], "test", "the Alert's eventMetadata travels along");
    let drift_a = w.get("terraform", "app")["status"]["drift"]["id"].as_str().unwrap().to_string();
    assert_eq!(alert["metadata"]["driftId"], drift_a.as_str());

    // Drift B (the file deleted): a changed drift alerts again.
    std::fs::remove_file(w.managed("main.txt")).unwrap();
    w.reconcile("app").ok();
    assert_eq!(endpoint.count("DriftDetected"), 2, "{:?}", endpoint.reasons());
    let drift_b = w.get("terraform", "app")["status"]["drift"]["id"].as_str().unwrap().to_string();
    assert_ne!(drift_a, drift_b);

    // Acknowledged: recorded with who, and no alert for B again, even after it clears and
    // comes back.
    w.driftless(&["drift", "ack", "app", &drift_a]).fails();
    let acked = w.driftless(&["drift", "ack", "app"]).ok().stdout;
    assert!(acked.contains(&drift_b), "{acked}");
    w.reconcile("app").ok();
    let acknowledged = &w.get("terraform", "app")["status"]["drift"]["acknowledged"];
    assert_eq!(acknowledged["driftId"], drift_b.as_str());
    assert!(!acknowledged["by"].as_str().unwrap_or_default().is_empty(), "{acknowledged}");
    assert_eq!(endpoint.count("DriftAcknowledged"), 1, "{:?}", endpoint.reasons());
    std::fs::write(w.managed("main.txt"), "hello").unwrap();
    w.reconcile("app").ok();
    w.reconcile("app").ok();
    assert_eq!(endpoint.count("DriftResolved"), 1, "{:?}", endpoint.reasons());
    std::fs::remove_file(w.managed("main.txt")).unwrap();
    w.reconcile("app").ok();
    assert_eq!(endpoint.count("DriftDetected"), 2, "an acknowledged drift that recurs stays quiet: {:?}", endpoint.reasons());
    assert_eq!(w.get("terraform", "app")["status"]["drift"]["detected"], true);
    // ...but a drift that differs from the acknowledged one alerts.
    std::fs::write(w.managed("main.txt"), "edited again").unwrap();
    w.reconcile("app").ok();
    assert_eq!(endpoint.count("DriftDetected"), 3, "{:?}", endpoint.reasons());

    // The history keeps the checks and the acknowledgement, newest last.
    let history = w.get("terraform", "app")["status"]["history"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = history.iter().filter_map(|h| h["action"].as_str()).collect();
    assert!(actions.contains(&"DriftChecked") && actions.contains(&"DriftAcknowledged"), "{actions:?}");
    assert!(history.len() <= 20);
    let body_text: String = endpoint.received().iter().map(|r| String::from_utf8_lossy(&r.body).to_string()).collect();
    assert!(!body_text.contains("hmac-shared-secret"), "the token never travels in a payload");
}

#[test]
fn a_failing_provider_says_why_in_its_status_and_never_blocks_the_reconcile() {
    let Some(w) = World::new() else { return };
    let endpoint = Endpoint::start();
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.apply(&provider_and_alert(&endpoint).replace("    - \"drift\"", "    - \".*\"")).ok();
    // The endpoint fails every attempt of the first delivery (500: retried with backoff).
    endpoint.answers.lock().unwrap().extend([500; 100]);
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "a failing endpoint does not fail the reconcile");
    let attempts = endpoint.received().len();
    assert!(attempts >= 4, "500 is retried: {attempts} requests");
    let provider = w.get("provider", "ops");
    let ready = provider["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["status"], "False", "{provider}");
    assert_eq!(ready["reason"], "DeliveryFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("500"), "{message}");
    assert!(!message.contains("/alerts"), "the address path may be a secret: {message}");

    // `notify test` proves it works again, and the Provider is Ready.
    endpoint.answers.lock().unwrap().clear();
    let out = w.driftless(&["notify", "test", "ops"]).ok().stdout;
    assert!(out.contains("delivered"), "{out}");
    let last = endpoint.received().last().cloned().unwrap();
    assert_eq!(last.json()["reason"], "TestNotification");
    let provider = w.get("provider", "ops");
    assert!(provider["status"]["lastDeliveredAt"].is_string(), "{provider}");
    let ready = provider["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["status"], "True");

    // A misconfigured Alert says what to fix.
    w.apply(
        "apiVersion: driftless.dev/v1alpha1\nkind: Alert\nmetadata:\n  name: typo\nspec:\n  providerRef:\n    name: nope\n  eventSources:\n    - kind: Terraform\n      name: app\n",
    )
    .ok();
    let alerts = w.driftless(&["get", "alerts"]).ok().stdout;
    assert!(alerts.contains("Provider default/nope not found"), "{alerts}");
}

/// A GitHub push webhook, signed as GitHub signs it.
fn github_push(port: u16, path: &str, secret: &str, body: &[u8]) -> (u16, String) {
    let signature = format!("sha256={}", hmac_hex(secret, body));
    post(port, path, &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &signature)], body)
}

fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
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

/// The value of header `name` in a raw HTTP response.
fn header_of<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

#[test]
fn a_signed_github_push_fetches_the_new_commit_and_a_bad_signature_changes_nothing() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    // An interval of an hour: only the webhook can make the new commit land soon.
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.apply(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: github-webhook
stringData:
  token: push-secret
---
apiVersion: driftless.dev/v1alpha1
kind: Receiver
metadata:
  name: github
spec:
  type: github
  events: ["push"]
  secretRef:
    name: github-webhook
  resources:
    - kind: GitRepository
      name: app
"#,
    )
    .ok();
    let receivers = w.driftless(&["get", "receivers"]).ok().stdout;
    let path = receivers.split_whitespace().find(|w| w.starts_with("/hook/")).expect("a webhook path").to_string();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut run = std::process::Command::new(&w.tools.driftless);
    run.arg("--store").arg(w.store()).args(["run", "--receiver-addr", &format!("127.0.0.1:{port}")]);
    w.env(&mut run);
    let mut child = run.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let revision = || w.get("gitrepository", "app")["status"]["artifact"]["revision"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while revision().is_empty() || post(port, "/hook/none", &[], b"{}").0 == 0 {
        assert!(Instant::now() < deadline, "the loop fetched nothing and served nothing");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = revision();
    let commit = w.commit(&[("README.md", "second commit")], "second");
    let body = br#"{"ref":"refs/heads/main"}"#;

    assert_eq!(post(port, "/hook/none", &[], body).0, 404, "unknown path");
    assert_eq!(github_push(port, &path, "wrong-secret", body).0, 401, "bad signature");
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(github_push(port, &path, "push-secret", &huge).0, 413, "oversized body");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(revision(), before, "a refused call triggers nothing");
    let annotations = &w.get("gitrepository", "app")["metadata"]["annotations"];
    assert!(annotations.get("driftless.dev/reconcile-requested-at").is_none(), "{annotations}");

    // A burst of refused calls (guessed paths, forged signatures) spends this address's
    // budget: then every call of it waits, even a valid one, until Retry-After has passed.
    let mut answered = Vec::new();
    let refused = loop {
        let (status, response) = if answered.len() % 2 == 0 {
            post(port, &format!("/hook/guess-{}", answered.len()), &[], body)
        } else {
            github_push(port, &path, "wrong-secret", body)
        };
        if status == 429 {
            break response;
        }
        answered.push(status);
        assert!(answered.len() <= 40, "no 429 after {} refused calls: {answered:?}", answered.len());
    };
    assert!(answered.iter().all(|s| matches!(s, 401 | 404)), "{answered:?}");
    assert!(refused.contains("too many refused calls from your address"), "{refused}");
    let retry_after: u64 = header_of(&refused, "retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{refused}"));
    assert!((1..=2).contains(&retry_after), "{refused}");
    assert_eq!(github_push(port, &path, "push-secret", body).0, 429, "a valid call from this address waits too");
    std::thread::sleep(Duration::from_secs(retry_after));

    let (status, response) = github_push(port, &path, "push-secret", body);
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("GitRepository/default/app"), "{response}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !revision().contains(&commit) {
        assert!(Instant::now() < deadline, "the push did not fetch {commit}: still {}", revision());
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn alerts_fire_for_helm_charts_and_an_alert_on_a_kind_driftless_lacks_says_so() {
    let Some(w) = World::new() else { return };
    let endpoint = Endpoint::start();
    let chart = "apiVersion: v2\nname: app\nversion: 1.0.0\n";
    w.commit(&[("charts/app/Chart.yaml", chart), ("charts/app/templates/cm.yaml", "kind: ConfigMap\n")], "chart");
    let alert = provider_and_alert(&endpoint)
        .replace("    - kind: Terraform\n", "    - kind: HelmChart\n")
        .replace("    - \"drift\"\n", "    - \"artifact\"\n");
    w.apply(&alert).ok();
    let objects = format!(
        "{}---\napiVersion: driftless.dev/v1alpha1\nkind: HelmChart\nmetadata:\n  name: app\nspec:\n  chart: ./charts/app\n  interval: 1h\n  sourceRef:\n    kind: GitRepository\n    name: repo\n",
        common::git_repository("repo", "main")
    );
    w.apply(&objects).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.get("helmchart", "app")["status"]["artifact"]["revision"], "1.0.0");
    let alerts: Vec<Value> = endpoint.received().iter().map(Received::json).collect();
    let chart_alert = alerts.iter().find(|a| a["involvedObject"]["kind"] == "HelmChart").expect("an alert about the HelmChart");
    assert_eq!(chart_alert["reason"], "NewArtifact");
    assert_eq!(chart_alert["involvedObject"]["name"], "app");

    // Flux's HelmRelease is not a kind driftless reconciles yet: the Alert says so instead of
    // being Ready and never firing.
    let helm_release = provider_and_alert(&endpoint)
        .replace("  name: drift\n", "  name: releases\n")
        .replace("    - kind: Terraform\n", "    - kind: HelmRelease\n");
    w.apply(&helm_release).ok();
    w.driftless(&["run", "--once"]).ok();
    let ready = w.condition_of("alert", "releases", "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("spec.eventSources[0].kind") && message.contains("HelmRelease"), "{message}");
}
