//! Benchmark: the review page's overview over 1,000 objects of a local store (half of them
//! drifted, each with a 10-entry history), served by the real `driftless review` binary.
//!
//! Reports the server's own time per request (its `Server-Timing` header: from the request
//! reaching the router to the response being ready) and the client's wall time, median and
//! p95, for `GET /` and `GET /api/objects` polled as an open page does; the first request,
//! which lists the store itself; and, as the baseline measured in the same process, listing
//! the same objects from the store (`LocalStore::list` of both kinds). While a page is open
//! the server lists once a second in the background and requests read that snapshot, so a
//! poll costs rendering only. The target (overview under 100 ms) is reported, not asserted:
//! timing on a shared machine is not a pass/fail signal.
//!
//! Run with `cargo bench --bench review` (`scripts/bench.sh review`). Scale it with
//! `DRIFTLESS_BENCH_OBJECTS` (default 1000) and `DRIFTLESS_BENCH_ROUNDS` (default 40).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use driftless::api::{
    ConditionStatus, Conditions, DriftObject, DriftStatus, HistoryEntry, Kustomization, PlanStatus, PlanSummary, Terraform,
    TerraformStatus, condition_type as ct,
};
use driftless::store::{LocalStore, ObjectStore};

const TARGET: Duration = Duration::from_millis(100);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One Terraform as a reconciler would have left it: applied, checked for drift, and
/// (`drifted`) with a drift of three resources and its correction pending.
fn object(i: usize, drifted: bool) -> Terraform {
    let mut tf: Terraform = serde_json::from_value(serde_json::json!({
        "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
        "metadata": { "name": format!("app-{i:04}"), "namespace": format!("team-{:02}", i % 10) },
        "spec": { "sourceRef": { "kind": "GitRepository", "name": "infra" }, "path": "./", "interval": "1h",
                  "drift": { "mode": "detect", "interval": "10m" } }
    }))
    .unwrap();
    let now = "2026-01-01T00:00:00Z".to_string();
    let mut status = TerraformStatus::default();
    let revision = format!("main@sha1:{:040x}", i);
    status.common.last_applied_revision = Some(revision.clone());
    status.common.last_attempted_revision = Some(revision.clone());
    let plan = format!("plan-{:07x}-{:010x}", i, i * 7919);
    status.common.plan = Some(PlanStatus {
        id: plan.clone(),
        created_at: now.clone(),
        source_revision: revision,
        summary: PlanSummary { add: 3, change: 1, destroy: 0 },
        pending: drifted,
        corrects_drift: drifted,
        ..Default::default()
    });
    status.set_condition(
        ct::READY,
        ConditionStatus::True,
        "Succeeded",
        "applied plan (3 to add, 1 to change, 0 to destroy)",
        Some(1),
        &now,
    );
    let objects: Vec<DriftObject> = (0..3)
        .map(|r| DriftObject {
            kind: "aws_security_group".into(),
            name: format!("aws_security_group.sg_{r}"),
            action: "update".into(),
            fields: vec!["ingress".into(), "tags.owner".into()],
        })
        .collect();
    status.common.drift = Some(if drifted {
        status.set_condition(ct::DRIFTED, ConditionStatus::True, "DriftDetected", "3 resources changed outside driftless", Some(1), &now);
        DriftStatus {
            detected: true,
            id: Some(format!("drift-{i:08x}")),
            detected_at: Some(now.clone()),
            last_checked_at: Some(now.clone()),
            summary: "3 changed outside driftless: aws_security_group.sg_0, aws_security_group.sg_1, aws_security_group.sg_2".into(),
            objects,
            plan_id: Some(plan.clone()),
            acknowledged: None,
        }
    } else {
        DriftStatus { detected: false, last_checked_at: Some(now.clone()), summary: "no drift".into(), ..Default::default() }
    });
    for h in 0..10 {
        status.common.record(HistoryEntry {
            time: format!("2025-12-{:02}T00:00:00Z", h + 1),
            action: "DriftChecked".into(),
            plan_id: Some(plan.clone()),
            message: format!("check {h}"),
            ..Default::default()
        });
    }
    tf.status = Some(status);
    tf
}

