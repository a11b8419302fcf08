//! Helm for tests: the helm CLI (built from its Go module by `scripts/build-go-tool.sh helm`
//! into `.tools/`) run with a private HOME, charts written by the tests, and a small HTTP
//! chart repository on 127.0.0.1 (files of a directory, optional Basic auth, a count of
//! requests per path) that serves what `helm package` and `helm repo index` made.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

pub fn binary() -> Option<PathBuf> {
    let path = super::tools_dir().join("bin/helm");
    if path.exists() { Some(path) } else { super::missing(&format!("helm ({})", path.display())) }
}

/// The helm CLI with a HOME of its own (nothing of the user's is read).
pub struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    pub fn find() -> Option<Helm> {
        Some(Helm { bin: binary()?, home: tempfile::tempdir().unwrap() })
    }

    /// Runs helm; panics with its output when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn output(&self, args: &[&str]) -> std::process::Output {
        let home = self.home.path();
        Command::new(&self.bin)
            .args(args)
            .env("HOME", home)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
            .output()
            .unwrap()
    }

    /// `helm package DIR -d OUT`: the archive's path.
    pub fn package(&self, dir: &Path, out: &Path) -> PathBuf {
        let text = self.run(&["package", dir.to_str().unwrap(), "-d", out.to_str().unwrap()]);
        PathBuf::from(text.trim().rsplit(": ").next().unwrap())
    }

    /// `helm template NAME CHART`: the rendered manifests.
    pub fn template(&self, chart: &Path, extra: &[&str]) -> String {
        let mut args = vec!["template", "rel", chart.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// Writes a chart `name` at `version` into `dir/<name>/`: a ConfigMap whose data shows its
/// values, and `files` besides (path in the chart, text).
pub fn write_chart(dir: &Path, name: &str, version: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = dir.join(name);
    let mut all: Vec<(String, String)> = vec![
        ("Chart.yaml".into(), format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n")),
        ("values.yaml".into(), "greeting: hello\nreplicas: 1\n".into()),
        (
            "templates/cm.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  replicas: {{ .Values.replicas | quote }}\n  version: {{ .Chart.Version | quote }}\n".into(),
        ),
    ];
    for (path, text) in files {
        all.retain(|(p, _)| p != path);
        all.push((path.to_string(), text.to_string()));
    }
    for (path, text) in all {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

/// An HTTP chart repository serving `dir` on 127.0.0.1.
pub struct ChartServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl ChartServer {
    /// Serves `dir`'s files; with `auth`, only to requests with that user and password.
    pub fn start(auth: Option<(&str, &str)>) -> ChartServer {
        let dir = tempfile::Builder::new().prefix("driftless-charts-").tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let (root, counter) = (dir.path().to_path_buf(), hits.clone());
        let expected = auth.map(|(u, p)| {
            use base64::Engine as _;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap().to_string();
                let mut authorization = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        authorization = Some(v.trim().to_string());
                    }
                }
                *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                let reply = |stream: &mut std::net::TcpStream, status: &str, body: &[u8]| {
                    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                };
                if expected.is_some() && authorization != expected {
                    reply(&mut stream, "401 Unauthorized", b"unauthorized");
                    continue;
                }
                let file = root.join(path.trim_start_matches('/'));
                match std::fs::File::open(&file) {
                    Ok(mut f) if file.is_file() => {
                        let mut body = Vec::new();
                        f.read_to_end(&mut body).unwrap();
                        reply(&mut stream, "200 OK", &body);
                    }
                    _ => reply(&mut stream, "404 Not Found", b"not found"),
                }
            }
        });
        ChartServer { dir, port, hits }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests asked for `path` (`/index.yaml`).
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or_default()
    }

    /// Packages `charts` with helm into the served directory and indexes it (`helm repo
    /// index --url`).
    pub fn publish(&self, helm: &Helm, charts: &[&Path]) {
        for chart in charts {
            helm.package(chart, self.dir.path());
        }
        helm.run(&["repo", "index", self.dir.path().to_str().unwrap(), "--url", &self.url()]);
    }
}
