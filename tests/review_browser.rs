//! The review page in a real browser (headless chromium through chromedriver): a drifted
//! Terraform and a drifted Kustomization on a local store whose kube context is the testkit
//! cluster, reviewed, filtered, approved and acknowledged by clicking, as a reviewer would.
//! Screenshots of every page visited go to `<target dir>/review-screenshots/`.
//!
//! The first test proves the WebDriver client itself on a tiny page this test serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::kube::{KubeWorld, condition_in};
use common::webdriver::{Browser, WdResult, assert_png, screenshot_dir};
use common::{MODULE, git_repository, terraform_object};

const SHORT: Duration = Duration::from_secs(10);

/// A page with what the review page relies on: a one-time login that sets a cookie and
/// redirects, a table filtered by script, content that appears late, and a POST form
/// answered with a page holding a flash message.
fn static_site() -> axum::Router {
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    use axum::response::{Html, IntoResponse, Redirect};
    use axum::routing::{get, post};

    const PAGE: &str = r#"<!doctype html>
<html><head><title>Static objects</title>
<style>
  body { font-family: sans-serif; margin: 2em; background: linear-gradient(#fafafa, #dde6ee); }
  table { border-collapse: collapse; } td, th { border: 1px solid #789; padding: .4em 1em; }
  tr[data-state=Drifted] td { background: #fdd; } tr[data-state=Ready] td { background: #dfd; }
</style></head>
<body>
<h1>Objects</h1>
<form id="filters"><select name="kind"><option value="">all</option><option>Terraform</option><option>Kustomization</option></select></form>
<table id="objects">
  <tr class="object" data-kind="Terraform" data-name="infra" data-state="Drifted"><td><a class="object-link" href="/objects/terraform/default/infra">infra</a></td><td>Drifted</td></tr>
  <tr class="object" data-kind="Kustomization" data-name="web" data-state="Drifted"><td><a class="object-link" href="/objects/kustomization/default/web">web</a></td><td>Drifted</td></tr>
  <tr class="object" data-kind="Kustomization" data-name="db" data-state="Ready"><td><a class="object-link" href="/objects/kustomization/default/db">db</a></td><td>Ready</td></tr>
</table>
<script>
  document.querySelector('#filters select').addEventListener('change', e => {
    for (const row of document.querySelectorAll('tr.object')) {
      row.hidden = e.target.value !== '' && row.dataset.kind !== e.target.value;
    }
  });
  setTimeout(() => { const p = document.createElement('p'); p.id = 'late'; p.textContent = 'arrived late'; document.body.append(p); }, 700);
</script>
</body></html>"#;

    const OBJECT: &str = r#"<!doctype html>
<html><head><title>infra</title></head><body>
<p id="state">Drifted</p>
<form method="post" action="/approve"><button id="approve" type="submit">Approve</button></form>
</body></html>"#;

    fn logged_in(headers: &HeaderMap) -> bool {
        headers.get_all(header::COOKIE).iter().any(|v| v.to_str().unwrap_or_default().contains("session=s3cr3t"))
    }

    axum::Router::new()
        .route(
            "/login",
            get(|uri: Uri| async move {
                if uri.query() != Some("token=abc123") {
                    return StatusCode::FORBIDDEN.into_response();
                }
                ([(header::SET_COOKIE, "session=s3cr3t; Path=/; HttpOnly; SameSite=Strict")], Redirect::to("/")).into_response()
            }),
        )
        .route(
            "/",
            get(|headers: HeaderMap| async move {
                if logged_in(&headers) { Html(PAGE).into_response() } else { StatusCode::UNAUTHORIZED.into_response() }
            }),
        )
        .route("/objects/terraform/default/infra", get(|| async { Html(OBJECT) }))
        .route(
            "/approve",
            post(|headers: HeaderMap| async move {
                if !logged_in(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                Html(r#"<!doctype html><html><head><title>approved</title></head><body><p id="flash">approved plan-1</p><p id="state">Ready</p></body></html>"#)
                    .into_response()
            }),
        )
}

#[test]
fn the_webdriver_client_drives_chromium_through_login_filters_late_content_and_a_form() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, static_site()).await });

    let browser = Browser::start();
    browser.goto(&format!("{base}/login?token=abc123")).unwrap();
    assert_eq!(browser.url().unwrap(), format!("{base}/"), "the login redirects to the overview");
    assert_eq!(browser.title().unwrap(), "Static objects");

    let rows = browser.find_all("table#objects tr.object").unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].attr("data-state").unwrap().as_deref(), Some("Drifted"));
    assert_eq!(rows[1].find("a.object-link").unwrap().text().unwrap(), "web");
    assert_eq!(rows[0].attr("data-missing").unwrap(), None);
    let missing = browser.find("#nothing-here").err().expect("no such element");
    assert_eq!(missing.code, "no such element");

    let late = browser.wait_for("the late paragraph", SHORT, |b| Ok(Some(b.find("#late")?.text()?)));
    assert_eq!(late, "arrived late");

    // Choosing an option as a user does fires the change event the page's script filters on.
    browser.find("form#filters select[name=kind]").unwrap().click().unwrap();
    browser.find("form#filters select[name=kind] option:nth-child(3)").unwrap().click().unwrap();
    browser.wait_until("two Kustomization rows visible", SHORT, |b| {
        let mut visible = Vec::new();
        for row in b.find_all("tr.object")? {
            if row.displayed()? {
                visible.push(row.attr("data-kind")?.unwrap_or_default());
            }
        }
        Ok(visible == ["Kustomization", "Kustomization"])
    });
    let shown = browser.execute(
        "return [...arguments[0].querySelectorAll('tr.object:not([hidden])')].length",
        vec![browser.find("table#objects").unwrap().as_arg()],
    );
    assert_eq!(shown.unwrap(), 2);
    let overview = browser.save_screenshot("client-selftest.png");
    assert_png(&overview, 1_000);

    // A hidden row's link cannot be clicked; once shown again, it leads to the object page,
    // whose POST form carries the session cookie.
    let hidden = browser.find("tr.object[data-kind=Terraform] a.object-link").unwrap().click().unwrap_err();
    assert_eq!(hidden.code, "element not interactable", "{hidden}");
    browser.execute("document.querySelector('#filters select').value=''; document.querySelector('#filters select').dispatchEvent(new Event('change'))", vec![]).unwrap();
    browser.find("tr.object[data-kind=Terraform] a.object-link").unwrap().click().unwrap();
    browser.wait_until("the object page", SHORT, |b| Ok(b.find("#state")?.text()? == "Drifted"));
    browser.find("button#approve").unwrap().click().unwrap();
    let flash = browser.wait_for("the flash after approving", SHORT, |b| Ok(Some(b.find("#flash")?.text()?)));
    assert_eq!(flash, "approved plan-1");
    assert_eq!(browser.find("#state").unwrap().text().unwrap(), "Ready");

    // A wait that never comes true fails naming what it waited for and where the page was.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.wait_until("a state that never comes", Duration::from_millis(500), |b| Ok(b.find("#state")?.text()? == "Gone"))
    }))
    .expect_err("the wait times out");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("a state that never comes") && message.contains("approved") && message.contains("/approve"), "{message}");
    // ...and leaves a screenshot of the page it gave up on (removed: this one was on purpose).
    let shot = screenshot_dir().join("timeout-a-state-that-never-comes.png");
    assert!(message.contains(&shot.display().to_string()), "{message}");
    assert_png(&shot, 1_000);
    std::fs::remove_file(shot).unwrap();
}

