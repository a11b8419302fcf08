//! The pages: the overview (`GET /`, and its rows as JSON at `GET /api/objects`), one
//! object's page, the login pages, and the embedded assets. Rendering functions take plain
//! data and return HTML, so what a page shows is decided in one place per page.
//!
//! The DOM is a contract with the browser tests: `table#objects` of `tr.object` rows with
//! `data-kind/-namespace/-name/-state`; `form#filters`; on an object page `#state`,
//! `section#plan[data-plan-id]`, `section#drift[data-drift-id]` with `.drift-entry` items,
//! `section#history` with `.history-entry` items, `#flash`, and the buttons `#approve`,
//! `#acknowledge`, `#reconcile`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::auth::{Caller, Flash, same_origin};
use super::html::{csrf_input, escape, options, page};
use super::model::{Filters, Kind, Object, Row, State};
use super::{App, Host, PlanRendering, Problem, object_path};
use crate::store::{ObjectStore, StoreError};
use crate::throttle::Peer;

const CSS: &str = include_str!("assets/review.css");
const JS: &str = include_str!("assets/review.js");

/// How many history entries an object page shows, newest first.
const HISTORY_SHOWN: usize = 20;

/// One object of a planned kind, `None` when absent.
pub(crate) async fn load<S: ObjectStore>(store: &S, kind: Kind, namespace: &str, name: &str) -> Result<Option<Object>, StoreError> {
    Ok(crate::with_reconciled_kind!(kind, K => store.get::<K>(namespace, name).await?.map(Object::of), _ => None))
}

/// The rows of every object the caller may list, in kind, namespace, name order.
async fn visible<H: Host>(app: &Arc<App<H>>, caller: &Caller) -> Result<Vec<Row>, Problem> {
    let objects = super::snapshot::objects(app).await?;
    let scopes: BTreeSet<(Kind, &str)> = objects.iter().map(|o| (o.kind, o.namespace.as_str())).collect();
    let answers = futures::future::join_all(scopes.iter().map(|(kind, ns)| app.auth.allowed(caller, "list", *kind, ns, None))).await;
    let mut denied = BTreeSet::new();
    for (scope, answer) in scopes.into_iter().zip(answers) {
        if !answer? {
            denied.insert(scope);
        }
    }
    Ok(objects.iter().filter(|o| !denied.contains(&(o.kind, o.namespace.as_str()))).map(Object::row).collect())
}

fn filters(uri: &Uri) -> Result<Filters, Problem> {
    Filters::parse(uri.query()).map_err(|m| Problem::new(StatusCode::BAD_REQUEST, m))
}

/// `GET /`: the overview.
pub(crate) async fn overview<H: Host>(AxumState(app): AxumState<Arc<App<H>>>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let filters = filters(&uri)?;
    let mut rows = visible(&app, &caller).await?;
    let namespaces: BTreeSet<String> = rows.iter().map(|r| r.namespace.clone()).collect();
    rows.retain(|r| filters.matches(r));
    let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let body = overview_body(&rows, &filters, &namespaces, uri.query().unwrap_or_default());
    Ok(Html(page("Objects", Some((&caller.user.name, caller.csrf.as_deref())), &body)).into_response())
}

