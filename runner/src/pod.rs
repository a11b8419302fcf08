//! What a runner needs when it runs as a pod: the artifact comes over HTTP from the
//! controller's artifact server, and the result goes into a Secret (it may hold sensitive
//! outputs, and it may be larger than the 4 KiB termination message), which the pod owns
//! so the garbage collector removes it with the pod. The termination message only points
//! at it.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use driftless_core::contract::RunResult;
use driftless_core::names::label;

/// The key of the result in its Secret.
pub const RESULT_KEY: &str = "result.json";

/// The largest artifact a runner downloads; the controller's artifacts are far smaller
/// (sources are capped when fetched), so more means something is wrong.
pub const MAX_DOWNLOAD_BYTES: usize = 1 << 30;
/// How often a busy artifact server (503 with Retry-After) is asked again.
const BUSY_RETRIES: u32 = 12;

/// Downloads an artifact (plain HTTP inside the cluster, as Flux serves artifacts). The
/// server streams a bounded number of downloads at once and answers the rest 503 with
/// `Retry-After`: those are retried, waiting as asked (at most 30 s a time).
pub async fn download(url: &str) -> Result<Bytes, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| "invalid artifact URL".to_string())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut attempt = 0;
    loop {
        let response = client.get(uri.clone()).await.map_err(|e| format!("cannot download: {e}"))?;
        let status = response.status();
        let retry_after = response.headers().get(hyper::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let body = http_body_util::Limited::new(response.into_body(), MAX_DOWNLOAD_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => format!("the artifact is larger than {MAX_DOWNLOAD_BYTES} bytes"),
                None => format!("download interrupted: {e}"),
            })?
            .to_bytes();
        if status == hyper::StatusCode::SERVICE_UNAVAILABLE && attempt < BUSY_RETRIES {
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_secs(retry_after.unwrap_or(5).clamp(1, 30))).await;
            continue;
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("artifact server answered {status}: {}", text.trim()));
        }
        return Ok(body);
    }
}

/// This pod, from the downward API environment the dispatcher sets.
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodIdentity {
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set (the runner pod gets it from the downward API)"));
        Ok(Self { name: var("POD_NAME")?, namespace: var("POD_NAMESPACE")?, uid: var("POD_UID")? })
    }
}

/// Writes the result Secret, owned by the pod.
pub async fn write_result(pod: &PodIdentity, secret_name: &str, result: &RunResult) -> Result<(), String> {
    let json = serde_json::to_vec(result).map_err(|e| format!("cannot encode the result: {e}"))?;
    let client = kube::Client::try_default().await.map_err(|e| format!("no Kubernetes API access: {e}"))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: Some(pod.namespace.clone()),
            labels: Some([(label::MANAGED_BY.to_string(), label::MANAGED_BY_VALUE.to_string())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        type_: Some(driftless_core::names::secret_type::RUN_RESULT.into()),
        data: Some([(RESULT_KEY.to_string(), ByteString(json))].into()),
        ..Default::default()
    };
    let api: kube::Api<Secret> = kube::Api::namespaced(client, &pod.namespace);
    let mut last = String::new();
    // The API may blip; the result is the one thing a finished run must not lose.
    for attempt in 0..5u64 {
        match api.create(&Default::default(), &secret).await {
            Ok(_) => return Ok(()),
            // Taken already: ours when an earlier create went through but its answer was
            // lost; anyone else's is an error, never a result silently not written.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return match api.get(secret_name).await {
                    Ok(existing) if owned_by(&existing, &pod.uid) => Ok(()),
                    Ok(_) => Err(format!("result Secret {secret_name} exists and was not written by this pod; the result is not recorded")),
                    Err(e) => {
                        Err(format!("result Secret {secret_name} exists and cannot be read: {}", driftless_core::error::describe(&e)))
                    }
                };
            }
            Err(e) => last = driftless_core::error::describe(&e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * (attempt + 1))).await;
    }
    Err(format!("cannot write result Secret {secret_name}: {last}"))
}

/// `secret` is owned by the pod with `uid`.
fn owned_by(secret: &Secret, uid: &str) -> bool {
    secret.metadata.owner_references.iter().flatten().any(|o| o.kind == "Pod" && o.uid == uid)
}
