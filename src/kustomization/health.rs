//! Whether an applied object is healthy, with kstatus-style rules: a Deployment rolled out,
//! a Job complete, an object with a `Ready` condition Ready (custom resources, and
//! driftless's own Terraform and Kustomization objects), anything else once it exists; or,
//! for a kind `spec.healthCheckExprs` names, by its CEL expressions ([`super::cel`]), which
//! then win over these rules (as Flux's custom status readers win over kstatus).

use serde_json::Value;

use super::cel::Checks;

/// The health of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Not yet; with why, when there is more to say than "not yet".
    Progressing(Option<String>),
    /// Failed for good (a failed Job, a `failed` expression true): no use waiting.
    Failed(String),
}

/// The health of `object`, by the expressions of `checks` for its kind if there are some.
pub fn health(object: &Value, checks: &Checks) -> Health {
    if let Some(health) = checks.evaluate(object) {
        return health;
    }
    match builtin(object) {
        Ok(true) => Health::Healthy,
        Ok(false) => Health::Progressing(None),
        Err(m) => Health::Failed(m),
    }
}

/// The built-in rules: `Ok(true)` healthy, `Ok(false)` not yet, `Err` failed for good (a
/// failed Job).
fn builtin(object: &Value) -> Result<bool, String> {
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
        assert_eq!(builtin(&rolled), Ok(true));
        let stale = json!({"kind": "Deployment", "metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert_eq!(builtin(&stale), Ok(false));
        let failed =
            json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(builtin(&failed), Err("BackoffLimitExceeded".into()));
        let tf = json!({"kind": "Terraform", "metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(builtin(&tf), Ok(false));
        assert_eq!(builtin(&json!({"kind": "ConfigMap"})), Ok(true));
    }

    #[test]
    fn an_expression_for_the_kind_wins_over_the_built_in_rules() {
        let rolled = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}});
        assert_eq!(health(&rolled, &Checks::default()), Health::Healthy);
        let paused = crate::api::CustomHealthCheck {
            api_version: "apps/v1".into(),
            kind: Some("Deployment".into()),
            current: "has(metadata.annotations)".into(),
            ..Default::default()
        };
        let checks = Checks::compile(&[paused]).expect("parses");
        assert_eq!(health(&rolled, &checks), Health::Progressing(None));
        let job =
            json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(health(&job, &checks), Health::Failed("BackoffLimitExceeded".into()), "other kinds keep the rules");
    }
}