/// `GET /api/objects`: the overview's rows as a JSON list, same filters.
pub(crate) async fn api_objects<H: Host>(AxumState(app): AxumState<Arc<App<H>>>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let filters = filters(&uri).map_err(Problem::json)?;
    let mut rows = visible(&app, &caller).await.map_err(Problem::json)?;
    rows.retain(|r| filters.matches(r));
    let body = serde_json::to_string(&rows).map_err(|e| Problem::internal(e).json())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The overview's `<main>`: filters and the table. `query` is the filter query the script
/// polls with.
pub(crate) fn overview_body(rows: &[Row], filters: &Filters, namespaces: &[&str], query: &str) -> String {
    let kinds: Vec<&str> = Kind::PLANNED.iter().map(|k| k.as_str()).collect();
    let states: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
    let mut out = String::with_capacity(600 + rows.len() * 600);
    let _ = write!(
        out,
        "<main id=\"overview\">\n<h1>Objects</h1>\n<form id=\"filters\" method=\"get\" action=\"/\">\
         <label>Namespace <select name=\"namespace\">{}</select></label> \
         <label>Kind <select name=\"kind\">{}</select></label> \
         <label>State <select name=\"state\">{}</select></label> \
         <button type=\"submit\">Filter</button></form>\n\
         <p class=\"count\"><span id=\"count\">{}</span> objects <span id=\"live\" class=\"live\"></span></p>\n\
         <table id=\"objects\" data-query=\"{}\">\n<thead><tr><th>Kind</th><th>Object</th><th>State</th><th>Last check</th>\
         <th>Pending plan</th><th>Drift</th><th>Message</th></tr></thead>\n<tbody>\n",
        options("any namespace", namespaces, filters.namespace.as_deref()),
        options("any kind", &kinds, filters.kind.map(Kind::as_str)),
        options("any state", &states, filters.state.map(State::as_str)),
        rows.len(),
        escape(query),
    );
    for row in rows {
        row_html(&mut out, row);
    }
    out.push_str("</tbody>\n</table>\n</main>");
    out
}

/// One `tr.object`; the script builds the same cells from `/api/objects`.
fn row_html(out: &mut String, row: &Row) {
    let ack =
        row.acknowledged_by.as_deref().map(|by| format!(" <span class=\"ack\">acknowledged by {}</span>", escape(by))).unwrap_or_default();
    let _ = writeln!(
        out,
        "<tr class=\"object\" data-kind=\"{kind}\" data-namespace=\"{ns}\" data-name=\"{name}\" data-state=\"{state}\">\
         <td class=\"kind\">{kind}</td><td class=\"object\"><a class=\"object-link\" href=\"{url}\">{ns}/{name}</a></td>\
         <td class=\"state\">{state}</td><td class=\"checked\">{checked}</td><td class=\"plan\">{plan}</td>\
         <td class=\"drift\">{drift}{ack}</td><td class=\"message\">{message}</td></tr>",
        kind = row.kind.as_str(),
        ns = escape(&row.namespace),
        name = escape(&row.name),
        state = row.state.as_str(),
        url = escape(&row.url),
        checked = escape(row.last_checked_at.as_deref().unwrap_or_default()),
        plan = escape(row.plan_id.as_deref().unwrap_or_default()),
        drift = escape(row.drift.as_deref().unwrap_or_default()),
        message = escape(&row.message),
    );
}

/// `GET /objects/{kind}/{namespace}/{name}`.
pub(crate) async fn object<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    caller: Caller,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let kind = kind_of(&kind)?;
    may_view(&app, &caller, kind, &namespace).await?;
    let object = load(app.host.store(), kind, &namespace, &name)
        .await
        .map_err(Problem::store)?
        .ok_or_else(|| not_found_object(kind, &namespace, &name))?;
    let flash = app.auth.take_flash(&caller);
    Ok(object_response(&app, &caller, &object, flash, StatusCode::OK).await)
}

pub(crate) fn kind_of(segment: &str) -> Result<Kind, Problem> {
    super::model::planned_kind(segment)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no such kind {segment:?}: use terraform or kustomization")))
}

pub(crate) fn not_found_object(kind: Kind, namespace: &str, name: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("{kind} {namespace}/{name} not found"))
}

/// Viewing needs `list` on the kind in the namespace (checked before the object is read, so
/// a denied caller cannot learn whether it exists).
pub(crate) async fn may_view<H: Host>(app: &App<H>, caller: &Caller, kind: Kind, namespace: &str) -> Result<(), Problem> {
    if app.auth.allowed(caller, "list", kind, namespace, None).await? {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "{} may not list {}.{} in namespace {namespace}; viewing needs a Role granting list on them",
            caller.user.name,
            kind.plural(),
            crate::api::GROUP
        ),
    ))
}

