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

/// Downloads an artifact (plain HTTP inside the cluster, as Flux serves artifacts).
pub async fn download(url: &str) -> Result<Bytes, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(uri).await.map_err(|e| format!("cannot download: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| format!("download interrupted: {e}"))?.to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("artifact server answered {status}: {}", text.trim()));
    }
    Ok(body)
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
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(e) => last = driftless_core::error::describe(&e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500 * (attempt + 1))).await;
    }
    Err(format!("cannot write result Secret {secret_name}: {last}"))
}
