//! An OCI registry for tests: the CNCF distribution registry (built from its Go module by
//! `scripts/build-go-tool.sh registry` into `.tools/`) on 127.0.0.1, plain, with htpasswd
//! basic auth, or with TLS; and a small pusher of its own (raw HTTP, no driftless code), so
//! artifacts shaped as Flux makes them can be put in without driftless's client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The user the htpasswd registry knows, and its password.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret";
/// `tester:s3cret` as an htpasswd bcrypt entry (cost 5, which keeps requests fast).
const HTPASSWD: &str = "tester:$2a$05$Uqf.lO44kcwQRtqN0r12ueOkMDCet7r24RBRA/LyjVkytNxBeI9bW\n";

pub fn binary() -> Option<PathBuf> {
    let path = super::tools_dir().join("bin/registry");
    if path.exists() { Some(path) } else { super::missing(&format!("the OCI registry ({})", path.display())) }
}

/// How a registry is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    /// htpasswd basic auth ([`USER`], [`PASSWORD`]).
    Auth,
    /// https with a certificate of a test CA for 127.0.0.1.
    Tls,
}

pub struct Registry {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub mode: Mode,
    /// The CA of a TLS registry's certificate (PEM).
    pub ca_pem: Option<String>,
}

impl Registry {
    pub fn start(mode: Mode) -> Option<Registry> {
        Self::start_on(mode, None)
    }

    /// A registry serving the storage of `data` (another registry's `data_dir`).
    pub fn start_on(mode: Mode, data: Option<&Path>) -> Option<Registry> {
        let bin = binary()?;
        let dir = tempfile::Builder::new().prefix("driftless-registry-").tempdir().unwrap();
        let root = data.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("data"));
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n",
            root.display()
        );
        let mut ca_pem = None;
        match mode {
            Mode::Plain => {}
            Mode::Auth => {
                std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: driftless-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                ));
            }
            Mode::Tls => {
                let ca = testkit::certs::Ca::new("driftless test registry CA").unwrap();
                let pair = ca.loopback_serving_cert("registry", &[]).unwrap();
                std::fs::write(dir.path().join("cert.pem"), &pair.cert_pem).unwrap();
                std::fs::write(dir.path().join("key.pem"), &pair.key_pem).unwrap();
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("cert.pem").display(),
                    dir.path().join("key.pem").display()
                ));
                ca_pem = Some(ca.cert_pem());
            }
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            // The registry exports traces to localhost:4318 unless told not to.
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut registry = Registry { dir, child: Some(child), port: 0, mode, ca_pem };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = registry.log();
            if let Some(port) = text
                .lines()
                .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
                .and_then(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
            {
                registry.port = port;
                return Some(registry);
            }
            assert!(Instant::now() < deadline, "the registry did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, repository: &str) -> String {
        format!("oci://{}/{repository}", self.host())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The registry's log, with one access line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many times a blob of `repository` was downloaded (GET, not HEAD).
    pub fn blob_downloads(&self, repository: &str) -> usize {
        let needle = format!("\"GET /v2/{repository}/blobs/sha256:");
        self.log().matches(&needle).count()
    }

    /// A Secret of type dockerconfigjson with `user`/`password` for this registry.
    pub fn docker_secret(&self, name: &str, user: &str, password: &str) -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config = serde_json::json!({"auths": {self.host(): {"auth": auth}}}).to_string();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config}'\n"
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One blocking HTTP/1.1 request with a byte body to a plain-HTTP registry; status, headers
/// and body.
pub fn raw(host: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").expect("a reply head");
    let head = String::from_utf8_lossy(&reply[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let mut body = reply[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Uploads a blob (monolithic POST + PUT) to a plain-HTTP registry without auth; its digest.
pub fn put_blob(host: &str, repository: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let (status, headers, _) = raw(host, "POST", &format!("/v2/{repository}/blobs/uploads/"), &[], b"");
    assert_eq!(status, 202, "start an upload");
    let location = headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.clone()).unwrap();
    let path = location.split_once(host).map(|(_, p)| p.to_string()).unwrap_or(location);
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, _, body) =
        raw(host, "PUT", &format!("{path}{sep}digest={digest}"), &[("Content-Type", "application/octet-stream")], bytes);
    assert_eq!(status, 201, "upload: {}", String::from_utf8_lossy(&body));
    digest
}

/// Puts a manifest under `reference`; its digest.
pub fn put_manifest(host: &str, repository: &str, reference: &str, manifest: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let media_type = manifest["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let (status, _, body) = raw(host, "PUT", &format!("/v2/{repository}/manifests/{reference}"), &[("Content-Type", media_type)], &bytes);
    assert_eq!(status, 201, "put manifest: {}", String::from_utf8_lossy(&body));
    sha256(&bytes)
}

/// Reads a manifest as JSON.
pub fn get_manifest(host: &str, repository: &str, reference: &str) -> serde_json::Value {
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let (status, _, body) = raw(host, "GET", &format!("/v2/{repository}/manifests/{reference}"), &[("Accept", accept)], b"");
    assert_eq!(status, 200, "get manifest: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Reads a blob.
pub fn get_blob(host: &str, repository: &str, digest: &str) -> Vec<u8> {
    let (status, _, body) = raw(host, "GET", &format!("/v2/{repository}/blobs/{digest}"), &[], b"");
    assert_eq!(status, 200);
    body
}

/// Pushes `dir` the way `flux push artifact` does, made with other tools than driftless's:
/// GNU tar for the layer, a manifest with Flux's media types and annotations written here.
/// Returns the manifest digest.
pub fn push_as_flux(host: &str, repository: &str, tag: &str, dir: &Path, revision: &str) -> String {
    let layer = tar_gz(dir);
    let layer_digest = put_blob(host, repository, &layer);
    let config = br#"{"created":"2026-12-03T10:00:00Z","architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = put_blob(host, repository, config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.flux.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
        "annotations": {
            "org.opencontainers.image.created": "2026-12-03T10:00:00Z",
            "org.opencontainers.image.source": "https://github.com/example/app",
            "org.opencontainers.image.revision": revision,
        },
    });
    put_manifest(host, repository, tag, &manifest)
}

/// `tar -czf - -C dir .`
pub fn tar_gz(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar").args(["-czf", "-", "-C"]).arg(dir).arg(".").output().unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `tar -xzf - -C dir`: what GNU tar makes of a layer.
pub fn untar_gz(bytes: &[u8], dir: &Path) {
    let mut child = Command::new("tar").args(["-xzf", "-", "-C"]).arg(dir).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success(), "tar -x");
}