/// An object's page with `flash`, answered with `status` (409 shows the page as it is now,
/// with why the action was refused).
pub(crate) async fn object_response<H: Host>(
    app: &App<H>,
    caller: &Caller,
    object: &Object,
    flash: Option<Flash>,
    status: StatusCode,
) -> Response {
    let rendering = match object.approvable_plan() {
        Some(id) => Some(match app.auth.may_read_plans(caller, &object.namespace).await {
            Ok(true) => Rendering::Read(app.host.plan_rendering(object.kind, &object.namespace, &object.name, id).await),
            Ok(false) => Rendering::NeedsSecretRead,
            Err(p) => Rendering::Read(PlanRendering::Unreadable(p.message)),
        }),
        None => None,
    };
    let title = format!("{} {}/{}", object.kind, object.namespace, object.name);
    let body = object_body(object, rendering.as_ref(), flash.as_ref(), caller.csrf.as_deref());
    (status, Html(page(&title, Some((&caller.user.name, caller.csrf.as_deref())), &body))).into_response()
}

fn flash_html(flash: Option<&Flash>) -> String {
    match flash {
        Some(f) => {
            let result = if f.ok { "ok" } else { "error" };
            format!("<div id=\"flash\" class=\"flash {result}\" data-result=\"{result}\" role=\"status\">{}</div>\n", escape(&f.text))
        }
        None => String::new(),
    }
}

/// An action form: POST to the object's `action`, with the CSRF token and `hidden` fields.
fn action_form(object: &Object, action: &str, hidden: &[(&str, &str)], button: &str, label: &str, csrf: Option<&str>) -> String {
    let mut fields = csrf_input(csrf);
    for (name, value) in hidden {
        let _ = write!(fields, "<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value));
    }
    format!(
        "<form class=\"action\" method=\"post\" action=\"{}/{action}\">{fields}<button id=\"{button}\" type=\"submit\">{}</button></form>",
        escape(&object_path(object.kind, &object.namespace, &object.name)),
        escape(label)
    )
}

/// What the plan section shows of the stored rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rendering {
    /// Read from the backend for a caller who may read it.
    Read(PlanRendering),
    /// Not read: the rendering comes from the backend, read with the controller's rights, and
    /// this caller may not `get` Secrets in the object's namespace. The page shows what status
    /// shows (id, summary, revision), as `kubectl get` would.
    NeedsSecretRead,
}

