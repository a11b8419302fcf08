//! S3 for tests: moto's server (installed by scripts/setup-tools.sh into `.tools/`) on
//! 127.0.0.1, optionally behind a proxy that can cut the connection, and helpers to read and
//! write objects with the same SDK driftless uses.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use driftless::backend::{S3Connection, S3Credentials, S3Location};

/// Credentials moto accepts (it checks none unless started with `with_auth`).
pub const ACCESS_KEY: &str = "AKIADRIFTLESSTEST";
pub const SECRET_KEY: &str = "driftless-test-secret-key-value";

pub fn moto_binary() -> Option<PathBuf> {
    let path = super::tools_dir().join("bin/moto_server");
    if path.exists() { Some(path) } else { super::missing(&format!("moto_server ({})", path.display())) }
}

/// A moto server process. Requests are recorded, so a restart replays them and keeps the
/// data, as a real S3 keeps it across a restart of its frontends.
pub struct Moto {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    auth: bool,
}

impl Moto {
    pub fn start() -> Option<Moto> {
        Self::start_inner(false)
    }

    /// A server that checks credentials: every access key is unknown to it.
    pub fn with_auth() -> Option<Moto> {
        Self::start_inner(true)
    }

    fn start_inner(auth: bool) -> Option<Moto> {
        moto_binary()?;
        let dir = tempfile::Builder::new().prefix("driftless-moto-").tempdir().unwrap();
        let mut m = Moto { dir, child: None, port: 0, auth };
        m.spawn(0);
        Some(m)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    fn spawn(&mut self, port: u16) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let before = std::fs::read_to_string(self.log_path()).unwrap_or_default().len();
        let mut cmd = Command::new(moto_binary().unwrap());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", self.dir.path().join("recording.jsonl"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        self.child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if let Some(p) = text[before.min(text.len())..]
                .lines()
                .find_map(|l| l.split("Running on http://127.0.0.1:").nth(1))
                .and_then(|p| p.trim().parse().ok())
            {
                self.port = p;
                return;
            }
            assert!(Instant::now() < deadline, "moto did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server, starts a new one on the same port, and replays what the old one
    /// recorded (no request may reach it before the replay is done: put it behind a
    /// [`Proxy`] that is down meanwhile).
    pub fn restart(&mut self) {
        let port = self.port;
        self.kill();
        self.spawn(port);
        let response = http_request(port, "POST", "/moto-api/recorder/replay-recording");
        assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "replay failed: {response}");
    }

    /// moto's request log (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn location(&self, bucket: &str, prefix: &str) -> S3Location {
        location(&self.endpoint(), bucket, prefix)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn location(endpoint: &str, bucket: &str, prefix: &str) -> S3Location {
    S3Location {
        bucket: bucket.into(),
        key_prefix: prefix.into(),
        connection: S3Connection {
            region: Some("us-east-1".into()),
            endpoint: Some(endpoint.into()),
            force_path_style: true,
            credentials: Some(S3Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
                session_token: None,
            }),
            anonymous: false,
        },
    }
}

/// A bare HTTP/1.0 request; returns the whole response.
pub fn http_request(port: u16, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A client for test set-up and inspection, through the same connection code driftless uses.
pub async fn client(endpoint: &str) -> Client {
    driftless::backend::s3::connect(&location(endpoint, "unused", "").connection).await
}

pub async fn create_bucket(c: &Client, bucket: &str) {
    c.create_bucket().bucket(bucket).send().await.unwrap();
}

pub async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object().bucket(bucket).key(key).body(ByteStream::from(body.to_vec())).send().await.unwrap();
}

pub async fn get(c: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(_) => None,
    }
}

pub async fn keys(c: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = c.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`. While down it drops every connection,
/// including those open: to a client, a server that went away.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, st) = (down.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if d.load(Ordering::Relaxed) {
                            drop(client);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                        pipe(client, server, d.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, down, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies both ways until either side closes or the proxy goes down.
fn pipe(a: TcpStream, b: TcpStream, down: Arc<AtomicBool>) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        let down = down.clone();
        std::thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if down.load(Ordering::Relaxed) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}