// ---------------------------------------------------------------------------------------
// The review page, end to end.

/// Reconciles run in the background after a click: terraform plans and applies take seconds.
const LONG: Duration = Duration::from_secs(120);

/// What the scenario leaves in `<target dir>/review-screenshots/`, in the order taken.
const SCREENSHOTS: [&str; 8] = [
    "overview.png",
    "overview-filtered.png",
    "terraform.png",
    "terraform-after-approve.png",
    "kustomization.png",
    "kustomization-acknowledged.png",
    "overview-after-approve.png",
    "kustomization-after-approve.png",
];

/// `driftless review`, ended when dropped.
struct Review {
    child: Child,
    log: std::path::PathBuf,
    login_url: String,
}

impl Drop for Review {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("`driftless review` log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Review {
    /// Starts `driftless --store DIR review --listen 127.0.0.1:0` with the world's
    /// environment (its kube context, terraform and runner) and reads the login URL from
    /// the first line of its output.
    fn start(k: &KubeWorld) -> Review {
        let w = &k.world;
        let log = w.path().join("review.log");
        let mut cmd = Command::new(&w.tools.driftless);
        cmd.arg("--store").arg(w.store()).arg("--terraform").arg(&w.terraform).args(["review", "--listen", "127.0.0.1:0"]);
        w.env(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let _ = tx.send(lines.next());
            // Keep reading, so the page never blocks on a full pipe.
            lines.for_each(drop);
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(login_url) = first.filter(|l| l.starts_with("http://127.0.0.1:") && l.contains("/login?token=")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`driftless review` did not print its login URL as the first line\nits log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Review { child, log, login_url: login_url.trim().to_string() }
    }

    /// `http://127.0.0.1:PORT`
    fn base(&self) -> &str {
        &self.login_url[..self.login_url.find("/login").unwrap()]
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The overview's rows a user can see: (kind, name, state).
fn visible_rows(b: &Browser) -> WdResult<Vec<(String, String, String)>> {
    let mut rows = Vec::new();
    for row in b.find_all("table#objects tr.object")? {
        if row.displayed()? {
            let attr = |name: &str| -> WdResult<String> { Ok(row.attr(name)?.unwrap_or_default()) };
            rows.push((attr("data-kind")?, attr("data-name")?, attr("data-state")?));
        }
    }
    rows.sort();
    Ok(rows)
}

/// The state of one object's row on the overview (which updates itself).
fn row_state(b: &Browser, kind: &str, name: &str) -> WdResult<Option<String>> {
    b.find(&format!("table#objects tr.object[data-kind={kind}][data-name={name}]"))?.attr("data-state")
}

/// Chooses an option of a filter as a user does: opens the select, clicks the option, and
/// submits the form.
fn choose_filter(b: &Browser, name: &str, value: &str) {
    let select = format!("form#filters select[name={name}]");
    b.find(&select).unwrap().click().unwrap();
    let options = b.find_all(&format!("{select} option")).unwrap();
    let mut choice = None;
    for o in options {
        if o.attr("value").unwrap().as_deref() == Some(value) || (o.attr("value").unwrap().is_none() && o.text().unwrap() == value) {
            choice = Some(o);
            break;
        }
    }
    choice.unwrap_or_else(|| panic!("{select} has no option {value:?}")).click().unwrap();
    // A form without a script that submits on change has a button for it.
    if let Ok(submit) = b.find("form#filters [type=submit]") {
        submit.click().unwrap();
    }
}

fn text_of(b: &Browser, css: &str) -> String {
    b.find(css).unwrap_or_else(|e| panic!("{css}: {e}")).text().unwrap()
}

fn texts_of(b: &Browser, css: &str) -> Vec<String> {
    b.find_all(css).unwrap().iter().map(|e| e.text().unwrap()).collect()
}

/// The object page's history (newest first) holds the actions just taken: an approval is
/// the `PlanApplied` entry naming who approved it, an acknowledgement `DriftAcknowledged`.
fn assert_history(b: &Browser, actions: &[&str]) {
    let entries = texts_of(b, "section#history .history-entry");
    assert!(entries.len() <= 20, "at most 20 entries: {entries:?}");
    for action in actions {
        assert!(entries.iter().any(|e| e.contains(action)), "no {action} entry in the history: {entries:?}");
    }
}

fn settled(state: &str) -> bool {
    matches!(state, "Ready" | "Checked")
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n")
}

#[test]
fn a_reviewer_sees_both_drifts_filters_them_and_approves_and_acknowledges_them_in_the_browser() {
    // The browser first: without chromium the test fails at once, before any cluster work.
    let browser = Browser::start();
    for name in SCREENSHOTS {
        let _ = std::fs::remove_file(screenshot_dir().join(name));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(mut k) = runtime.block_on(KubeWorld::new("review")) else { return };
    let ns = k.ns.name.clone();
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(k.client(), &ns);

    // A local store whose kube context is the test cluster: a Terraform (drift detect, so
    // the correction waits for approval) and a Kustomization applying a ConfigMap there.
    k.world.extra_env.push(("KUBECONFIG".into(), k.kubeconfig.display().to_string()));
    let w = &k.world;
    w.commit(&[("infra/main.tf", MODULE), ("deploy/a.yaml", &config_map("a", "one"))], "module and manifests");
    let kustomization = format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: web\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: ./deploy\n  interval: 1h\n  prune: true\n  targetNamespace: {ns}\n  drift:\n    mode: detect\n    interval: 1h\n"
    );
    let objects = format!(
        "{}---\n{}---\n{kustomization}",
        git_repository("app", "main"),
        terraform_object("infra", "app", "./infra", "auto", "", "  drift:\n    mode: detect\n    interval: 1h\n")
    );
    w.apply(&objects).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(condition_in(&w.get("terraform", "infra"), "Ready")["reason"], "Succeeded", "{}", w.get("terraform", "infra"));
    assert_eq!(condition_in(&w.get("kustomization", "web"), "Ready")["status"], "True", "{}", w.get("kustomization", "web"));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");

    // Out-of-band changes to both: the file by hand, the ConfigMap with the admin client (as
    // `kubectl edit`). A drift check of each finds them.
    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    let patch = serde_json::json!({"data": {"key": "edited"}});
    runtime.block_on(configmaps.patch("a", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))).unwrap();
    w.reconcile("infra").ok();
    w.driftless(&["reconcile", "kustomization", "web"]).ok();
    let tf = w.get("terraform", "infra");
    let ks = w.get("kustomization", "web");
    for o in [&tf, &ks] {
        assert_eq!(condition_in(o, "Drifted")["status"], "True", "{}", o["status"]);
    }
    let tf_plan = tf["status"]["drift"]["planId"].as_str().unwrap().to_string();
    let tf_drift = tf["status"]["drift"]["id"].as_str().unwrap().to_string();
    let ks_plan = ks["status"]["drift"]["planId"].as_str().unwrap().to_string();
    let ks_drift = ks["status"]["drift"]["id"].as_str().unwrap().to_string();

    // The one-time login, then the overview: both drifted objects side by side.
    let review = Review::start(&k);
    let w = &k.world;
    browser.goto(&review.login_url).unwrap();
    let overview = format!("{}/", review.base());
    assert_eq!(browser.url().unwrap(), overview, "the login redirects to the overview");
    let both = vec![
        ("Kustomization".to_string(), "web".to_string(), "Drifted".to_string()),
        ("Terraform".to_string(), "infra".to_string(), "Drifted".to_string()),
    ];
    let rows = browser.wait_for("both objects Drifted on the overview", SHORT, |b| {
        let rows = visible_rows(b)?;
        Ok((rows == both).then_some(rows))
    });
    assert_eq!(rows, both);
    for row in browser.find_all("table#objects tr.object").unwrap() {
        assert_eq!(row.attr("data-namespace").unwrap().as_deref(), Some("default"));
    }
    assert_png(&browser.save_screenshot("overview.png"), 10_000);

    // Filtering by kind leaves one row.
    choose_filter(&browser, "kind", "Terraform");
    browser.wait_until("only the Terraform row after filtering by kind", SHORT, |b| {
        Ok(visible_rows(b)? == [("Terraform".to_string(), "infra".to_string(), "Drifted".to_string())])
    });
    assert_png(&browser.save_screenshot("overview-filtered.png"), 10_000);

    // The Terraform's page: its drift, the correction's plan id; approving it.
    browser.find("table#objects tr.object[data-kind=Terraform][data-name=infra] a.object-link").unwrap().click().unwrap();
    let tf_url = format!("{}/objects/terraform/default/infra", review.base());
    browser.wait_until("the Terraform's page", SHORT, |b| Ok(b.url()? == tf_url && b.find("#state").is_ok()));
    assert!(text_of(&browser, "#state").contains("Drifted"), "{}", text_of(&browser, "#state"));
    let drift = browser.find("section#drift").unwrap();
    assert_eq!(drift.attr("data-drift-id").unwrap().as_deref(), Some(tf_drift.as_str()));
    let entries = texts_of(&browser, "section#drift .drift-entry");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("drifttest_file.main") && entries[0].contains("content"), "{entries:?}");
    let plan = browser.find("section#plan").unwrap();
    assert_eq!(plan.attr("data-plan-id").unwrap().as_deref(), Some(tf_plan.as_str()), "the plan shown is the correction");
    assert!(plan.text().unwrap().contains(&tf_plan), "the plan id is shown: {}", plan.text().unwrap());
    assert_png(&browser.save_screenshot("terraform.png"), 10_000);

    browser.find("button#approve").unwrap().click().unwrap();
    let flash = browser.wait_for("a flash message after Approve", SHORT, |b| {
        let text = b.find("#flash")?.text()?;
        Ok((!text.trim().is_empty()).then_some(text))
    });
    assert!(flash.contains(&tf_plan), "the flash names the approved plan: {flash}");
    // The overview follows the background reconcile without a reload.
    browser.goto(&overview).unwrap();
    choose_filter(&browser, "kind", "");
    let state = browser.wait_for("the Terraform no longer Drifted on the overview", LONG, |b| {
        Ok(row_state(b, "Terraform", "infra")?.filter(|s| settled(s)))
    });
    assert!(settled(&state));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello", "the approved correction was applied");
    assert_eq!(row_state(&browser, "Kustomization", "web").unwrap().as_deref(), Some("Drifted"), "the other object is untouched");
    browser.goto(&tf_url).unwrap();
    let state = text_of(&browser, "#state");
    assert!(settled(state.trim()) || state.contains("Ready") || state.contains("Checked"), "{state}");
    assert_history(&browser, &["PlanApplied", "by local", "DriftResolved"]);
    assert_png(&browser.save_screenshot("terraform-after-approve.png"), 10_000);
    let tf = w.get("terraform", "infra");
    assert_eq!(tf["status"]["drift"]["detected"], false, "{}", tf["status"]);
    assert_eq!(tf["status"]["plan"]["id"], tf_plan.as_str());

    // The Kustomization: acknowledge its drift first (nothing changes in the cluster), then
    // approve the correction.
    let ks_url = format!("{}/objects/kustomization/default/web", review.base());
    browser.goto(&overview).unwrap();
    browser.wait_until("the Kustomization's row", SHORT, |b| Ok(row_state(b, "Kustomization", "web")?.is_some()));
    browser.find("table#objects tr.object[data-kind=Kustomization][data-name=web] a.object-link").unwrap().click().unwrap();
    browser.wait_until("the Kustomization's page", SHORT, |b| Ok(b.url()? == ks_url && b.find("#state").is_ok()));
    assert!(text_of(&browser, "#state").contains("Drifted"));
    assert_eq!(browser.find("section#drift").unwrap().attr("data-drift-id").unwrap().as_deref(), Some(ks_drift.as_str()));
    let entries = texts_of(&browser, "section#drift .drift-entry");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("ConfigMap") && entries[0].contains("/data/key"), "{entries:?}");
    assert_eq!(browser.find("section#plan").unwrap().attr("data-plan-id").unwrap().as_deref(), Some(ks_plan.as_str()));
    assert_png(&browser.save_screenshot("kustomization.png"), 10_000);

    browser.find("button#acknowledge").unwrap().click().unwrap();
    let flash = browser.wait_for("a flash message after Acknowledge", SHORT, |b| {
        let text = b.find("#flash")?.text()?;
        Ok((!text.trim().is_empty()).then_some(text))
    });
    assert!(flash.contains(&format!("acknowledged drift {ks_drift}")), "{flash}");
    // The page records the acknowledgement of exactly that drift on the object, as this user.
    // (Nothing turns it into status.drift.acknowledged yet, so the drift section cannot say
    // "Acknowledged by" here.)
    let annotations = w.get("kustomization", "web")["metadata"]["annotations"].clone();
    assert_eq!(annotations["driftless.dev/acknowledge-drift"], ks_drift.as_str(), "{annotations}");
    assert_eq!(annotations["driftless.dev/acted-by"], "local", "{annotations}");
    assert_eq!(runtime.block_on(configmaps.get("a")).unwrap().data.unwrap()["key"], "edited", "acknowledging corrects nothing");
    assert_png(&browser.save_screenshot("kustomization-acknowledged.png"), 10_000);

    browser.find("button#approve").unwrap().click().unwrap();
    let flash = browser.wait_for("a flash message after Approve", SHORT, |b| {
        let text = b.find("#flash")?.text()?;
        Ok(text.contains(&ks_plan).then_some(text))
    });
    assert!(flash.contains(&ks_plan), "{flash}");
    browser.goto(&overview).unwrap();
    browser.wait_until("both objects settled on the overview", LONG, |b| {
        Ok(visible_rows(b)?.len() == 2
            && row_state(b, "Kustomization", "web")?.is_some_and(|s| settled(&s))
            && row_state(b, "Terraform", "infra")?.is_some_and(|s| settled(&s)))
    });
    assert_eq!(runtime.block_on(configmaps.get("a")).unwrap().data.unwrap()["key"], "one", "the approved correction was applied");
    assert_png(&browser.save_screenshot("overview-after-approve.png"), 10_000);
    browser.goto(&ks_url).unwrap();
    assert_history(&browser, &["DriftAcknowledged", "PlanApplied", "by local"]);
    assert_png(&browser.save_screenshot("kustomization-after-approve.png"), 10_000);
    let ks = w.get("kustomization", "web");
    assert_eq!(ks["status"]["drift"]["detected"], false, "{}", ks["status"]);
    assert_eq!(ks["status"]["plan"]["id"], ks_plan.as_str());
    assert!(!review.log_text().contains("panicked"), "{}", review.log_text());
}