/// A request on a fresh connection; returns the server's own time and the wall time.
fn get(addr: &str, path: &str, cookie: &str) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let wall = start.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", text.lines().next().unwrap_or_default());
    let server = text
        .lines()
        .find_map(|l| l.strip_prefix("server-timing: app;dur="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .expect("a Server-Timing header");
    (server, wall, raw.len())
}

fn main() {
    let count = env_usize("DRIFTLESS_BENCH_OBJECTS", 1000);
    let rounds = env_usize("DRIFTLESS_BENCH_ROUNDS", 40);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..count {
            store.apply(&object(i, i % 2 == 0)).await.unwrap();
        }
    });
    println!(
        "review page benchmark: {count} Terraform objects ({} drifted), written in {:.1} s",
        count.div_ceil(2),
        started.elapsed().as_secs_f64()
    );

    // Baseline: what every overview request starts with, the store's list of both kinds.
    let mut baseline = Vec::new();
    runtime.block_on(async {
        for _ in 0..rounds {
            let start = Instant::now();
            let t: Vec<Terraform> = store.list().await.unwrap();
            let k: Vec<Kustomization> = store.list().await.unwrap();
            baseline.push(start.elapsed());
            assert_eq!(t.len() + k.len(), count);
        }
    });

    // A local store names its runner; this benchmark takes no action, so none ever starts:
    // without a runner beside the binary (`scripts/bench.sh` builds one), any file will do.
    let driftless = std::path::PathBuf::from(env!("CARGO_BIN_EXE_driftless"));
    let beside = driftless.with_file_name("driftless-runner");
    let runner = if beside.is_file() { beside } else { driftless.clone() };
    let log = dir.path().join("review.log");
    let mut child = Command::new(&driftless)
        .arg("--store")
        .arg(dir.path())
        .arg("review")
        .env("DRIFTLESS_LOG", "warn")
        .env("DRIFTLESS_RUNNER", &runner)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut link = String::new();
    stdout.read_line(&mut link).unwrap();
    let rest = link
        .trim()
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("the login link first; stderr: {}", std::fs::read_to_string(&log).unwrap_or_default()));
    let (addr, login) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /{login} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let cookie =
        reply.lines().find_map(|l| l.strip_prefix("set-cookie: ")).and_then(|c| c.split(';').next()).expect("a session cookie").to_string();

    let (cold, cold_wall, _) = get(addr, "/", &cookie);

    println!();
    println!("{:<22} {:>12} {:>12} {:>12} {:>12} {:>10}", "", "median", "p95", "wall median", "wall p95", "bytes");
    let base_median = percentile(&baseline, 0.5);
    println!("{:<22} {:>12} {:>12}", "store list (baseline)", ms(base_median), ms(percentile(&baseline, 0.95)));
    println!(
        "{:<22} {:>12} {:>12} {:>12}   (lists the store; ratio to baseline {:.2})",
        "GET / first request",
        ms(cold),
        "",
        ms(cold_wall),
        cold.as_secs_f64() / base_median.as_secs_f64()
    );
    let mut worst = Duration::ZERO;
    for (label, path) in [("GET /", "/"), ("GET /api/objects", "/api/objects"), ("GET /?state=Drifted", "/?state=Drifted")] {
        for _ in 0..3 {
            get(addr, path, &cookie);
        }
        let (mut server, mut wall, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..rounds {
            // An open page polls every 2 s; a tenth of that keeps the run short and still
            // lets the background lists run between (and sometimes during) requests.
            std::thread::sleep(Duration::from_millis(200));
            let (s, w, b) = get(addr, path, &cookie);
            server.push(s);
            wall.push(w);
            bytes = b;
        }
        let median = percentile(&server, 0.5);
        worst = worst.max(percentile(&server, 0.95));
        println!(
            "{label:<22} {:>12} {:>12} {:>12} {:>12} {:>10}   ratio to baseline {:.2}",
            ms(median),
            ms(percentile(&server, 0.95)),
            ms(percentile(&wall, 0.5)),
            ms(percentile(&wall, 0.95)),
            bytes,
            median.as_secs_f64() / base_median.as_secs_f64()
        );
    }
    println!();
    println!("target: overview under {} at p95 -> {} ({})", ms(TARGET), if worst < TARGET { "met" } else { "missed" }, ms(worst));
    let _ = child.kill();
    let _ = child.wait();
}
