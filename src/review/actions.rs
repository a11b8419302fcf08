//! What a reviewer does: approve a plan, acknowledge a drift, ask for a reconcile. Each is an
//! annotation on the object, set with the helper the CLI uses ([`crate::store::annotate`]),
//! so whoever reconciles sees one kind of request whatever made it.
//!
//! The order of checks is fixed: the caller (401), the form's origin and CSRF token (403),
//! the caller's right to patch this object (403), the object (404), then whether the id the
//! reviewer saw is still the current one (409). Only then is anything written.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::{Caller, Flash};
use super::model::Object;
use super::pages::{kind_of, load, not_found_object, object_response};
use super::{App, Host, Problem, object_path};
use crate::api::annotation;
use crate::store::{ObjectStore, StoreError, annotate};

type Target = Path<(String, String, String)>;

/// The checks every action shares; returns the kind, the object and the form's fields.
async fn prepare<H: Host>(
    app: &App<H>,
    caller: &Caller,
    headers: &HeaderMap,
    (kind, namespace, name): (String, String, String),
    body: &Bytes,
) -> Result<(Object, HashMap<String, String>), Problem> {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    app.auth.check_form(caller, headers, form.get("csrf").map(String::as_str))?;
    let kind = kind_of(&kind)?;
    if !app.auth.allowed(caller, "patch", kind, &namespace, Some(&name)).await? {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not patch {}.{} {name} in namespace {namespace}; acting on it needs a Role granting patch on {}; nothing was changed",
                caller.user.name,
                kind.plural(),
                crate::api::GROUP,
                kind.plural()
            ),
        ));
    }
    let object = load(app.host.store(), kind, &namespace, &name)
        .await
        .map_err(Problem::store)?
        .ok_or_else(|| not_found_object(kind, &namespace, &name))?;
    Ok((object, form))
}

/// Sets annotations on the object, whichever kind it is.
async fn set<S: ObjectStore>(store: &S, object: &Object, changes: &[(&str, Option<&str>)]) -> Result<(), StoreError> {
    crate::with_reconciled_kind!(object.kind, K => annotate::<K, _>(store, &object.namespace, &object.name, changes).await.map(drop), _ => Ok(()))
}

/// The action was done: tell the host, keep the message for the next page, go back there.
fn done<H: Host>(app: &App<H>, caller: &Caller, object: &Object, text: String) -> Response {
    tracing::info!(kind = %object.kind, namespace = %object.namespace, name = %object.name, user = %caller.user.name, "{text}");
    app.snapshots.invalidate();
    app.host.after_action(object.kind, &object.namespace, &object.name);
    app.auth.set_flash(caller, Flash { ok: true, text });
    Redirect::to(&object_path(object.kind, &object.namespace, &object.name)).into_response()
}

/// 409: the page as it is now, with why nothing was done.
async fn conflict<H: Host>(app: &App<H>, caller: &Caller, object: &Object, text: String) -> Response {
    tracing::info!(kind = %object.kind, namespace = %object.namespace, name = %object.name, user = %caller.user.name, "refused: {text}");
    object_response(app, caller, object, Some(Flash { ok: false, text }), StatusCode::CONFLICT).await
}

/// `POST .../approve` with `plan_id`: approves exactly that plan, if it is still the one
/// waiting (the pending plan, or the correction of the current drift).
pub(crate) async fn approve<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    caller: Caller,
    Path(target): Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (object, form) = prepare(&app, &caller, &headers, target, &body).await?;
    let wanted = form.get("plan_id").map(|s| s.trim()).unwrap_or_default();
    let shown_digest = form.get("plan_digest").map(|s| s.trim()).filter(|s| !s.is_empty());
    let current = object.approvable_plan();
    let current_digest = crate::reconcile::approval::approvable_with_digest(&object.status).and_then(|(_, d)| d);
    if let (Some(shown), Some(now)) = (shown_digest, current_digest)
        && current == Some(wanted)
        && shown != now
    {
        let text =
            format!("not approved: plan {wanted} was made again since you saw it (digest {now}, not {shown}); review it before approving");
        return Ok(conflict(&app, &caller, &object, text).await);
    }
    if wanted.is_empty() || crate::reconcile::approval::approve(&object.status, Some(wanted)).is_err() {
        let now = match current {
            Some(id) => format!("the plan waiting now is {id}; review it before approving"),
            None => "no plan waits for approval now".to_string(),
        };
        let asked = if wanted.is_empty() {
            "no plan id was given".to_string()
        } else {
            format!("plan {wanted} is not waiting for approval any more")
        };
        return Ok(conflict(&app, &caller, &object, format!("not approved: {asked}; {now}")).await);
    }
    let user = caller.user.name.as_str();
    let value = crate::reconcile::approval::annotation_value(wanted, current_digest);
    set(app.host.store(), &object, &[(annotation::APPROVE_PLAN, Some(value.as_str())), (annotation::ACTED_BY, Some(user))])
        .await
        .map_err(Problem::store)?;
    let next = if app.auth.is_local() { "it is being applied now" } else { "the controller applies it now" };
    Ok(done(&app, &caller, &object, format!("approved plan {wanted} as {user}; {next}")))
}

/// `POST .../acknowledge` with `drift_id`: acknowledges exactly that drift, if it is the
/// current one; its alerts stop until the drift changes.
pub(crate) async fn acknowledge<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    caller: Caller,
    Path(target): Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (object, form) = prepare(&app, &caller, &headers, target, &body).await?;
    let wanted = form.get("drift_id").map(|s| s.trim()).unwrap_or_default();
    let current = object.current_drift();
    if wanted.is_empty() || current != Some(wanted) {
        let now = match current {
            Some(id) => format!("the current drift is {id}; review it before acknowledging"),
            None => "no drift is detected now".to_string(),
        };
        let asked =
            if wanted.is_empty() { "no drift id was given".to_string() } else { format!("drift {wanted} is not the current drift") };
        return Ok(conflict(&app, &caller, &object, format!("not acknowledged: {asked}; {now}")).await);
    }
    let user = caller.user.name.as_str();
    set(app.host.store(), &object, &[(annotation::ACKNOWLEDGE_DRIFT, Some(wanted)), (annotation::ACTED_BY, Some(user))])
        .await
        .map_err(Problem::store)?;
    Ok(done(&app, &caller, &object, format!("acknowledged drift {wanted} as {user}; its alerts stop until it changes")))
}

/// `POST .../reconcile`: a complete reconcile now (as `driftless reconcile`).
pub(crate) async fn reconcile<H: Host>(
    AxumState(app): AxumState<Arc<App<H>>>,
    caller: Caller,
    Path(target): Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (object, _) = prepare(&app, &caller, &headers, target, &body).await?;
    let now = jiff::Timestamp::now().to_string();
    set(app.host.store(), &object, &[(annotation::RECONCILE_REQUESTED_AT, Some(&now))]).await.map_err(Problem::store)?;
    Ok(done(&app, &caller, &object, format!("reconcile requested at {now}")))
}
