//! `noop-runner`: a runner that does no terraform work, for measuring the controller's own
//! overhead (benches/controller.rs).
//!
//! It speaks the runner pod contract of `driftless-runner` (see `src/dispatch/pod.rs` and
//! `runner/src/pod.rs`): it reads the RunSpec from `--spec-file`, downloads the artifact
//! from the controller's artifact server and checks its digest (serving artifacts is the
//! controller's work, so it stays in the measurement), then writes a RunResult with outcome
//! `applied` (or `--outcome no-changes`) and the plan id the real runner would give into
//! the Secret `--result-secret`, owned by its pod (POD_NAME, POD_NAMESPACE, POD_UID; the
//! client comes from KUBECONFIG, which the fake kubelet sets), and a pointer into
//! `--termination-log`. The controller, the API server and the pods are real; only
//! terraform (and the state backend it would read and lock) is skipped.
//!
//! The RunSpec and RunResult are handled as JSON, not as driftless's types: testkit sits
//! below driftless in the dependency graph. The benchmark checks that the plan id matches
//! `driftless_core::PlanId`.

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The key of the result in its Secret, as `driftless-runner` writes it.
const RESULT_KEY: &str = "result.json";

struct Args {
    spec_file: String,
    result_secret: String,
    termination_log: Option<String>,
    outcome: String,
}

fn parse_args() -> Result<Args, String> {
    let (mut spec_file, mut result_secret, mut termination_log, mut outcome) = (None, None, None, "applied".to_string());
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--spec-file" => spec_file = Some(value()?),
            "--result-secret" => result_secret = Some(value()?),
            "--termination-log" => termination_log = Some(value()?),
            "--outcome" => outcome = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(outcome.as_str(), "applied" | "no-changes") {
        return Err(format!("--outcome {outcome}: expected applied or no-changes"));
    }
    Ok(Args {
        spec_file: spec_file.ok_or("--spec-file is required")?,
        result_secret: result_secret.ok_or("--result-secret is required (this runner only runs in a pod)")?,
        termination_log,
        outcome,
    })
}

/// The plan id `driftless-runner` gives a plan of these inputs (no drift):
/// `plan-<7 alphanumerics of the revision's last part>-<10 hex of sha256(inputs digest)>`,
/// as `driftless_core::PlanId::new` computes it.
fn plan_id(source_revision: &str, inputs_digest: &str) -> String {
    let hex = source_revision.rsplit(':').next().unwrap_or(source_revision);
    let short: String = hex.chars().filter(char::is_ascii_alphanumeric).take(7).collect();
    let digest = hex::encode(Sha256::digest(inputs_digest.as_bytes()));
    format!("plan-{short}-{}", &digest[..10])
}

/// Downloads the artifact and checks it against `sha256:<hex>`.
async fn fetch_artifact(url: &str, digest: &str) -> Result<usize, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid artifact URL {url}: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(uri).await.map_err(|e| format!("cannot download the artifact: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| format!("artifact download interrupted: {e}"))?.to_bytes();
    if !status.is_success() {
        return Err(format!("artifact server answered {status}"));
    }
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    if actual != digest {
        return Err(format!("artifact digest {actual} is not the expected {digest}"));
    }
    Ok(body.len())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (a runner pod gets it from the downward API)"))
}

/// Creates the result Secret, owned by this pod; a Secret already there (a retried write
/// that had landed) counts as written.
async fn write_result(secret_name: &str, result: &Value) -> Result<(), String> {
    let (pod, namespace, uid) = (env("POD_NAME")?, env("POD_NAMESPACE")?, env("POD_UID")?);
    let client = kube::Client::try_default().await.map_err(|e| format!("no Kubernetes API access: {e}"))?;
    let bytes = serde_json::to_vec(result).map_err(|e| format!("cannot encode the result: {e}"))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: Some(namespace.clone()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "driftless".to_string())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod,
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        type_: Some("driftless.dev/run-result".into()),
        data: Some([(RESULT_KEY.to_string(), ByteString(bytes))].into()),
        ..Default::default()
    };
    let api: kube::Api<Secret> = kube::Api::namespaced(client, &namespace);
    match api.create(&Default::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(format!("cannot write result Secret {secret_name}: {e}")),
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let text = std::fs::read(&args.spec_file).map_err(|e| format!("cannot read {}: {e}", args.spec_file))?;
    let spec: Value = serde_json::from_slice(&text).map_err(|e| format!("invalid RunSpec: {e}"))?;
    let field = |key: &str| spec[key].as_str().ok_or_else(|| format!("the RunSpec has no {key}"));
    let downloaded = Instant::now();
    fetch_artifact(field("artifactUrl")?, field("artifactDigest")?).await?;
    let download_ms = downloaded.elapsed().as_millis() as u64;
    let id = plan_id(field("sourceRevision")?, field("inputsDigest")?);
    let result = json!({
        "outcome": args.outcome,
        "planId": id,
        "summary": { "add": 0, "change": 0, "destroy": 0 },
        "timingsMs": [["artifact", download_ms], ["total", started.elapsed().as_millis() as u64]],
    });
    write_result(&args.result_secret, &result).await?;
    if let Some(path) = &args.termination_log {
        let pointer = json!({ "outcome": args.outcome, "resultSecret": args.result_secret });
        let _ = std::fs::write(path, pointer.to_string());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("noop-runner: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("noop-runner: {message}");
            if let Some(path) = &args.termination_log {
                let _ = std::fs::write(path, &message);
            }
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plan_id;

    #[test]
    fn plan_id_takes_the_short_revision_and_the_inputs_digest() {
        let id = plan_id("main@sha1:0123456789abcdef", "inputs");
        assert!(id.starts_with("plan-0123456-"), "{id}");
        assert_eq!(id.len(), "plan-0123456-".len() + 10);
    }
}
