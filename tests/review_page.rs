//! The review page of a local store, end to end: the real `driftless review` over a store
//! whose Terraform (real Git repository, real terraform) waits for approval. Log in with the
//! printed one-time link, read the overview and the object's page, be refused for a stale
//! plan id or a forged form, approve, and watch the object become Ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{Reply, form, input_value, request};
use common::{MODULE, World, objects};
use serde_json::Value;

const SECRET: &str = "very-secret-token-value";
const USER: &str = "review-tester";

/// `driftless review` running on a world's store; killed when dropped.
struct Review {
    child: Child,
    addr: String,
    login: String,
    /// Everything the server answered: the secret must be in none of it.
    seen: Vec<String>,
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Review {
    fn start(w: &World) -> Review {
        let mut cmd = Command::new(&w.tools.driftless);
        cmd.arg("--store").arg(w.store()).arg("--terraform").arg(&w.terraform).arg("review");
        w.env(&mut cmd);
        cmd.env("USER", USER).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // The local reconciles print their outcome after the link: keep the pipes drained.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            eprint!("{text}");
        });
        let login = first.trim().to_string();
        let rest = login.strip_prefix("http://").unwrap_or_else(|| panic!("the first line is the login link: {login:?}"));
        let (addr, path) = rest.split_once('/').unwrap();
        let token = path.strip_prefix("login?token=").unwrap_or_else(|| panic!("{login}"));
        assert!(addr.starts_with("127.0.0.1:"), "loopback only: {login}");
        assert!(token.len() == 32 && token.chars().all(|c| c.is_ascii_hexdigit()), "32 hex digits: {token}");
        Review { child, addr: addr.to_string(), login: format!("/{path}"), seen: Vec::new() }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
        let reply = request(&self.addr, method, path, headers, body);
        self.seen.push(format!("{}\n{:?}\n{}", reply.status, reply.headers, reply.body));
        reply
    }

    fn get(&mut self, path: &str, cookie: &str) -> Reply {
        self.send("GET", path, &[("Cookie", cookie)], None)
    }

    /// A form POST as a browser on this page sends it.
    fn post(&mut self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Reply {
        let origin = format!("http://{}", self.addr);
        self.send("POST", path, &[("Cookie", cookie), ("Origin", &origin)], Some(&form(fields)))
    }

    /// Polls `/api/objects` until the object is Ready (or Checked), as the page's script does.
    fn wait_until_applied(&mut self, cookie: &str) -> Value {
        let start = Instant::now();
        loop {
            let row = self.row(cookie, "app");
            if matches!(row["state"].as_str(), Some("Ready" | "Checked")) {
                return row;
            }
            assert!(start.elapsed() < Duration::from_secs(180), "not applied: {row}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Logs in with the printed link; returns the `Cookie` header value.
    fn log_in(&mut self) -> String {
        let login = self.login.clone();
        let reply = self.send("GET", &login, &[], None);
        assert_eq!(reply.status, 303, "{}", reply.body);
        reply.header("set-cookie").expect("a session cookie").split(';').next().unwrap().to_string()
    }

    fn row(&mut self, cookie: &str, name: &str) -> Value {
        let reply = self.get("/api/objects", cookie);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json().as_array().unwrap().iter().find(|r| r["name"] == name).cloned().unwrap_or(Value::Null)
    }
}

/// A store whose Terraform `app` (with a sensitive variable from a Secret, and its outputs
/// written to another) waits for approval of its first plan; returns the plan id.
fn world_with_pending_plan() -> Option<(World, String)> {
    let w = World::new()?;
    w.commit(&[("infra/main.tf", MODULE)], "module");
    w.apply(&objects(
        "app",
        "./infra",
        "",
        "  writeOutputsToSecret:\n    name: app-outputs\n  varsFrom:\n    - kind: Secret\n      name: app-token\n",
    ))
    .ok();
    w.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: {SECRET}\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    Some((w, plan))
}

/// The page's `section#history` shows the object's `status.history`, newest first, at
/// most 20 entries, each with its action, plan id and who acted.
fn assert_history_mirrors_status(page: &str, w: &World) {
    let history = &page[page.find("<section id=\"history\">").expect("a history section")..];
    let shown: Vec<&str> = history.lines().filter(|l| l.contains("class=\"history-entry\"")).collect();
    let recorded = w.get("terraform", "app")["status"]["history"].as_array().cloned().unwrap_or_default();
    let expected: Vec<&Value> = recorded.iter().rev().take(20).collect();
    assert_eq!(shown.len(), expected.len(), "{history}");
    if expected.is_empty() {
        assert!(history.contains("Nothing recorded yet."), "{history}");
    }
    for (line, entry) in shown.iter().zip(expected) {
        assert!(line.contains(&format!("data-action=\"{}\"", entry["action"].as_str().unwrap())), "{line} / {entry}");
        assert!(line.contains(&format!("<time datetime=\"{}\">", entry["time"].as_str().unwrap())), "{line} / {entry}");
        for (field, prefix) in [("planId", ""), ("by", "by ")] {
            if let Some(v) = entry[field].as_str() {
                assert!(line.contains(&format!("{prefix}{v}")), "{line} / {entry}");
            }
        }
    }
}

fn annotations(w: &World) -> Value {
    w.get("terraform", "app")["metadata"]["annotations"].clone()
}

#[test]
fn a_reviewer_logs_in_once_reviews_the_pending_plan_and_approves_it() {
    let Some((w, plan)) = world_with_pending_plan() else { return };

    let mut r = Review::start(&w);

    // Nothing without a session; the login link works once.
    let refused = r.send("GET", "/", &[], None);
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("login link"), "a login hint: {}", refused.body);
    assert_eq!(r.send("GET", "/api/objects", &[], None).status, 401);
    assert_eq!(r.send("GET", "/objects/terraform/default/app", &[], None).status, 401);
    assert_eq!(r.send("GET", &format!("/login?token={}", "0".repeat(32)), &[], None).status, 401);
    // Wrong links again and again: after ten failures the page makes this address wait, the
    // right link included (and it is not spent meanwhile).
    let mut failures = 1;
    let refused = loop {
        let reply = r.send("GET", &format!("/login?token={failures:032}"), &[], None);
        if reply.status == 429 {
            break reply;
        }
        assert_eq!(reply.status, 401, "{}", reply.body);
        failures += 1;
        assert!(failures <= 10, "still no 429 after {failures} failed logins");
    };
    assert_eq!(failures, 10, "ten failures are allowed");
    assert!(refused.body.contains("Too many failed logins from your address: try again in"), "{}", refused.body);
    let retry_after: u64 = refused.header("retry-after").and_then(|v| v.parse().ok()).expect("a Retry-After header");
    assert!((1..=6).contains(&retry_after), "{retry_after}");
    let login = r.login.clone();
    assert_eq!(r.send("GET", &login, &[], None).status, 429, "the right link waits too");
    std::thread::sleep(Duration::from_secs(retry_after));
    let logged_in = r.send("GET", &login, &[], None);
    assert_eq!(logged_in.status, 303);
    assert_eq!(logged_in.header("location"), Some("/"));
    let set_cookie = logged_in.header("set-cookie").expect("a session cookie").to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let again = r.send("GET", &login, &[], None);
    assert_eq!(again.status, 401, "the token is spent");
    assert!(again.body.contains("already used"), "{}", again.body);

    // The overview and its JSON.
    let overview = r.get("/", &cookie);
    assert_eq!(overview.status, 200);
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(overview.header(name), Some(value), "{name}");
    }
    assert!(overview.body.contains("<table id=\"objects\""), "{}", overview.body);
    assert!(
        overview.body.contains(
            "<tr class=\"object\" data-kind=\"Terraform\" data-namespace=\"default\" data-name=\"app\" data-state=\"PlanPending\">"
        ),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("<form id=\"filters\"") && overview.body.contains("<select name=\"state\">"));
    let row = r.row(&cookie, "app");
    assert_eq!(row["state"], "PlanPending", "{row}");
    assert_eq!(row["planId"], plan.as_str());
    assert_eq!(row["url"], "/objects/terraform/default/app");
    assert_eq!(r.get("/api/objects?state=Ready", &cookie).json(), serde_json::json!([]), "filters apply to the JSON too");
    assert_eq!(r.get("/api/objects?kind=pod", &cookie).status, 400);
    let script = r.get("/assets/review.js", &cookie);
    assert!(script.status == 200 && script.body.contains("/api/objects"));

    // The object's page: the plan id and the stored rendering.
    let page = r.get("/objects/terraform/default/app", &cookie);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("<section id=\"plan\" data-plan-id=\"{plan}\">")), "{}", page.body);
    assert!(page.body.contains("<strong id=\"state\" class=\"state\">PlanPending</strong>"));
    assert!(page.body.contains("+ drifttest_file.main (create)") && page.body.contains("2 to add"), "{}", page.body);
    assert!(page.body.contains("id=\"approve\"") && page.body.contains("<section id=\"history\">"));
    let csrf = input_value(&page.body, "csrf").expect("forms carry the CSRF token");
    assert_eq!(input_value(&page.body, "plan_id").as_deref(), Some(plan.as_str()));

    // A plan id that is not the pending one: 409, nothing changes.
    let approve = "/objects/terraform/default/app/approve";
    let stale = r.post(approve, &cookie, &[("csrf", &csrf), ("plan_id", "plan-0000000-0000000000")]);
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("id=\"flash\"") && stale.body.contains(&plan), "names the plan waiting now: {}", stale.body);
    assert!(annotations(&w)["driftless.dev/approve-plan"].is_null());
    // A forged form: no CSRF token, or posted from another origin.
    assert_eq!(r.post(approve, &cookie, &[("plan_id", &plan)]).status, 403);
    let foreign = r.send(
        "POST",
        approve,
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        Some(&form(&[("csrf", &csrf), ("plan_id", &plan)])),
    );
    assert_eq!(foreign.status, 403);
    assert!(annotations(&w)["driftless.dev/approve-plan"].is_null(), "refused forms change nothing");
    assert_eq!(
        r.post("/objects/terraform/default/app/acknowledge", &cookie, &[("csrf", &csrf), ("drift_id", "d")]).status,
        409,
        "no drift"
    );

    // The right id: approved as this user, applied by the server's own reconcile.
    let approved = r.post(approve, &cookie, &[("csrf", &csrf), ("plan_id", &plan)]);
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(approved.header("location"), Some("/objects/terraform/default/app"));
    let a = annotations(&w);
    assert_eq!(a["driftless.dev/acted-by"].as_str(), Some(USER));
    // Bound to the stored plan shown; the server's reconcile may already have spent it.
    let tf = w.get("terraform", "app");
    let approval = a["driftless.dev/approve-plan"].as_str().or(tf["status"]["spentApproval"].as_str()).unwrap_or_default().to_string();
    assert!(approval.starts_with(&format!("{plan}@sha256:")), "{approval}");
    let flashed = r.get("/objects/terraform/default/app", &cookie);
    assert!(flashed.body.contains("<div id=\"flash\" class=\"flash ok\"") && flashed.body.contains(&format!("approved plan {plan}")));

    let row = r.wait_until_applied(&cookie);
    assert_eq!(row["planId"], Value::Null, "nothing waits any more");
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    let page = r.get("/objects/terraform/default/app", &cookie);
    assert!(page.body.contains("<section id=\"plan\" data-plan-id=\"\">"), "{}", page.body);
    assert_history_mirrors_status(&page.body, &w);

    // A reconcile request is an annotation too.
    let csrf = input_value(&page.body, "csrf").unwrap();
    assert_eq!(r.post("/objects/terraform/default/app/reconcile", &cookie, &[("csrf", &csrf)]).status, 303);
    let requested = annotations(&w)["driftless.dev/reconcile-requested-at"].as_str().expect("the request's time").to_string();
    let start = Instant::now();
    while w.get("terraform", "app")["status"]["lastHandledReconcileAt"] != requested.as_str()
        || w.condition("app", "Reconciling")["status"] == "True"
    {
        assert!(start.elapsed() < Duration::from_secs(120), "the server did not reconcile on request");
        std::thread::sleep(Duration::from_millis(500));
    }

    let everything = r.seen.join("\n");
    assert!(!everything.contains(SECRET), "a sensitive value reached a page");
    assert!(everything.contains(&plan));
}

