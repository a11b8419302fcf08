//! Benchmark: the S3 backend against raw aws-sdk-s3 calls in the same run, on moto's server
//! (installed by scripts/setup-tools.sh) on 127.0.0.1: write and read of a 10 MiB state and
//! upload of a 50 MiB plan (plan plus its meta), each beside a bare put/get of the same bytes.
//! A locked state write is what terraform waits for (lock check + put); the server-side copy
//! into `history/` runs after it and is awaited before the lock is released, so it is timed
//! separately and also reported added to the write.
//!
//! Run with `scripts/bench.sh` or `cargo bench --bench s3`. Prints medians and ratios; the
//! target (ratio <= 1.2) is reported, not asserted: timing on a shared 2-core machine is not
//! a pass/fail signal. Absolute figures are moto's (a Python server), not S3's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use driftless::backend::{LockInfo, PlanMeta, PlanStore, S3Backend, S3Connection, S3Credentials, S3Location, StateKey, StateStore};
use driftless::dispatch::ObjectKey;

const ROUNDS: usize = 11;
const STATE_SIZE: usize = 10 << 20;
const PLAN_SIZE: usize = 50 << 20;
const BUCKET: &str = "bench";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto(log: &std::path::Path) -> (Moto, u16) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("DRIFTLESS_TOOLS").map(PathBuf::from).unwrap_or_else(|| root.join(".tools"));
    let moto = tools.join("bin/moto_server");
    assert!(moto.exists(), "run scripts/setup-tools.sh first ({} is missing)", moto.display());
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let guard = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text.lines().find_map(|l| l.split("Running on http://127.0.0.1:").nth(1)).and_then(|p| p.trim().parse().ok()) {
            return (guard, port);
        }
        assert!(Instant::now() < deadline, "moto did not start: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A state-like JSON document of `size` bytes (terraform puts `serial` near the top).
fn state_bytes(size: usize) -> Vec<u8> {
    let mut s = String::from(
        "{\n  \"version\": 4,\n  \"terraform_version\": \"1.0.3\",\n  \"serial\": 7,\n  \"lineage\": \"bench\",\n  \"resources\": [\n",
    );
    let mut i = 0u64;
    while s.len() < size - 64 {
        s.push_str(&format!(
            "    {{\"type\": \"null_resource\", \"name\": \"r{i}\", \"id\": \"{:016x}\"}},\n",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
        i += 1;
    }
    s.push_str("    {}\n  ]\n}\n");
    s.into_bytes()
}

async fn raw_put(c: &Client, key: &str, body: &[u8]) {
    c.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body.to_vec())).send().await.unwrap();
}

async fn raw_get(c: &Client, key: &str) -> Vec<u8> {
    c.get_object().bucket(BUCKET).key(key).send().await.unwrap().body.collect().await.unwrap().into_bytes().to_vec()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, bytes: usize, backend: Duration, raw: Duration) {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "  {what:<36} backend {:>7.1} ms ({:>6.1} MiB/s)   raw {:>7.1} ms ({:>6.1} MiB/s)   ratio {:.2}x (target <= 1.2x)",
        ms(backend),
        mib / backend.as_secs_f64(),
        ms(raw),
        mib / raw.as_secs_f64(),
        backend.as_secs_f64() / raw.as_secs_f64()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (_moto, port) = start_moto(&dir.path().join("moto.log"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let location = S3Location {
            bucket: BUCKET.into(),
            key_prefix: "bench".into(),
            connection: S3Connection {
                region: Some("us-east-1".into()),
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                force_path_style: true,
                credentials: Some(S3Credentials {
                    access_key_id: "AKIABENCH".into(),
                    secret_access_key: "bench-secret".into(),
                    session_token: None,
                }),
                anonymous: false,
            },
        };
        // One client for both sides: the same connection pool, the same SDK settings.
        let client = driftless::backend::s3::connect(&location.connection).await;
        client.create_bucket().bucket(BUCKET).send().await.unwrap();
        let backend = S3Backend::with_client(client.clone(), location, Duration::from_secs(3600));
        let object = ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "bench".into() };
        let key = StateKey { object: object.clone(), state_name: "default".into(), secret_suffix: None };
        let lock = LockInfo { id: "bench-lock".into(), who: "bench".into(), ..Default::default() };
        backend.lock(&key, &lock).await.unwrap();

        let state = state_bytes(STATE_SIZE);
        let plan: Vec<u8> = (0..PLAN_SIZE).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let meta = PlanMeta {
            id: "plan-bench".into(),
            digest: driftless::backend::sha256_digest(&plan),
            created_at: jiff::Timestamp::now().to_string(),
            source_revision: "main@sha1:bench".into(),
            rendering: "Plan: 1000 to add, 0 to change, 0 to destroy.\n".repeat(20),
            state_address: None,
            engine: None,
        };
        // Warm up both paths (connections, moto's code paths).
        backend.put(&key, &state, Some("bench-lock")).await.unwrap();
        raw_put(&client, "raw/state", &state).await;
        raw_get(&client, "raw/state").await;

        backend.flush_history().await.unwrap();
        let (mut sw, mut swh, mut rw, mut sr, mut rr, mut pw, mut rpw, mut pr, mut rpr, mut lc) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        // Each pair runs in both orders (alternating rounds), so neither side always meets
        // moto right after the same kind of request.
        macro_rules! pair {
            ($raw_first:expr, $backend:block, $raw:block) => {
                if $raw_first {
                    $raw;
                    $backend;
                } else {
                    $backend;
                    $raw;
                }
            };
        }
        for round in 0..ROUNDS {
            let raw_first = round % 2 == 1;
            pair!(
                raw_first,
                {
                    let t = Instant::now();
                    backend.put(&key, &state, Some("bench-lock")).await.unwrap();
                    sw.push(t.elapsed());
                    backend.flush_history().await.unwrap();
                    swh.push(t.elapsed());
                    // The one request a locked write adds: reading the lock to check its id.
                    let t = Instant::now();
                    backend.lock_info(&key).await.unwrap().unwrap();
                    lc.push(t.elapsed());
                },
                {
                    let t = Instant::now();
                    raw_put(&client, "raw/state", &state).await;
                    rw.push(t.elapsed());
                }
            );
            pair!(
                raw_first,
                {
                    let t = Instant::now();
                    let got = backend.get(&key).await.unwrap().unwrap();
                    sr.push(t.elapsed());
                    assert_eq!(got.len(), state.len());
                },
                {
                    let t = Instant::now();
                    raw_get(&client, "raw/state").await;
                    rr.push(t.elapsed());
                }
            );
            pair!(
                raw_first,
                {
                    let t = Instant::now();
                    backend.put_plan(&object, &meta, &plan).await.unwrap();
                    pw.push(t.elapsed());
                },
                {
                    let t = Instant::now();
                    raw_put(&client, "raw/plan", &plan).await;
                    rpw.push(t.elapsed());
                }
            );
            pair!(
                raw_first,
                {
                    let t = Instant::now();
                    let (_, bytes) = backend.get_plan(&object, "plan-bench").await.unwrap();
                    pr.push(t.elapsed());
                    assert_eq!(bytes.len(), plan.len());
                },
                {
                    let t = Instant::now();
                    raw_get(&client, "raw/plan").await;
                    rpr.push(t.elapsed());
                }
            );
        }
        backend.unlock(&key, "bench-lock").await.unwrap();
        println!("S3 backend vs raw aws-sdk-s3 on moto {port} (127.0.0.1), median of {ROUNDS} rounds");
        report("state write 10 MiB (terraform waits)", STATE_SIZE, median(sw), median(rw.clone()));
        report("  + history copy (before unlock)", STATE_SIZE, median(swh), median(rw));
        println!("    the lock check inside a locked write (one GET of the lock object): {:.1} ms", ms(median(lc)));
        report("state read 10 MiB", STATE_SIZE, median(sr), median(rr));
        report("plan upload 50 MiB", PLAN_SIZE, median(pw), median(rpw));
        report("plan read 50 MiB (digest checked)", PLAN_SIZE, median(pr), median(rpr));
    });
}
