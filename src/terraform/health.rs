//! tofu-controller's `spec.healthChecks`: after an apply the controller connects to each tcp
//! `address` and GETs each http `url`, in order, stopping at the first that fails; the answer
//! is the `HealthCheck` condition, and a failure makes the object not Ready until a later
//! pass (at `retryInterval`) succeeds.
//!
//! As in tofu-controller, a target may name outputs as `${{ .name }}`, and the values are
//! those of the outputs Secret (`spec.writeOutputsToSecret`): its keys, sensitive outputs
//! included. Right after an apply they come from the apply itself (what that Secret now
//! holds); a later pass reads the Secret. A target holding a sensitive value is shown as
//! written in the spec, never rendered, and errors are scrubbed of those values.
//!
//! What runs when, what a result means for status ([`due`], [`prepare`], [`conclude`]) is
//! pure; [`probe`] is the network, [`check`] the step the reconcile calls.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use driftless_core::scrub::Scrubber;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::template::{self, TemplateError};
use crate::api::{
    ConditionStatus, Conditions, HealthCheck, HealthCheckType, HealthTarget, Terraform, TerraformStatus, WriteOutputsToSecret,
    condition_type as ct, reason,
};
use crate::dispatch::{Output, RunnerDispatch};
use crate::reconcile::{ReconcileError, Run};
use crate::store::{Notice, ObjectStore, Severity};

/// How many redirects an http check follows, as Go's default client (tofu-controller's).
const MAX_REDIRECTS: usize = 10;
/// How much of a failing answer's body is read, and how much of it a message quotes.
const BODY_LIMIT: usize = 16 * 1024;
const EXCERPT_CHARS: usize = 200;

/// The values the checks' templates read, which of them are sensitive, and where they come
/// from (for messages).
#[derive(Clone, Debug, Default)]
pub struct Data {
    values: serde_json::Map<String, Value>,
    sensitive: Vec<String>,
    source: String,
}

impl Data {
    /// What `spec.writeOutputsToSecret` writes of the outputs of the apply that just ran.
    pub fn from_outputs(target: Option<&WriteOutputsToSecret>, outputs: &[Output]) -> Data {
        let Some(target) = target else { return Data::none() };
        let (written, _missing) = super::outputs::select(target, outputs);
        let sensitive_names: Vec<&str> = outputs.iter().filter(|o| o.sensitive).map(|o| o.name.as_str()).collect();
        let sensitive_keys = sensitive_keys(target, outputs.iter().map(|o| o.name.as_str()), &sensitive_names);
        Data::of(target, written.into_iter().map(|(k, v)| (k, v.0)), &sensitive_keys)
    }

    /// The outputs Secret as a later pass finds it (`None`: missing, or not this Terraform's).
    /// `available` and `sensitive` are the output names status keeps.
    pub fn from_secret(target: Option<&WriteOutputsToSecret>, secret: Option<&Secret>, available: &[String], sensitive: &[String]) -> Data {
        let Some(target) = target else { return Data::none() };
        let Some(secret) = secret else {
            return Data { source: format!("Secret {} (not there, or not written by this Terraform)", target.name), ..Data::default() };
        };
        let names: Vec<&str> = sensitive.iter().map(String::as_str).collect();
        let sensitive_keys = sensitive_keys(target, available.iter().map(String::as_str), &names);
        let data = secret.data.clone().unwrap_or_default();
        Data::of(target, data.into_iter().map(|(k, v)| (k, v.0)), &sensitive_keys)
    }

    fn none() -> Data {
        Data { source: "no outputs Secret (spec.writeOutputsToSecret is not set)".into(), ..Data::default() }
    }

    fn of(target: &WriteOutputsToSecret, entries: impl Iterator<Item = (String, Vec<u8>)>, sensitive_keys: &[String]) -> Data {
        let mut data = Data { source: format!("Secret {}", target.name), ..Data::default() };
        // A value's `<key>__type` companion is no output of its own.
        for (key, bytes) in entries.filter(|(k, _)| !k.ends_with(super::outputs::TYPE_SUFFIX)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if sensitive_keys.contains(&key) {
                data.sensitive.push(text.clone());
            }
            data.values.insert(key, Value::String(text));
        }
        data
    }

