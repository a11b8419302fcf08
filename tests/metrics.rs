//! The metrics and probes endpoint over real HTTP: /metrics in OpenMetrics text, /healthz,
//! /readyz before and after the controller is ready, and a graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use driftless::controller::metrics::{Metrics, RunOutcome};
use driftless::controller::probes::{Readiness, serve};
use driftless::dispatch::Operation;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP/1.1 GET on `stream` and reads the reply (by Content-Length), leaving the
/// connection open.
async fn get_on(stream: &mut BufReader<TcpStream>, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).await.expect("send");
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("status line");
    let status = line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.expect("header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or_else(|| panic!("header {header:?}"));
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut reply = Reply { status, headers, body: String::new() };
    let length: usize = reply.header("content-length").and_then(|n| n.parse().ok()).expect("a Content-Length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.expect("body");
    reply.body = String::from_utf8(body).expect("UTF-8 body");
    reply
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    get_on(&mut BufReader::new(stream), path).await
}

struct Server {
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (metrics, readiness) = (Metrics::new(), Readiness::new());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, metrics.clone(), readiness.clone(), async move {
        let _ = stop.await;
    }));
    Server { addr, metrics, readiness, shutdown, task }
}

#[tokio::test]
async fn metrics_are_served_as_openmetrics_text() {
    let server = start().await;
    server.metrics.reconcile_started("Terraform").succeeded();
    server.metrics.run_finished("Terraform", Operation::Apply, RunOutcome::OomKilled);
    server.metrics.set_queue_depth("Terraform", 4);
    server.metrics.set_drifted("Terraform", 1);

    let reply = get(server.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    for series in [
        "driftless_reconcile_total{kind=\"Terraform\",result=\"success\"} 1\n",
        "driftless_reconcile_duration_seconds_count{kind=\"Terraform\"} 1\n",
        "driftless_runs_total{kind=\"Terraform\",operation=\"apply\",outcome=\"oom-killed\"} 1\n",
        "driftless_queue_depth{kind=\"Terraform\"} 4\n",
        "driftless_reconciles_in_flight{kind=\"Terraform\"} 0\n",
        "driftless_drifted_objects{kind=\"Terraform\"} 1\n",
    ] {
        assert!(reply.body.contains(series), "{series} in:\n{}", reply.body);
    }
    assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
    assert_eq!(get(server.addr, "/nothing-here").await.status, 404);
    let _ = server.shutdown.send(());
}

#[tokio::test]
async fn healthz_answers_at_once_and_readyz_only_once_ready() {
    let server = start().await;
    let health = get(server.addr, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let before = get(server.addr, "/readyz").await;
    assert_eq!((before.status, before.body.as_str()), (503, "not ready: starting\n"));
    server.readiness.set_not_ready("waiting for caches to sync");
    let syncing = get(server.addr, "/readyz").await;
    assert_eq!((syncing.status, syncing.body.as_str()), (503, "not ready: waiting for caches to sync\n"));

    server.readiness.set_ready();
    let ready = get(server.addr, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok\n"));
    let _ = server.shutdown.send(());
}

#[tokio::test]
async fn shutdown_stops_the_server_even_with_an_idle_keep_alive_connection() {
    let server = start().await;
    // A scraper keeps its connection open between scrapes.
    let mut scraper = BufReader::new(TcpStream::connect(server.addr).await.expect("connect"));
    assert_eq!(get_on(&mut scraper, "/healthz").await.status, 200);
    assert_eq!(get_on(&mut scraper, "/metrics").await.status, 200);

    let _ = server.shutdown.send(());
    let served = tokio::time::timeout(Duration::from_secs(5), server.task).await.expect("server stops");
    served.expect("server task").expect("server result");
    let mut rest = Vec::new();
    // End of stream or a reset: either way closed, with nothing more sent.
    let _ = tokio::time::timeout(Duration::from_secs(5), scraper.read_to_end(&mut rest)).await.expect("connection closed");
    assert!(rest.is_empty(), "unexpected bytes after shutdown: {rest:?}");
    assert!(TcpStream::connect(server.addr).await.is_err(), "still accepting after shutdown");
}