/// The `<main>` of an object's page.
pub(crate) fn object_body(object: &Object, rendering: Option<&Rendering>, flash: Option<&Flash>, csrf: Option<&str>) -> String {
    let status = &object.status;
    let state = object.state();
    let plan_id = object.approvable_plan().unwrap_or_default();
    let drift_id = object.current_drift().unwrap_or_default();
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<main id=\"object\" data-kind=\"{kind}\" data-namespace=\"{ns}\" data-name=\"{name}\" data-state=\"{state}\" data-plan-id=\"{plan}\" data-drift-id=\"{drift}\" data-acknowledged-by=\"{acked}\">\n\
         <p class=\"crumbs\"><a href=\"/\">All objects</a></p>\n\
         <h1><span class=\"kind\">{kind}</span> <span class=\"namespace\">{ns}</span>/<span class=\"name\">{name}</span></h1>\n{flash}\
         <section id=\"summary\">\n<p>State: <strong id=\"state\" class=\"state\">{state}</strong></p>\n<p id=\"message\">{message}</p>\n<dl>",
        kind = object.kind.as_str(),
        ns = escape(&object.namespace),
        name = escape(&object.name),
        state = state.as_str(),
        plan = escape(plan_id),
        drift = escape(drift_id),
        acked = escape(object.acknowledged_by().unwrap_or_default()),
        flash = flash_html(flash),
        message = escape(object.message()),
    );
    for (label, value) in [
        ("Last applied revision", status.last_applied_revision.as_deref()),
        ("Last attempted revision", status.last_attempted_revision.as_deref()),
        ("Last drift check", status.drift.as_ref().and_then(|d| d.last_checked_at.as_deref())),
    ] {
        if let Some(v) = value {
            let _ = write!(out, "<dt>{label}</dt><dd>{}</dd>", escape(v));
        }
    }
    out.push_str("</dl>\n");
    out.push_str(&action_form(object, "reconcile", &[], "reconcile", "Reconcile now", csrf));
    out.push_str("\n</section>\n");

    // The plan waiting for a reviewer, rendered as the reconciler stored it.
    let _ = write!(out, "<section id=\"plan\" data-plan-id=\"{}\">\n<h2>Plan</h2>\n", escape(plan_id));
    let pending = status.plan.as_ref().filter(|p| p.id == plan_id && !plan_id.is_empty());
    if plan_id.is_empty() {
        out.push_str("<p class=\"none\">No plan waits for approval.</p>\n");
        if let Some(p) = &status.plan {
            let applied = p.applied_at.as_deref().map(|a| format!(", applied {}", escape(a))).unwrap_or_default();
            let by = p
                .approved_by
                .map(|b| {
                    format!(
                        " (approved by {})",
                        serde_json::to_value(b).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<p class=\"last\">Last plan <code>{}</code>: {}{applied}{}</p>",
                escape(&p.id),
                escape(&p.summary.to_string()),
                escape(&by)
            );
        }
    } else {
        let what = match pending {
            Some(p) if p.corrects_drift => "corrects the drift below",
            Some(p) if p.destroy => "destroys the resources",
            Some(_) => "waits for approval",
            None => "corrects the drift below",
        };
        let _ = write!(out, "<p>Plan <code class=\"plan-id\">{}</code> {what}", escape(plan_id));
        if let Some(p) = pending {
            let _ = write!(
                out,
                ": {} (revision <code>{}</code>, made {})",
                escape(&p.summary.to_string()),
                escape(&p.source_revision),
                escape(&p.created_at)
            );
        }
        out.push_str(".</p>\n");
        match rendering {
            Some(Rendering::Read(PlanRendering::Text(text))) => {
                let _ = writeln!(out, "<pre class=\"rendering\">{}</pre>", escape(text));
            }
            Some(Rendering::Read(PlanRendering::Unreadable(why))) => {
                let _ = writeln!(out, "<p class=\"rendering-missing\">The saved plan cannot be read: {}</p>", escape(why));
            }
            Some(Rendering::NeedsSecretRead) => {
                let _ = writeln!(
                    out,
                    "<p id=\"rendering-withheld\" class=\"rendering-missing\">The plan's rendering needs read access to Secrets in namespace {} \
                     (it is kept in the object's backend there); ask for a Role granting get on secrets to see it.</p>",
                    escape(&object.namespace)
                );
            }
            Some(Rendering::Read(PlanRendering::Missing)) | None => {
                out.push_str("<p class=\"rendering-missing\">No readable rendering is stored for this plan; the drift entries below are what it reverts.</p>\n");
            }
        }
        // The approval binds the stored plan shown here (its digest), not whatever plan has
        // this id when the button is pressed.
        let digest = crate::reconcile::approval::approvable_with_digest(status).and_then(|(_, d)| d).unwrap_or_default();
        out.push_str(&action_form(
            object,
            "approve",
            &[("plan_id", plan_id), ("plan_digest", digest)],
            "approve",
            &format!("Approve {plan_id}"),
            csrf,
        ));
        out.push('\n');
    }
    out.push_str("</section>\n");

    // Drift: what changed outside driftless (field paths only, never values).
    let _ = write!(out, "<section id=\"drift\" data-drift-id=\"{}\">\n<h2>Drift</h2>\n", escape(drift_id));
    match status.drift.as_ref() {
        Some(d) if d.detected => {
            let _ = writeln!(
                out,
                "<p class=\"summary\">{}</p>\n<p class=\"when\">Detected {}; last checked {}.</p>",
                escape(&d.summary),
                escape(d.detected_at.as_deref().unwrap_or("?")),
                escape(d.last_checked_at.as_deref().unwrap_or("?"))
            );
            match (object.acknowledged_by(), &d.acknowledged) {
                (Some(by), Some(a)) => {
                    let _ = writeln!(out, "<p class=\"acknowledged\">Acknowledged by {} at {}.</p>", escape(by), escape(&a.at));
                }
                _ => {
                    out.push_str(&action_form(
                        object,
                        "acknowledge",
                        &[("drift_id", drift_id)],
                        "acknowledge",
                        "Acknowledge this drift",
                        csrf,
                    ));
                    out.push('\n');
                }
            }
            out.push_str("<ul class=\"drift-entries\">\n");
            for o in &d.objects {
                let _ = writeln!(
                    out,
                    "<li class=\"drift-entry\" data-action=\"{action}\"><span class=\"kind\">{kind}</span> <span class=\"name\">{name}</span> \
                     <span class=\"action\">{action}</span> <span class=\"fields\">{fields}</span></li>",
                    action = escape(&o.action),
                    kind = escape(&o.kind),
                    name = escape(&o.name),
                    fields = escape(&o.fields.join(", ")),
                );
            }
            out.push_str("</ul>\n");
        }
        Some(d) if d.last_checked_at.is_some() => {
            let _ = writeln!(
                out,
                "<p class=\"none\">No drift ({}); last checked {}.</p>",
                escape(&d.summary),
                escape(d.last_checked_at.as_deref().unwrap_or_default())
            );
        }
        _ => out.push_str("<p class=\"none\">Not checked for drift yet.</p>\n"),
    }
    out.push_str("</section>\n");

    // History, newest first.
    out.push_str("<section id=\"history\">\n<h2>History</h2>\n");
    if status.history.is_empty() {
        out.push_str("<p class=\"none\">Nothing recorded yet.</p>\n");
    } else {
        out.push_str("<ol class=\"history\">\n");
        for h in status.history.iter().rev().take(HISTORY_SHOWN) {
            let opt = |class: &str, prefix: &str, v: Option<&String>| {
                v.map(|v| format!(" <span class=\"{class}\">{prefix}{}</span>", escape(v))).unwrap_or_default()
            };
            let _ = writeln!(
                out,
                "<li class=\"history-entry\" data-action=\"{action}\"><time datetime=\"{time}\">{time}</time> <span class=\"action\">{action}</span>{plan}{drift}{by} <span class=\"message\">{message}</span></li>",
                time = escape(&h.time),
                action = escape(&h.action),
                plan = opt("plan-id", "", h.plan_id.as_ref()),
                drift = opt("drift-id", "", h.drift_id.as_ref()),
                by = opt("by", "by ", h.by.as_ref()),
                message = escape(&h.message),
            );
        }
        out.push_str("</ol>\n");
    }
    out.push_str("</section>\n</main>");
    out
}

/// `GET /login`: local mode takes the printed token once; a cluster shows the token form.
pub(crate) async fn login_page<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    Peer(client): Peer,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if app.auth.caller(&headers, client).await.is_ok() {
        return Redirect::to("/").into_response();
    }
    if !app.auth.is_local() {
        return Html(page("Log in", None, &login_form_body(None))).into_response();
    }
    let token = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned());
    let Some(token) = token else {
        return Problem::new(StatusCode::UNAUTHORIZED, "Open the login link `driftless review` printed; it works once.").into_response();
    };
    match app.auth.login_local(&token, client) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(p) => p.into_response(),
    }
}