    /// Removes the sensitive values from text meant for status and events, however short.
    fn scrubber(&self) -> Scrubber {
        Scrubber::credentials(&self.sensitive)
    }
}

/// The Secret keys of the outputs named `sensitive`.
fn sensitive_keys<'a>(target: &WriteOutputsToSecret, names: impl Iterator<Item = &'a str>, sensitive: &[&str]) -> Vec<String> {
    super::outputs::keys(target, names).into_iter().filter(|(name, _)| sensitive.contains(&name.as_str())).map(|(_, key)| key).collect()
}

/// Whether the checks run in this pass (the pass's run, if any, already recorded): the object
/// has checks, something is applied and not destroyed, the pass ended well (Ready, or not
/// Ready only because of its checks), and either `again` (this pass applied a plan, or a
/// person asked for it: `driftless reconcile`), or the checks have not passed at this
/// generation (they failed, were added, or changed).
pub fn due(object: &Terraform, status: &TerraformStatus, again: bool) -> bool {
    if object.spec.health_checks.is_empty() || object.spec.destroy || status.common.last_applied_plan.is_none() {
        return false;
    }
    if status.common.plan.as_ref().is_some_and(|p| p.destroy && p.applied_at.is_some()) {
        return false;
    }
    let ended_well =
        status.condition(ct::READY).is_some_and(|c| c.status == ConditionStatus::True || c.reason == reason::HEALTH_CHECKS_FAILED);
    if !ended_well {
        return false;
    }
    again
        || status
            .condition(ct::HEALTH_CHECK)
            .is_none_or(|c| c.status != ConditionStatus::True || c.observed_generation != object.metadata.generation)
}

/// One check, rendered and ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub name: String,
    pub kind: HealthCheckType,
    pub target: HealthTarget,
    /// The target as messages show it: rendered, or as written when it holds a sensitive value.
    pub shown: String,
    pub timeout: Duration,
}

/// A check that did not pass; the message names it and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// Check `index` of the spec rendered over `data`: a reference to a key `data` lacks, or a
/// target that is no URL or address once rendered, fails it.
pub fn prepare(index: usize, check: &HealthCheck, data: &Data) -> Result<Probe, Failed> {
    let (field, written) = check.target();
    let written = written.unwrap_or_default();
    let kind = check.type_.as_str();
    let at = format!("health check {:?} ({kind}, spec.healthChecks[{index}].{field})", check.name);
    let rendered = template::render(written, template::VALUES, &Value::Object(data.values.clone())).map_err(|e| {
        let why = match &e {
            TemplateError::Missing { reference, missing, .. } if names_top_level(reference, missing) => {
                let mut keys: Vec<&str> = data.values.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let holds = if keys.is_empty() { "no outputs".to_string() } else { keys.join(", ") };
                format!("{reference} names no output of {}; it holds {holds}", data.source)
            }
            other => other.to_string(),
        };
        Failed(format!("{at}: {why}"))
    })?;
    let scrubber = data.scrubber();
    let shown = if scrubber.scrub(&rendered) == rendered { rendered.clone() } else { written.to_string() };
    let target = check.type_.parse_target(&rendered).map_err(|why| {
        let why = if shown == rendered { why } else { format!("{written:?} is not a valid {field} once rendered") };
        Failed(format!("{at}: {}", scrubber.scrub(&why)))
    })?;
    Ok(Probe { name: check.name.clone(), kind: check.type_, target, shown, timeout: check.timeout() })
}

/// Whether `reference` (`${{ .a.b }}`) misses its first key, `missing`: an output, not a
/// field inside one.
fn names_top_level(reference: &str, missing: &str) -> bool {
    let inner = reference.trim_start_matches(template::VALUES.open).trim_end_matches(template::VALUES.close).trim();
    inner.strip_prefix('.').and_then(|path| path.split('.').next()) == Some(missing)
}

/// What one pass found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed (their names, in order).
    Passed(Vec<String>),
    Failed(String),
}

