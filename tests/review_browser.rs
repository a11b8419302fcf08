//! The review page in a real browser (headless chromium through chromedriver): a drifted
//! Terraform and a drifted Kustomization on a local store whose kube context is the testkit
//! cluster, reviewed, filtered, approved and acknowledged by clicking, as a reviewer would.
//! Screenshots of every page visited go to `<target dir>/review-screenshots/`.
//!
//! The first test proves the WebDriver client itself on a tiny page this test serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::webdriver::{Browser, assert_png};

const SHORT: Duration = Duration::from_secs(10);

/// A page with what the review page relies on: a one-time login that sets a cookie and
/// redirects, a table filtered by script, content that appears late, and a POST form whose
/// answer redirects to a page with a flash message.
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
}