/// `POST /login` (cluster): a pasted token becomes a session after a TokenReview.
pub(crate) async fn login_form<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    Peer(client): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if app.auth.is_local() {
        return Problem::new(StatusCode::NOT_FOUND, "a local review page logs in with the link it printed").into_response();
    }
    if let Err(p) = same_origin(&headers) {
        return p.into_response();
    }
    let token = form_urlencoded::parse(&body).find(|(k, _)| k == "token").map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    if token.is_empty() {
        return (StatusCode::UNAUTHORIZED, Html(page("Log in", None, &login_form_body(Some("Paste a token first."))))).into_response();
    }
    let secure = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    match app.auth.login_token(&token, secure, client).await {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(p) if p.status == StatusCode::UNAUTHORIZED => {
            (StatusCode::UNAUTHORIZED, Html(page("Log in", None, &login_form_body(Some("That token is not valid for this cluster.")))))
                .into_response()
        }
        Err(p) => p.into_response(),
    }
}

fn login_form_body(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<div id=\"flash\" class=\"flash error\" data-result=\"error\" role=\"status\">{}</div>\n", escape(e)))
        .unwrap_or_default();
    format!(
        "<main id=\"login\">\n<h1>Log in</h1>\n{error}<p>Paste a Kubernetes token for your user, e.g. from <code>kubectl create token NAME</code>. \
         The page acts with your rights: it checks them with the cluster for every view and action.</p>\n\
         <form method=\"post\" action=\"/login\"><label>Token <textarea name=\"token\" rows=\"4\" cols=\"60\" autocomplete=\"off\"></textarea></label> \
         <button id=\"login\" type=\"submit\">Log in</button></form>\n</main>"
    )
}