/// The pass's result in status: the `HealthCheck` condition, and Ready. A failure makes the
/// object not Ready with the failure's message (announced once per distinct failure); a pass
/// after a failure makes it Ready again and says so. A pass right after an apply leaves the
/// apply's Ready message.
pub fn conclude(status: &mut TerraformStatus, meta: &ObjectMeta, at: &str, outcome: &Outcome) -> Vec<Notice> {
    let generation = meta.generation;
    let mut notices = Vec::new();
    let was_failing = status.condition(ct::READY).is_some_and(|c| c.reason == reason::HEALTH_CHECKS_FAILED);
    match outcome {
        Outcome::Passed(names) => {
            let message = format!("health checks succeeded: {}", names.join(", "));
            status.set_condition(ct::HEALTH_CHECK, ConditionStatus::True, reason::HEALTH_CHECKS_SUCCEED, &message, generation, at);
            if was_failing {
                let ready = format!("{message}; {}", applied_message(status));
                status.set_condition(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &ready, generation, at);
                notices.push(notice(reason::HEALTH_CHECKS_SUCCEED, Severity::Info, message));
            }
        }
        Outcome::Failed(message) => {
            let already = status.condition(ct::HEALTH_CHECK).is_some_and(|c| c.status == ConditionStatus::False && c.message == *message);
            status.set_condition(ct::HEALTH_CHECK, ConditionStatus::False, reason::HEALTH_CHECKS_FAILED, message, generation, at);
            status.set_condition(ct::READY, ConditionStatus::False, reason::HEALTH_CHECKS_FAILED, message, generation, at);
            if !already {
                notices.push(notice(reason::HEALTH_CHECKS_FAILED, Severity::Error, message.clone()));
            }
        }
    }
    notices
}

/// The checks are gone from the spec: so is their condition, and a Ready they held false.
pub fn forget(status: &mut TerraformStatus, meta: &ObjectMeta, at: &str) {
    if status.condition(ct::HEALTH_CHECK).is_none() {
        return;
    }
    status.remove_condition(ct::HEALTH_CHECK);
    if status.condition(ct::READY).is_some_and(|c| c.reason == reason::HEALTH_CHECKS_FAILED) {
        let message = format!("no health checks; {}", applied_message(status));
        status.set_condition(ct::READY, ConditionStatus::True, reason::SUCCEEDED, &message, meta.generation, at);
    }
}

fn applied_message(status: &TerraformStatus) -> String {
    let plan = status.common.last_applied_plan.as_deref().unwrap_or_default();
    let revision = status.common.last_applied_revision.as_deref().unwrap_or_default();
    format!("applied plan {plan} at {revision}")
}

fn notice(reason: &'static str, severity: Severity, message: String) -> Notice {
    Notice { reason, severity, message, plan_id: None, drift_id: None }
}

/// Runs the checks in order, stopping at the first that fails.
pub async fn run_checks(checks: &[HealthCheck], data: &Data) -> Outcome {
    let scrubber = data.scrubber();
    let mut passed = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        let probe = match prepare(i, check, data) {
            Ok(p) => p,
            Err(Failed(message)) => return Outcome::Failed(message),
        };
        if let Err(why) = probe_target(&probe).await {
            let message =
                format!("health check {:?} ({}) failed on {}: {}", probe.name, probe.kind.as_str(), probe.shown, scrubber.scrub(&why));
            tracing::info!(check = %probe.name, "{message}");
            return Outcome::Failed(message);
        }
        tracing::debug!(check = %probe.name, "health check passed");
        passed.push(probe.name);
    }
    Outcome::Passed(passed)
}

