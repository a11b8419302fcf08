//! A small WebDriver (W3C) client for browser tests: Debian's `chromedriver` on 127.0.0.1
//! driving a headless `chromium`, spoken to in plain HTTP/1.1 over a `TcpStream` (localhost
//! JSON; no HTTP client crate needed). Both processes are ended when the [`Browser`] drops.
//!
//! Missing `chromedriver` or `chromium` fails the test (everywhere, not only on CI): they
//! are installed by the apt line of `.ci/run`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver command may take (a navigation waits for the page's load).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where browser tests keep their screenshots: `<target dir>/review-screenshots/` (the
/// target dir is `CARGO_TARGET_DIR` when set, else the workspace's `target/`).
pub fn screenshot_dir() -> PathBuf {
    // target/debug/driftless -> target
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_driftless"));
    let dir = exe.parent().and_then(Path::parent).expect("the target dir").join("review-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts that `path` is a PNG (its signature) of more than `min_bytes`: a real rendering,
/// not a blank or truncated file.
pub fn assert_png(path: &Path, min_bytes: u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
    assert!(bytes.len() as u64 > min_bytes, "{} has only {} bytes (expected > {min_bytes})", path.display(), bytes.len());
}

/// An error of a WebDriver command: its W3C error code (`no such element`, `stale element
/// reference`, ...) and message, or a transport failure.
#[derive(Debug, Clone)]
pub struct WdError {
    pub code: String,
    pub message: String,
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.message.lines().next().unwrap_or_default();
        write!(f, "{}: {first}", self.code)
    }
}

impl std::error::Error for WdError {}

fn transport(message: impl fmt::Display) -> WdError {
    WdError { code: "transport".into(), message: message.to_string() }
}

pub type WdResult<T> = Result<T, WdError>;

/// Finds a program on PATH, or fails the test saying how to install it.
fn require(program: &str) -> PathBuf {
    which::which(program).unwrap_or_else(|_| {
        panic!(
            "`{program}` is not on PATH: the browser tests need Debian's chromium and chromium-driver; \
             install them with the apt line of .ci/run (apt-get install -y --no-install-recommends chromium chromium-driver)"
        )
    })
}

/// A chromedriver process with one headless chromium session.
pub struct Browser {
    driver: Option<Child>,
    port: u16,
    session: String,
    /// The browser profile (`--user-data-dir`) and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver --port=0` (it picks a free port on 127.0.0.1 and says which) and a
    /// session with headless chromium, 1280x900, in a fresh profile.
    pub fn start() -> Browser {
        let chromedriver = require("chromedriver");
        let chromium = require("chromium");
        let dir = tempfile::Builder::new().prefix("driftless-browser-").tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        let mut cmd = Command::new(&chromedriver);
        cmd.arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .arg("--log-level=INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Its own process group, so dropping the browser can end chromium's helpers too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let port = read_port(&mut child).unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not start: {e}\nlog:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        let mut browser = Browser { driver: Some(child), port, session: String::new(), dir };
        let profile = browser.dir.path().join("profile");
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-extensions",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        let value = browser.request("POST", "/session", Some(&capabilities)).unwrap_or_else(|e| {
            panic!("chromium session did not start: {e}\n{}\nchromedriver log tail:\n{}", e.message, browser.log_tail(40))
        });
        browser.session = value["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// The last lines of chromedriver's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// One WebDriver command: `path` is relative to the server (`/session/...`).
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> WdResult<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(transport)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).map_err(transport)?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n", self.port, body.len());
        if !body.is_empty() {
            request.push_str("Content-Type: application/json; charset=utf-8\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).map_err(transport)?;
        // chromedriver keeps the connection open despite `Connection: close`: read the
        // header, then exactly the body it announces.
        let (status, payload) = read_response(&mut stream).map_err(|e| transport(format!("{method} {path}: {e}")))?;
        let json: Value = serde_json::from_slice(&payload)
            .map_err(|e| transport(format!("{method} {path}: HTTP {status}, not JSON ({e}): {}", String::from_utf8_lossy(&payload))))?;
        let value = json.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 || value.get("error").is_some_and(Value::is_string) {
            return Err(WdError {
                code: value["error"].as_str().unwrap_or("unknown error").to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn command(&self, method: &str, rest: &str, body: Option<Value>) -> WdResult<Value> {
        self.request(method, &self.session_path(rest), body.as_ref())
    }

    /// Opens `url` and waits for its load (the page load strategy `normal`).
    pub fn goto(&self, url: &str) -> WdResult<()> {
        self.command("POST", "/url", Some(json!({ "url": url }))).map(drop)
    }

    /// Reloads the current page.
    pub fn refresh(&self) -> WdResult<()> {
        self.command("POST", "/refresh", Some(json!({}))).map(drop)
    }

    pub fn url(&self) -> WdResult<String> {
        Ok(self.command("GET", "/url", None)?.as_str().unwrap_or_default().to_string())
    }

    pub fn title(&self) -> WdResult<String> {
        Ok(self.command("GET", "/title", None)?.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching a CSS selector (`no such element` if none).
    pub fn find(&self, css: &str) -> WdResult<Element<'_>> {
        let value = self.command("POST", "/element", Some(json!({ "using": "css selector", "value": css })))?;
        Ok(self.element(&value))
    }

    /// Every element matching a CSS selector (empty if none).
    pub fn find_all(&self, css: &str) -> WdResult<Vec<Element<'_>>> {
        let value = self.command("POST", "/elements", Some(json!({ "using": "css selector", "value": css })))?;
        Ok(value.as_array().into_iter().flatten().map(|v| self.element(v)).collect())
    }

    fn element(&self, value: &Value) -> Element<'_> {
        Element { browser: self, id: value[ELEMENT_KEY].as_str().unwrap_or_default().to_string() }
    }

    /// Runs JavaScript in the page (`arguments[i]` are `args`); returns what it returns.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> WdResult<Value> {
        self.command("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) -> WdResult<()> {
        use base64::Engine as _;
        let value = self.command("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD.decode(value.as_str().unwrap_or_default()).map_err(transport)?;
        std::fs::write(path, png).map_err(transport)
    }

    /// Saves a screenshot as `<screenshot_dir>/<name>` and returns its path.
    pub fn save_screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(name);
        self.screenshot(&path).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        path
    }

    /// Polls `check` every 200 ms until it returns `Ok(Some(v))`; an `Err` or `Ok(None)` means
    /// "not yet" (an element may be missing or replaced while the page updates). After
    /// `timeout` the test fails naming `what`, the page's title and URL, the last error, and
    /// leaves `<screenshot_dir>/timeout-<what>.png` behind.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Browser) -> WdResult<Option<T>>) -> T {
        let start = Instant::now();
        let mut last = String::from("(the condition was never true)");
        loop {
            match check(self) {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() > timeout {
                let title = self.title().unwrap_or_else(|e| format!("<{e}>"));
                let url = self.url().unwrap_or_else(|e| format!("<{e}>"));
                let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(60).collect();
                let shot = screenshot_dir().join(format!("timeout-{name}.png"));
                let _ = self.screenshot(&shot);
                let body = self.execute("return document.body ? document.body.innerText : ''", vec![]).unwrap_or_default();
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npage title: {title:?}\npage url: {url}\nlast error: {last}\n\
                     screenshot: {}\npage text:\n{}",
                    shot.display(),
                    body.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// [`Self::wait_for`] with a yes/no condition.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Browser) -> WdResult<bool>) {
        self.wait_for(what, timeout, |b| Ok(check(b)?.then_some(())))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends chromium; then chromedriver and anything left of its group.
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &self.session_path(""), None);
        }
        if let Some(mut child) = self.driver.take() {
            // A signal to the group by the syscall, never by the `kill` program: procps-ng
            // 4.0.2 reads `kill -KILL -12345` as signal 1's group, `-1`, which is every
            // process the user may signal.
            if let Ok(pgid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads chromedriver's "started successfully on port N" from its stdout.
fn read_port(child: &mut Child) -> Result<u16, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.split("started successfully on port ").nth(1) {
                let _ = tx.send(port.trim().trim_end_matches('.').parse::<u16>().map_err(|e| format!("{line}: {e}")));
                // Keep draining its stdout so chromedriver never blocks on a full pipe.
                continue;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = tx.send(Err(format!("chromedriver exited; it printed:\n{seen}")));
    });
    rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "no port announced within 30s".to_string())?
}

/// Reads one HTTP/1.1 response: its status and its body (`Content-Length` or chunked).
fn read_response(stream: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed in the header".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or_default(), 16)
                .map_err(|e| format!("chunk size {line:?}: {e}"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok((status, body))
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    pub id: String,
}

impl<'a> Element<'a> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// Clicks it (scrolled into view first, as a user would).
    pub fn click(&self) -> WdResult<()> {
        self.browser.command("POST", &self.path("/click"), Some(json!({}))).map(drop)
    }

    /// Its rendered text (what a user sees).
    pub fn text(&self) -> WdResult<String> {
        Ok(self.browser.command("GET", &self.path("/text"), None)?.as_str().unwrap_or_default().to_string())
    }

    /// An attribute (`None` when absent).
    pub fn attr(&self, name: &str) -> WdResult<Option<String>> {
        Ok(self.browser.command("GET", &self.path(&format!("/attribute/{name}")), None)?.as_str().map(str::to_string))
    }

    /// Whether a user can see it.
    pub fn displayed(&self) -> WdResult<bool> {
        Ok(self.browser.command("GET", &self.path("/displayed"), None)?.as_bool().unwrap_or(false))
    }

    /// The first descendant matching a CSS selector.
    pub fn find(&self, css: &str) -> WdResult<Element<'a>> {
        let value = self.browser.command("POST", &self.path("/element"), Some(json!({ "using": "css selector", "value": css })))?;
        Ok(self.browser.element(&value))
    }

    /// Every descendant matching a CSS selector.
    pub fn find_all(&self, css: &str) -> WdResult<Vec<Element<'a>>> {
        let value = self.browser.command("POST", &self.path("/elements"), Some(json!({ "using": "css selector", "value": css })))?;
        Ok(value.as_array().into_iter().flatten().map(|v| self.browser.element(v)).collect())
    }

    /// The element as a script argument (`arguments[i]` in [`Browser::execute`]).
    pub fn as_arg(&self) -> Value {
        let mut reference = serde_json::Map::new();
        reference.insert(ELEMENT_KEY.into(), Value::String(self.id.clone()));
        Value::Object(reference)
    }
}
