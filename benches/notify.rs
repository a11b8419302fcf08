//! Benchmark: alert fan-out. 1,000 objects each drift and are checked five times (the same
//! drift every time), so the drift transition emits one `DriftDetected` per object and
//! suppresses 4,000 repeats; every emitted event goes through the real notifier (Alert
//! matching, endpoint resolution from the Provider's Secret, HMAC signing, HTTP delivery) to
//! an endpoint in this process that answers at once.
//!
//! Reported: the time from the first check to the last delivery, per event, and, as the
//! baseline measured in the same process, the same number of requests sent one after the
//! other straight through `deliver` (no matching, no routing, no parallelism): the ratio
//! says whether matching and routing cost more than running deliveries side by side saves.
//! A second baseline sends them with a new HTTP client each (as before clients were kept),
//! which shows what reusing connections saves. Target: fan-out of 1,000 drift events under
//! 1 s, excluding the receiver's own time (near zero here). Figures are printed, never
//! asserted.
//! Run with `cargo bench --bench notify` (`DRIFTLESS_BENCH_OBJECTS` scales it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use driftless::api::{DriftObject, DriftStatus};
use driftless::notify::{HttpClients, Notification, Notifier, NotifierSettings, RetryPolicy, deliver};
use driftless::reconcile::drift::{Finding, observe};
use driftless::store::{Event, EventLog, LocalStore, ObjectStore};

fn objects_yaml(address: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hook, namespace: default}}\nstringData: {{token: bench-token}}\n---\n\
apiVersion: driftless.dev/v1alpha1\nkind: Provider\nmetadata: {{name: ops, namespace: default}}\nspec: {{type: generic-hmac, address: '{address}', secretRef: {{name: hook}}}}\n---\n\
apiVersion: driftless.dev/v1alpha1\nkind: Alert\nmetadata: {{name: drift, namespace: default}}\nspec:\n  providerRef: {{name: ops}}\n  eventSeverity: error\n  eventSources: [{{kind: Terraform, name: '*'}}]\n"
    )
}

async fn endpoint() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, count)
}

/// A notification for a direct delivery (the baselines).
fn direct(i: usize) -> Notification {
    let event = Event {
        time: "t".into(),
        kind: "Terraform".into(),
        namespace: "default".into(),
        name: format!("tf-{i}"),
        reason: "DriftDetected".into(),
        severity: driftless::store::Severity::Error,
        message: "m".into(),
        revision: None,
        plan_id: None,
        drift_id: None,
    };
    Notification { event, metadata: Default::default(), summary: None, review_url: None }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("DRIFTLESS_BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let (address, received) = endpoint().await;
    for doc in serde_yaml::Deserializer::from_str(&objects_yaml(&address)) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        match value["kind"].as_str().unwrap() {
            "Secret" => drop(store.apply(&serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(value).unwrap()).await.unwrap()),
            "Provider" => drop(store.apply(&serde_json::from_value::<driftless::api::Provider>(value).unwrap()).await.unwrap()),
            _ => drop(store.apply(&serde_json::from_value::<driftless::api::Alert>(value).unwrap()).await.unwrap()),
        }
    }
    let events = EventLog::new(dir.path().join("events.jsonl")).with_tap(std::sync::Arc::new(Notifier::start(
        store.clone(),
        NotifierSettings { review_url: Some("http://127.0.0.1:1".into()), ..Default::default() },
    )));

    let drift = [DriftObject {
        kind: "null_resource".into(),
        name: "null_resource.a".into(),
        action: "update".into(),
        fields: vec!["triggers".into()],
    }];
    let start = Instant::now();
    let mut statuses: Vec<Option<DriftStatus>> = vec![None; n];
    let mut emitted = 0usize;
    for _check in 0..5 {
        for (i, status) in statuses.iter_mut().enumerate() {
            let finding = Finding { objects: &drift, correction: Some("plan-x"), corrected: false, resolved_message: "resolved" };
            let (next, notices) = observe(status.as_ref(), &finding, None, "2026-11-26T00:00:00Z");
            *status = Some(next);
            for notice in notices {
                emitted += 1;
                events.emit(&Event {
                    time: "2026-11-26T00:00:00Z".into(),
                    kind: "Terraform".into(),
                    namespace: "default".into(),
                    name: format!("tf-{i}"),
                    reason: notice.reason.into(),
                    severity: notice.severity,
                    message: notice.message,
                    revision: Some("main@sha1:0123456789abcdef0123456789abcdef01234567".into()),
                    plan_id: notice.plan_id,
                    drift_id: notice.drift_id,
                });
            }
        }
    }
    events.flush(Duration::from_secs(120)).await;
    let fan_out = start.elapsed();
    let delivered = received.load(Ordering::SeqCst);

    // Baseline: the same number of deliveries, sequential, straight through `deliver`.
    let provider = store.get::<driftless::api::Provider>("default", "ops").await.unwrap().unwrap();
    let endpoint = driftless::notify::notifier::endpoint(&store, &provider).await.unwrap().unwrap();
    let clients = HttpClients::default();
    let before = received.load(Ordering::SeqCst);
    let base_start = Instant::now();
    for i in 0..n {
        deliver(&clients, &endpoint, &direct(i), &RetryPolicy::default()).await.unwrap();
    }
    let baseline = base_start.elapsed();
    let baseline_sent = received.load(Ordering::SeqCst) - before;

    // The same, with a new HTTP client per delivery (a TCP connection each): what keeping
    // clients saves.
    let fresh_start = Instant::now();
    for i in 0..n {
        deliver(&HttpClients::default(), &endpoint, &direct(i), &RetryPolicy::default()).await.unwrap();
    }
    let fresh = fresh_start.elapsed();

    println!("alert fan-out: {n} objects x 5 checks of the same drift");
    println!("  events emitted:        {emitted} (repeats suppressed: {})", n * 5 - emitted);
    println!("  alerts delivered:      {delivered}");
    println!(
        "  fan-out total:         {:.3} s ({:.3} ms per alert)",
        fan_out.as_secs_f64(),
        fan_out.as_secs_f64() * 1000.0 / delivered.max(1) as f64
    );
    println!("  baseline, sequential:  {:.3} s for {baseline_sent} direct deliveries", baseline.as_secs_f64());
    println!("  ratio fan-out/baseline: {:.2}", fan_out.as_secs_f64() / baseline.as_secs_f64());
    println!(
        "  sequential, a new client per delivery: {:.3} s (ratio to kept clients: {:.2})",
        fresh.as_secs_f64(),
        fresh.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("  target: < 1 s for 1,000 drift events: {}", if fan_out < Duration::from_secs(1) { "met" } else { "NOT met" });
}