/// The step after a pass's run (or after deciding there is nothing to run): the checks when
/// [`due`], their result in status; `Some(retry)` when they failed. `applied`: this pass
/// applied a plan, which gave these outputs; `forced`: a person asked for this reconcile.
pub async fn check<S: ObjectStore, D: RunnerDispatch>(
    run: &mut Run<'_, Terraform, S, D>,
    applied: Option<&[Output]>,
    forced: bool,
) -> Result<Option<Duration>, ReconcileError> {
    let at = jiff::Timestamp::now().to_string();
    if run.object.spec.health_checks.is_empty() {
        forget(&mut run.status, &run.object.metadata, &at);
        return Ok(None);
    }
    if !due(&run.object, &run.status, applied.is_some() || forced) {
        return Ok(None);
    }
    let target = run.object.spec.write_outputs_to_secret.clone();
    let data = match (applied, &target) {
        (Some(outputs), _) => Data::from_outputs(target.as_ref(), outputs),
        (None, Some(t)) => {
            let secret = run.ctx.store.get::<Secret>(&run.namespace, &t.name).await?;
            let ours = secret.filter(|s| super::outputs::owned_by(s, &run.object));
            Data::from_secret(target.as_ref(), ours.as_ref(), &run.status.available_outputs, &run.status.sensitive_outputs)
        }
        (None, None) => Data::from_outputs(None, &[]),
    };
    let outcome = run_checks(&run.object.spec.health_checks, &data).await;
    let failed = matches!(outcome, Outcome::Failed(_));
    for n in conclude(&mut run.status, &run.object.metadata, &at, &outcome) {
        run.notice(n);
    }
    Ok(failed.then(|| run.retry()))
}

