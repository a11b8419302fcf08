//! Whether an applied object is healthy, with kstatus-style rules: a Deployment rolled out,
//! a Job complete, an object with a `Ready` condition Ready (custom resources, and
//! driftless's own Terraform and Kustomization objects), anything else once it exists.

use serde_json::Value;

/// `Ok(true)` healthy, `Ok(false)` not yet, `Err` failed for good (a failed Job).
pub fn health(object: &Value) -> Result<bool, String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    let condition = |t: &str| status["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == t).cloned();
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let current = observed.is_some() && observed >= generation;
            let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
            let ready = status["readyReplicas"].as_i64().unwrap_or(0);
            let available = if kind == "Deployment" { status["availableReplicas"].as_i64().unwrap_or(0) } else { ready };
            Ok(current && updated >= wanted && ready >= wanted && available >= wanted)
        }
        "Job" => {
            if condition("Failed").is_some_and(|c| c["status"] == "True") {
                return Err(condition("Failed")
                    .and_then(|c| c["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "job failed".into()));
            }
            Ok(condition("Complete").is_some_and(|c| c["status"] == "True"))
        }
        _ => match condition("Ready") {
            Some(c) => {
                let current = observed.is_none() || observed >= generation;
                Ok(current && c["status"] == "True")
            }
            None => Ok(true),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_jobs_and_ready_conditions() {
        let rolled = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(health(&rolled), Ok(true));
        let stale = json!({"kind": "Deployment", "metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(health(&stale), Ok(false));
        let failed =
            json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(health(&failed), Err("BackoffLimitExceeded".into()));
        let tf = json!({"kind": "Terraform", "metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(health(&tf), Ok(false));
        assert_eq!(health(&json!({"kind": "ConfigMap"})), Ok(true));
    }
}