/// The history names the approval's author and the applied plan (the reconcilers record
/// `status.history`, the approver from `driftless.dev/acted-by`).
#[test]
fn the_history_shows_the_plan_and_who_approved_its_apply() {
    let Some((w, plan)) = world_with_pending_plan() else { return };
    let mut r = Review::start(&w);
    let cookie = r.log_in();
    let page = r.get("/objects/terraform/default/app", &cookie);
    let csrf = input_value(&page.body, "csrf").unwrap();
    assert_eq!(r.post("/objects/terraform/default/app/approve", &cookie, &[("csrf", &csrf), ("plan_id", &plan)]).status, 303);
    r.wait_until_applied(&cookie);
    let page = r.get("/objects/terraform/default/app", &cookie);
    assert_history_mirrors_status(&page.body, &w);
    let history = &page.body[page.body.find("<section id=\"history\">").unwrap()..];
    let applied = history
        .lines()
        .find(|l| l.contains("class=\"history-entry\" data-action=\"PlanApplied\""))
        .unwrap_or_else(|| panic!("the apply is in the history: {history}"));
    assert!(applied.contains(&plan) && applied.contains(&format!("by {USER}")), "{applied}");
    let planned = history.find("data-action=\"PlanPending\"").expect("the plan is in the history");
    assert!(history.find("data-action=\"PlanApplied\"").unwrap() < planned, "newest first");
}

#[test]
fn the_local_page_listens_on_loopback_only_and_a_cluster_is_served_by_the_controller() {
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("objects")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_driftless"))
            .args(args)
            .env("HOME", store.path())
            .env_remove("DRIFTLESS_STORE")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["--store", store.path().to_str().unwrap(), "review", "--listen", "0.0.0.0:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0 is not a loopback address"), "{stderr}");
    assert!(out.stdout.is_empty(), "no login link for a refused address");

    let out = run(&["review"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("driftless controller --review-addr"), "{stderr}");
}
