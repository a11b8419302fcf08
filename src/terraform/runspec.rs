//! What a run of a Terraform is given: its inputs resolved from the object and the store
//! (variables, options, backend, the inputs digest) and the one RunSpec built from them, for
//! the reconciler's runs and for `driftless diff terraform`'s speculative plan alike.

use std::path::PathBuf;

use super::inputs::{InputError, inputs_digest, resolve_backend, resolve_options, resolve_variables, secret_suffix, state_name};
use crate::api::{Artifact, Terraform, reason};
use crate::dispatch::{BackendSpec, ObjectKey, Operation, RunSpec, RunVariable};
use crate::store::{ObjectStore, StoreError};
use driftless_core::artifact::ArtifactStore;
use driftless_core::contract::{ForceUnlock, ReadablePlanFormat, TerraformOptions};

/// What one run needs besides the object.
#[derive(Clone)]
pub struct Inputs {
    pub artifact: Artifact,
    pub variables: Vec<RunVariable>,
    pub options: TerraformOptions,
    pub backend: BackendSpec,
    pub digest: String,
}

/// Resolves variables, options and the backend (`default` unless the object names its
/// own); the inner `Err` is the failure to report, with its condition reason.
pub async fn resolve<S: ObjectStore>(
    store: &S,
    artifacts: &ArtifactStore,
    object: &Terraform,
    default: &BackendSpec,
    artifact: Artifact,
) -> Result<Result<Inputs, (&'static str, String)>, StoreError> {
    let variables = match resolve_variables(store, object).await {
        Ok(v) => v,
        Err(e) => return Ok(Err((reason::VARIABLES_NOT_FOUND, e.to_string()))),
    };
    let mut options = match resolve_options(store, object).await {
        Ok(o) => o,
        Err(InputError::Store(e)) => return Err(e),
        Err(e) => return Ok(Err((reason::VARIABLES_NOT_FOUND, e.to_string()))),
    };
    match super::decrypt::var_files(store, artifacts, object, &artifact).await? {
        Ok(files) => options.files.extend(files),
        Err(message) => return Ok(Err((reason::DECRYPTION_FAILED, message))),
    }
    let backend = match resolve_backend(store, object, default).await {
        Ok(b) => b,
        Err(InputError::Store(e)) => return Err(e),
        Err(e) => return Ok(Err((reason::BACKEND_FAILED, e.to_string()))),
    };
    let digest = inputs_digest(object, &artifact, &variables, &options);
    Ok(Ok(Inputs { artifact, variables, options, backend, digest }))
}

/// Where and how this process's runs execute.
pub struct Runner {
    /// Where the runner downloads the artifact from.
    pub artifact_url: String,
    pub terraform_path: Option<PathBuf>,
    pub tofu_path: Option<PathBuf>,
    /// Who holds the state lock while it runs.
    pub identity: String,
    /// The deadline of everything up to the plan.
    pub timeout_seconds: u64,
}

/// What a run does beyond its operation.
pub struct Request {
    pub operation: Operation,
    /// The revision it plans or applies.
    pub revision: String,
    /// Apply the fresh plan in the same run (auto-approval).
    pub apply_after_plan: bool,
    /// The plan to apply, with its digest.
    pub plan_id: Option<String>,
    pub plan_digest: Option<String>,
}

/// The RunSpec of one run of `object` (in `namespace`).
pub fn run_spec(object: &Terraform, namespace: &str, inputs: Inputs, runner: Runner, request: Request) -> RunSpec {
    RunSpec {
        operation: request.operation,
        object: ObjectKey {
            kind: super::KIND.into(),
            namespace: namespace.to_string(),
            name: object.metadata.name.clone().unwrap_or_default(),
        },
        artifact_url: runner.artifact_url,
        artifact_digest: inputs.artifact.digest.clone(),
        source_revision: request.revision,
        path: object.spec.path.clone(),
        workspace: object.spec.workspace.clone(),
        state_name: state_name(object),
        state_suffix: secret_suffix(object),
        options: inputs.options,
        variables: inputs.variables,
        inputs_digest: inputs.digest,
        backend: inputs.backend,
        custom_backend: object.spec.backend_config.as_ref().and_then(|b| b.custom_configuration.clone()),
        plan_id: request.plan_id,
        plan_digest: request.plan_digest,
        apply_after_plan: request.apply_after_plan,
        drift_ignore: object.spec.drift.as_ref().map(|d| d.ignore.clone()).unwrap_or_default(),
        // Rendering costs a `show -json`: only where a reviewer will read it.
        render_plan: !request.apply_after_plan && request.operation != Operation::SpeculativePlan,
        terraform_path: runner.terraform_path,
        engine: object.spec.engine,
        tofu_path: runner.tofu_path,
        lock_holder: runner.identity,
        timeout_seconds: runner.timeout_seconds,
        // The apply's own deadline: the default (RunSpec::apply_timeout), longer than a plan's.
        apply_timeout_seconds: None,
        unsaved_state: None,
    }
}

/// The RunSpec of a speculative plan of `object` (`driftless diff terraform`): its own
/// inputs against `artifact`, terraform's readable plan in the result, no lock broken.
pub fn speculative(object: &Terraform, namespace: &str, mut inputs: Inputs, runner: Runner) -> RunSpec {
    inputs.options.readable_plan = Some(ReadablePlanFormat::Human);
    inputs.options.force_unlock = ForceUnlock::default();
    let request = Request {
        operation: Operation::SpeculativePlan,
        revision: inputs.artifact.revision.clone(),
        apply_after_plan: false,
        plan_id: None,
        plan_digest: None,
    };
    run_spec(object, namespace, inputs, runner, request)
}