/// Connects to one target within its timeout; `Err` says what went wrong.
pub async fn probe_target(probe: &Probe) -> Result<(), String> {
    let within = humantime::format_duration(probe.timeout);
    match &probe.target {
        HealthTarget::Tcp { host, port } => {
            match tokio::time::timeout(probe.timeout, tokio::net::TcpStream::connect((host.as_str(), *port))).await {
                Err(_) => Err(format!("no connection within {within}")),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Ok(Ok(_stream)) => Ok(()),
            }
        }
        HealthTarget::Http { url } => {
            let answer = tokio::time::timeout(probe.timeout, get(url)).await.map_err(|_| format!("no answer within {within}"))??;
            if (200..400).contains(&answer.status) { Ok(()) } else { Err(format!("answered {}{}", answer.status, excerpt(&answer.body))) }
        }
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Empty<Bytes>>;

/// An HTTP/1.1 client for http and https (rustls on ring, the system's CA roots): the stack
/// the notifier uses.
fn client() -> Result<Client, String> {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    let certs = ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs);
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// GETs `url`, following redirects as Go's client does; the final answer's status and the
/// start of its body.
async fn get(url: &str) -> Result<Answer, String> {
    let client = client()?;
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let request = hyper::Request::get(url.as_str())
            .header(hyper::header::USER_AGENT, concat!("driftless/", env!("CARGO_PKG_VERSION"), " health-check"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot make a request of {url:?}: {e}"))?;
        let response = client.request(request).await.map_err(|e| describe(&e))?;
        let status = response.status();
        let location = response.headers().get(hyper::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
            && let Some(location) = location
        {
            url = resolve(&url, &location)?;
            continue;
        }
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < BODY_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        return Ok(Answer { status: status.as_u16(), body: bytes });
    }
    Err(format!("stopped after {MAX_REDIRECTS} redirects"))
}

/// A redirect's `Location` against the URL that answered it.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    let bad = || format!("redirected to {location:?}, which is not a URL");
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let uri: hyper::Uri = base.parse().map_err(|_| bad())?;
    let scheme = uri.scheme_str().ok_or_else(bad)?;
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}"));
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    let dir = uri.path().rsplit_once('/').map_or("", |(d, _)| d);
    Ok(format!("{scheme}://{authority}{dir}/{location}"))
}

/// An error and its sources on one line, skipping levels that only repeat the one before.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// `: <start of the body>` on one line, or nothing for an empty body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return String::new();
    }
    let mut cut: String = line.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    format!(": {cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn terraform(extra: Value) -> Terraform {
        let mut spec = json!({ "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "10m",
                               "writeOutputsToSecret": { "name": "app-outputs" } });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "infra", "generation": 3 },
            "spec": spec,
        }))
        .expect("terraform")
    }

    fn checks() -> Value {
        json!({ "healthChecks": [
            { "name": "web", "type": "http", "url": "${{ .url }}/healthz" },
            { "name": "db", "type": "tcp", "address": "${{ .host }}:${{ .port }}", "timeout": "5s" },
        ] })
    }

    fn output(name: &str, value: Value, sensitive: bool) -> Output {
        Output { name: name.into(), value, sensitive, value_type: None }
    }

    /// A status after an apply: Ready, a plan applied.
    fn applied() -> TerraformStatus {
        let mut status = TerraformStatus::default();
        status.common.last_applied_plan = Some("plan-abc-1".into());
        status.common.last_applied_revision = Some("main@sha1:abc".into());
        status.set_condition(ct::READY, ConditionStatus::True, reason::SUCCEEDED, "applied plan plan-abc-1", Some(3), "t0");
        status
    }

    fn data(outputs: &[Output]) -> Data {
        Data::from_outputs(Some(&WriteOutputsToSecret { name: "app-outputs".into(), ..Default::default() }), outputs)
    }

    #[test]
    fn checks_run_after_an_apply_and_again_only_until_they_pass_at_this_generation() {
        let tf = terraform(checks());
        assert!(!due(&terraform(json!({})), &applied(), true), "no checks, nothing to run");
        assert!(!due(&tf, &TerraformStatus::default(), false), "nothing applied yet");
        let mut status = applied();
        assert!(due(&tf, &status, true), "after an apply");
        assert!(due(&tf, &status, false), "applied before the checks were added: they have never run");
        status.set_condition(ct::HEALTH_CHECK, ConditionStatus::True, reason::HEALTH_CHECKS_SUCCEED, "ok", Some(3), "t1");
        assert!(!due(&tf, &status, false), "passed at this generation: not on every reconcile");
        assert!(due(&tf, &status, true), "but after every apply, and when a person asks");
        status.set_condition(ct::HEALTH_CHECK, ConditionStatus::True, reason::HEALTH_CHECKS_SUCCEED, "ok", Some(2), "t1");
        assert!(due(&tf, &status, false), "the spec changed since they passed");
        status.set_condition(ct::HEALTH_CHECK, ConditionStatus::False, reason::HEALTH_CHECKS_FAILED, "no", Some(3), "t1");
        status.set_condition(ct::READY, ConditionStatus::False, reason::HEALTH_CHECKS_FAILED, "no", Some(3), "t1");
        assert!(due(&tf, &status, false), "failed: retried");
        status.set_condition(ct::READY, ConditionStatus::False, reason::PLAN_FAILED, "boom", Some(3), "t1");
        assert!(!due(&tf, &status, false), "a pass that failed otherwise checks nothing");
        let mut destroyed = applied();
        destroyed.common.plan = Some(crate::api::PlanStatus { destroy: true, applied_at: Some("t1".into()), ..Default::default() });
        assert!(!due(&tf, &destroyed, true), "nothing to check once destroyed");
    }

    #[test]
    fn targets_are_rendered_from_the_outputs_secret_keys() {
        let outputs = [
            output("url", json!("http://127.0.0.1:8080"), false),
            output("host", json!("127.0.0.1"), false),
            output("port", json!(5432), false),
        ];
        let d = data(&outputs);
        let tf = terraform(checks());
        let web = prepare(0, &tf.spec.health_checks[0], &d).unwrap();
        assert_eq!(web.target, HealthTarget::Http { url: "http://127.0.0.1:8080/healthz".into() });
        assert_eq!((web.shown.as_str(), web.timeout), ("http://127.0.0.1:8080/healthz", Duration::from_secs(20)));
        let db = prepare(1, &tf.spec.health_checks[1], &d).unwrap();
        assert_eq!(db.target, HealthTarget::Tcp { host: "127.0.0.1".into(), port: 5432 });
        assert_eq!(db.timeout, Duration::from_secs(5));

        // Renamed by writeOutputsToSecret.outputs: the templates read the Secret's keys.
        let renamed = WriteOutputsToSecret { name: "s".into(), outputs: vec!["url:endpoint".into()], ..Default::default() };
        let d = Data::from_outputs(Some(&renamed), &outputs);
        let check: HealthCheck = serde_json::from_value(json!({ "name": "web", "type": "http", "url": "${{ .endpoint }}" })).unwrap();
        assert!(prepare(0, &check, &d).is_ok());
    }

    #[test]
    fn a_missing_output_fails_the_check_naming_it_and_what_there_is() {
        let d = data(&[output("url", json!("http://127.0.0.1:8080"), false), output("token", json!("s3cr3t-t0ken"), true)]);
        let check: HealthCheck = serde_json::from_value(json!({ "name": "web", "type": "http", "url": "${{ .nope }}/x" })).unwrap();
        let Failed(message) = prepare(2, &check, &d).unwrap_err();
        assert_eq!(
            message,
            "health check \"web\" (http, spec.healthChecks[2].url): ${{ .nope }} names no output of Secret app-outputs; it holds token, url"
        );
        let none = Data::from_outputs(None, &[]);
        let Failed(message) = prepare(0, &check, &none).unwrap_err();
        assert!(message.contains("no outputs Secret (spec.writeOutputsToSecret is not set)"), "{message}");
    }

    #[test]
    fn a_target_holding_a_sensitive_value_is_shown_as_written() {
        let d = data(&[output("host", json!("secret-db.internal"), true), output("port", json!(5432), false)]);
        let check: HealthCheck =
            serde_json::from_value(json!({ "name": "db", "type": "tcp", "address": "${{ .host }}:${{ .port }}" })).unwrap();
        let probe = prepare(0, &check, &d).unwrap();
        assert_eq!(probe.target, HealthTarget::Tcp { host: "secret-db.internal".into(), port: 5432 });
        assert_eq!(probe.shown, "${{ .host }}:${{ .port }}");
        let bad: HealthCheck = serde_json::from_value(json!({ "name": "db", "type": "tcp", "address": "${{ .host }}" })).unwrap();
        let Failed(message) = prepare(0, &bad, &d).unwrap_err();
        assert!(!message.contains("secret-db"), "{message}");
        assert!(message.contains("\"${{ .host }}\" is not a valid address once rendered"), "{message}");
    }

    #[test]
    fn a_later_pass_reads_the_secret_and_knows_its_sensitive_keys_from_status() {
        let target =
            WriteOutputsToSecret { name: "app-outputs".into(), outputs: vec!["token:key".into(), "url".into()], ..Default::default() };
        let secret = Secret {
            data: Some(
                [("key".to_string(), ByteString(b"s3cr3t".to_vec())), ("url".to_string(), ByteString(b"http://127.0.0.1:1".to_vec()))]
                    .into(),
            ),
            ..Default::default()
        };
        let d = Data::from_secret(Some(&target), Some(&secret), &["token".into(), "url".into()], &["token".into()]);
        assert_eq!(d.values.get("url"), Some(&json!("http://127.0.0.1:1")));
        assert_eq!(d.sensitive, vec!["s3cr3t".to_string()]);
        let gone = Data::from_secret(Some(&target), None, &[], &[]);
        assert!(gone.source.contains("not there, or not written by this Terraform"), "{}", gone.source);
    }

    #[test]
    fn a_failure_is_not_ready_announced_once_and_a_later_pass_is_ready_again() {
        let tf = terraform(checks());
        let mut status = applied();
        let failed = Outcome::Failed("health check \"web\" (http) failed on http://x/: answered 500".into());
        let notices = conclude(&mut status, &tf.metadata, "t1", &failed);
        assert_eq!(notices.iter().map(|n| n.reason).collect::<Vec<_>>(), vec![reason::HEALTH_CHECKS_FAILED]);
        for type_ in [ct::HEALTH_CHECK, ct::READY] {
            let c = status.condition(type_).cloned().unwrap();
            assert_eq!((c.status, c.reason.as_str()), (ConditionStatus::False, reason::HEALTH_CHECKS_FAILED), "{type_}");
            assert!(c.message.contains("\"web\""), "{c:?}");
        }
        assert!(conclude(&mut status, &tf.metadata, "t2", &failed).is_empty(), "the same failure again stays quiet");

        let passed = Outcome::Passed(vec!["web".into(), "db".into()]);
        let notices = conclude(&mut status, &tf.metadata, "t3", &passed);
        assert_eq!(notices.iter().map(|n| n.reason).collect::<Vec<_>>(), vec![reason::HEALTH_CHECKS_SUCCEED]);
        let ready = status.condition(ct::READY).cloned().unwrap();
        assert_eq!((ready.status, ready.reason.as_str()), (ConditionStatus::True, reason::SUCCEEDED));
        assert_eq!(ready.message, "health checks succeeded: web, db; applied plan plan-abc-1 at main@sha1:abc");
        let hc = status.condition(ct::HEALTH_CHECK).cloned().unwrap();
        assert_eq!(
            (hc.status, hc.reason.as_str(), hc.observed_generation),
            (ConditionStatus::True, reason::HEALTH_CHECKS_SUCCEED, Some(3))
        );

        // Right after an apply, a pass leaves the apply's message.
        let mut fresh = applied();
        assert!(conclude(&mut fresh, &tf.metadata, "t4", &passed).is_empty());
        assert_eq!(fresh.condition(ct::READY).map(|c| c.message.as_str()), Some("applied plan plan-abc-1"));
    }

    #[test]
    fn checks_removed_from_the_spec_take_their_condition_and_failure_with_them() {
        let tf = terraform(checks());
        let mut status = applied();
        conclude(&mut status, &tf.metadata, "t1", &Outcome::Failed("web failed".into()));
        forget(&mut status, &tf.metadata, "t2");
        assert!(status.condition(ct::HEALTH_CHECK).is_none());
        assert!(status.is_true(ct::READY));
    }

    #[test]
    fn redirects_resolve_against_the_url_that_answered() {
        let base = "http://127.0.0.1:8080/app/health?x=1";
        assert_eq!(resolve(base, "https://other:9/h").unwrap(), "https://other:9/h");
        assert_eq!(resolve(base, "//other/h").unwrap(), "http://other/h");
        assert_eq!(resolve(base, "/ok").unwrap(), "http://127.0.0.1:8080/ok");
        assert_eq!(resolve(base, "ok").unwrap(), "http://127.0.0.1:8080/app/ok");
    }

    /// A server on 127.0.0.1 answering each connection with the next of `answers`.
    async fn serve(answers: Vec<String>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        addr
    }

    fn answer(status: &str, headers: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
    }

    fn http_probe(url: String) -> Probe {
        Probe {
            name: "web".into(),
            kind: HealthCheckType::Http,
            target: HealthTarget::Http { url: url.clone() },
            shown: url,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn http_passes_from_200_to_399_after_following_redirects() {
        let addr = serve(vec![answer("302 Found", "Location: /ok\r\n", ""), answer("204 No Content", "", "")]).await;
        assert_eq!(probe_target(&http_probe(format!("http://{addr}/start"))).await, Ok(()));
        let addr =
            serve(vec![answer("302 Found", "Location: /broken\r\n", ""), answer("500 Internal Server Error", "", "database\n down")]).await;
        assert_eq!(probe_target(&http_probe(format!("http://{addr}/start"))).await, Err("answered 500: database down".into()));
        let addr = serve(vec![answer("304 Not Modified", "", "")]).await;
        assert_eq!(
            probe_target(&http_probe(format!("http://{addr}/"))).await,
            Ok(()),
            "a 3xx that is not followed counts, as in tofu-controller"
        );
    }

    #[tokio::test]
    async fn tcp_passes_when_it_connects_and_fails_naming_why() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = |port| Probe {
            name: "db".into(),
            kind: HealthCheckType::Tcp,
            target: HealthTarget::Tcp { host: "127.0.0.1".into(), port },
            shown: format!("127.0.0.1:{port}"),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(probe_target(&probe(port)).await, Ok(()));
        drop(listener);
        let refused = probe_target(&probe(port)).await.unwrap_err();
        assert!(refused.starts_with("cannot connect: ") && refused.contains("refused"), "{refused}");
    }
}