/// `POST /logout`.
pub(crate) async fn logout<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let csrf = form_urlencoded::parse(&body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    app.auth.check_form(&caller, &headers, csrf.as_deref())?;
    if let Some(id) = &caller.session {
        app.auth.logout(id);
    }
    let expired = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", super::auth::COOKIE);
    if app.auth.is_local() {
        let body = "<main id=\"logged-out\"><h1>Logged out</h1><p>Restart <code>driftless review</code> for a new login link.</p></main>";
        return Ok(([(header::SET_COOKIE, expired)], Html(page("Logged out", None, body))).into_response());
    }
    Ok(([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response())
}

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(crate) async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS).into_response()
}

pub(crate) async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such page")
}

/// The page of an error answer: the message in `#flash`, and where to go next.
pub(crate) fn problem_page(message: &str, status: StatusCode, login: bool) -> String {
    let next =
        if login { "<p><a id=\"login-link\" href=\"/login\">Log in with a token</a></p>" } else { "<p><a href=\"/\">All objects</a></p>" };
    let body = format!(
        "<main id=\"problem\" data-status=\"{}\">\n<h1>{}</h1>\n{}{next}\n</main>",
        status.as_u16(),
        escape(status.canonical_reason().unwrap_or("Error")),
        flash_html(Some(&Flash { ok: false, text: message.to_string() })),
    );
    page(status.canonical_reason().unwrap_or("Error"), None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Acknowledgement, DriftObject, DriftStatus, HistoryEntry, ObjectStatus, PlanStatus};

    fn drifted() -> Object {
        let mut status = ObjectStatus {
            plan: Some(PlanStatus { id: "plan-a1-fix".into(), pending: true, corrects_drift: true, ..Default::default() }),
            drift: Some(DriftStatus {
                detected: true,
                id: Some("d1".into()),
                last_checked_at: Some("2026-01-01T00:00:00Z".into()),
                summary: "1 changed <outside>".into(),
                objects: vec![DriftObject {
                    kind: "drifttest_file".into(),
                    name: "drifttest_file.main".into(),
                    action: "update".into(),
                    fields: vec!["content".into()],
                }],
                plan_id: Some("plan-a1-fix".into()),
                acknowledged: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        for i in 0..25 {
            status.record(HistoryEntry {
                time: format!("t{i:02}"),
                action: "DriftChecked".into(),
                message: format!("check {i}"),
                ..Default::default()
            });
        }
        Object {
            kind: Kind::Terraform,
            namespace: "ns".into(),
            name: "app\"><script>".into(),
            suspended: false,
            annotations: Default::default(),
            status,
        }
    }

    #[test]
    fn the_object_page_carries_the_contract_and_escapes_what_it_shows() {
        let o = drifted();
        let html = object_body(
            &o,
            Some(&Rendering::Read(PlanRendering::Text("~ update <b>".into()))),
            Some(&Flash { ok: true, text: "approved".into() }),
            Some("tok"),
        );
        assert!(html.contains("<section id=\"plan\" data-plan-id=\"plan-a1-fix\">"), "{html}");
        assert!(html.contains("<section id=\"drift\" data-drift-id=\"d1\">"));
        assert!(html.contains("<strong id=\"state\" class=\"state\">Drifted</strong>"));
        assert!(html.contains("id=\"approve\"") && html.contains("id=\"acknowledge\"") && html.contains("id=\"reconcile\""));
        assert!(html.contains("name=\"plan_id\" value=\"plan-a1-fix\"") && html.contains("name=\"csrf\" value=\"tok\""));
        assert!(html.contains("<pre class=\"rendering\">~ update &lt;b&gt;</pre>"));
        assert!(html.contains("<div id=\"flash\" class=\"flash ok\""));
        assert_eq!(html.matches("class=\"drift-entry\"").count(), 1);
        assert_eq!(html.matches("class=\"history-entry\"").count(), 20, "at most 20 entries");
        let newest = html.find("check 24").unwrap();
        assert!(newest < html.find("check 23").unwrap(), "newest first");
        assert!(!html.contains("check 4<"), "the oldest beyond 20 are left out");
        assert!(!html.contains("<script>\""), "names are escaped");
        assert!(html.contains("app&quot;&gt;&lt;script&gt;"));

        let mut acked = drifted();
        if let Some(d) = acked.status.drift.as_mut() {
            d.acknowledged = Some(Acknowledgement { drift_id: "d1".into(), by: "alice".into(), at: "t".into() });
        }
        let html = object_body(&acked, None, None, None);
        assert!(html.contains("Acknowledged by alice") && !html.contains("id=\"acknowledge\""), "{html}");
    }

    #[test]
    fn a_caller_without_secret_read_sees_the_status_of_the_plan_but_not_its_rendering() {
        let mut o = drifted();
        if let Some(p) = o.status.plan.as_mut() {
            p.summary.change = 1;
            p.source_revision = "main@sha1:abc".into();
        }
        let html = object_body(&o, Some(&Rendering::NeedsSecretRead), None, Some("tok"));
        assert!(!html.contains("class=\"rendering\""), "{html}");
        assert!(html.contains("id=\"rendering-withheld\""), "{html}");
        assert!(html.contains("needs read access to Secrets in namespace ns"), "{html}");
        assert!(
            html.contains("<code class=\"plan-id\">plan-a1-fix</code>") && html.contains("main@sha1:abc"),
            "status still shows: {html}"
        );
        assert!(html.contains("id=\"approve\""), "approving needs patch, not the rendering: {html}");
    }

    #[test]
    fn the_overview_rows_carry_their_data_attributes() {
        let o = drifted();
        let rows = vec![o.row()];
        let html = overview_body(&rows, &Filters::default(), &["ns"], "kind=Terraform");
        assert!(html.contains("<table id=\"objects\" data-query=\"kind=Terraform\">"), "{html}");
        assert!(html.contains("<tr class=\"object\" data-kind=\"Terraform\" data-namespace=\"ns\" data-name=\"app&quot;&gt;&lt;script&gt;\" data-state=\"Drifted\">"), "{html}");
        assert!(html.contains("class=\"object-link\" href=\"/objects/terraform/ns/app%22%3E%3Cscript%3E\""), "{html}");
        assert!(html.contains("<select name=\"state\">") && html.contains("<form id=\"filters\""));
        assert!(html.contains("1 changed &lt;outside&gt;"));
    }
}
