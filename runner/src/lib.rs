//! `driftless-runner`: executes one `RunSpec` in a fresh temporary workspace and returns a
//! `RunResult`. It is the only part of driftless that starts terraform.

pub mod engine;
pub mod errored_state;
pub mod force_unlock;
pub mod module;
pub mod plan_json;
pub mod pod;
pub mod readable_plan;
pub mod state_server;
pub mod terraform;
pub mod tfvars;
pub mod workspace;

use std::path::Path;
use std::time::{Duration, Instant};

use driftless_core::backend::{
    BackendError, LocalBackend, PlanMeta, PlanStore, S3Backend, SecretBackend, StateKey, StateStore, sha256_digest,
};
use driftless_core::contract::{BackendSpec, FileLocation, Operation, Outcome, RunErrorKind, RunResult, RunSpec};
use driftless_core::ids::{PlanId, drift_id};

use driftless_core::scrub::Scrubber;
use plan_json::{REDACTED, StreamSummary};
use state_server::StateServer;
use terraform::{Terraform, TerraformError};

const PLAN_FILE: &str = "driftless.tfplan";
/// How long a lock outlives the runner's own deadline (the plan's plus, when it applies, the
/// apply's): past it, the runner was killed (the dispatcher kills it a minute or two after
/// the deadline) and the lock may be taken over.
const LOCK_TTL_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Runs one spec; never panics on bad input, every failure becomes a `RunResult`.
pub async fn run(spec: RunSpec) -> RunResult {
    match &spec.backend {
        BackendSpec::Local { root } => {
            let ttl = spec.longest_run() + LOCK_TTL_MARGIN;
            let store = LocalBackend::new(root).with_lock_ttl(ttl);
            Run::new(&spec).execute(store).await
        }
        BackendSpec::S3(location) => {
            let ttl = spec.longest_run() + LOCK_TTL_MARGIN;
            let store = S3Backend::connect(location, ttl).await;
            // One cheap request first: a missing bucket or refused credentials is reported
            // as such, not as terraform failing to read its state.
            if let Err(e) = store.check().await {
                return RunResult::failed(RunErrorKind::Backend, e.to_string());
            }
            Run::new(&spec).execute(store).await
        }
        BackendSpec::Kubernetes { namespace, labels } => {
            let ttl = spec.longest_run() + LOCK_TTL_MARGIN;
            // The client `kube::Client::try_default()` builds: KUBECONFIG or the pod's
            // ServiceAccount.
            match SecretBackend::connect(namespace.as_str(), ttl).await {
                Ok(store) => Run::new(&spec).execute(store.with_state_labels(labels.clone())).await,
                Err(e) => RunResult::failed(RunErrorKind::Backend, e.to_string()),
            }
        }
    }
}

/// The failure kind of a backend error met while reading a saved plan: missing or corrupt
/// data refuses the apply for good; an unavailable backend is retried.
fn plan_read_failure(e: BackendError) -> Failure {
    let kind = if e.is_integrity() { RunErrorKind::PlanIntegrity } else { RunErrorKind::Backend };
    (kind, e.to_string(), vec![])
}

struct Run<'a> {
    spec: &'a RunSpec,
    started: Instant,
    timings: Vec<(String, u64)>,
    /// Values that must never appear in an error or rendering.
    /// Every sensitive variable and backend credential, in every form it can take in text.
    secrets: Scrubber,
    /// The state of a failed apply that could not be saved anywhere but the result.
    unsaved_state: Option<driftless_core::contract::UnsavedState>,
    /// What terraform printed so far, step by step (`RunResult::log`).
    log: Vec<String>,
}

type Failure = (RunErrorKind, String, Vec<String>);

impl<'a> Run<'a> {
    fn new(spec: &'a RunSpec) -> Self {
        let options = &spec.options;
        let files = options.files.iter().chain(&options.cli_config).flat_map(|f| file_secrets(&f.content));
        // What a decrypted var file sets, value by value (its lines alone miss a value
        // terraform prints on its own).
        let decrypted = options
            .files
            .iter()
            .filter(|f| f.location == FileLocation::Source)
            .filter_map(|f| workspace::var_file_values(&f.path, &f.content))
            .flat_map(|v| secret_strings(&v));
        let secrets = Scrubber::new(
            spec.variables
                .iter()
                .chain(&options.backend_configs)
                .filter(|v| v.sensitive)
                .flat_map(|v| secret_strings(&v.value))
                .chain(spec.backend.secrets())
                .chain(files)
                .chain(decrypted),
        );
        Self { spec, started: Instant::now(), timings: Vec::new(), secrets, unsaved_state: None, log: Vec::new() }
    }

    /// Keeps what one terraform command printed for the run's log: a `-json` stream as its
    /// human lines, anything else as it is.
    fn keep_output(&mut self, command: &str, out: &terraform::Finished) {
        self.log.push(format!("$ {command}"));
        self.log.extend(plan_json::human_lines(&out.stdout));
        self.log.extend(out.stderr.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }

    /// The log of the run: scrubbed, and its last `RUN_LOG_LIMIT` bytes when longer.
    fn run_log(&self) -> Option<String> {
        if self.log.is_empty() {
            return None;
        }
        let text = self.scrub(&(self.log.join("\n") + "\n"));
        let limit = driftless_core::contract::RUN_LOG_LIMIT;
        if text.len() <= limit {
            return Some(text);
        }
        let mut start = text.len() - limit;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let cut = &text[start..];
        let cut = cut.split_once('\n').map_or(cut, |(_, rest)| rest);
        Some(format!("(the first {} bytes are left out)\n{cut}", text.len() - cut.len()))
    }

    fn mark(&mut self, step: &str, since: Instant) {
        self.timings.push((step.to_string(), since.elapsed().as_millis() as u64));
    }

    fn scrub(&self, text: &str) -> String {
        self.secrets.scrub_with(text, REDACTED)
    }

    async fn execute<S: StateStore + PlanStore + Clone>(mut self, store: S) -> RunResult {
        if self.spec.operation == Operation::SaveState {
            return self.save_state(&store).await;
        }
        // Everything up to the plan; an apply gets its own deadline (`Run::apply`).
        let deadline = self.started + self.spec.plan_timeout();
        let workdir = match tempfile::Builder::new().prefix("driftless-run-").tempdir() {
            Ok(d) => d,
            Err(e) => return RunResult::failed(RunErrorKind::Internal, format!("cannot create a workspace: {e}")),
        };
        let broken_lock = match force_unlock::apply(&store, self.spec).await {
            Ok(broken) => broken,
            Err(e) => return RunResult::failed(RunErrorKind::Backend, self.scrub(&format!("cannot break the state lock: {e}"))),
        };
        let result = self.execute_in(&store, workdir.path(), deadline).await;
        let mut result = match result {
            Ok(r) => r,
            Err((kind, message, diagnostics)) => {
                let mut r = RunResult::failed(kind, self.scrub(&message));
                if let Some(e) = r.error.as_mut() {
                    e.diagnostics = diagnostics.iter().map(|d| self.scrub(d)).collect();
                }
                r
            }
        };
        self.mark("total", self.started);
        result.timings_ms = std::mem::take(&mut self.timings);
        result.log = self.run_log();
        result.unsaved_state = self.unsaved_state.take();
        result.broken_lock = broken_lock;
        result
    }

    /// A save-state run: the state an earlier run kept in its result goes to the backend;
    /// no artifact, no terraform.
    async fn save_state<S: StateStore>(&mut self, store: &S) -> RunResult {
        let spec = self.spec;
        let Some(unsaved) = &spec.unsaved_state else {
            return RunResult::failed(RunErrorKind::Internal, "a save-state run names no state to save");
        };
        let key = StateKey { object: spec.object.clone(), state_name: spec.state_name.clone(), secret_suffix: spec.state_suffix.clone() };
        let mut result = match errored_state::save_kept(store, &key, unsaved, &spec.lock_holder, &errored_state::RETRY_WAITS).await {
            Ok(()) => RunResult { outcome: Outcome::NoChanges, error: None, ..RunResult::failed(RunErrorKind::Internal, "") },
            Err(why) => RunResult::failed(RunErrorKind::Backend, self.scrub(&format!("the unsaved state is still not saved: {why}"))),
        };
        self.mark("total", self.started);
        result.timings_ms = std::mem::take(&mut self.timings);
        result
    }

    async fn execute_in<S: StateStore + PlanStore + Clone>(
        &mut self,
        store: &S,
        workdir: &Path,
        deadline: Instant,
    ) -> Result<RunResult, Failure> {
        let spec = self.spec;
        let t = Instant::now();
        let src = workdir.join("src");
        unpack_artifact(&spec.artifact_url, &spec.artifact_digest, &src).await.map_err(|e| {
            (RunErrorKind::Artifact, format!("source artifact {}: {e}", driftless_core::artifact::shown_url(&spec.artifact_url)), vec![])
        })?;
        self.mark("unpack", t);
        workspace::write_source_files(&spec.options.files, &src).map_err(invalid_module)?;

        let rel = spec.path.trim_start_matches("./").trim_end_matches('/');
        let module_dir = if rel.is_empty() || rel == "." { src.clone() } else { src.join(rel) };
        let info = module::inspect(&module_dir, &spec.path).map_err(|e| (RunErrorKind::InvalidModule, e.to_string(), vec![]))?;
        let var_files = workspace::var_files(&src, &spec.options.var_files).map_err(invalid_module)?;
        for path in var_files.iter().chain(&workspace::auto_var_files(&module_dir)) {
            if std::fs::read(path).is_ok_and(|b| workspace::is_sops_encrypted(&b)) {
                let shown = path.strip_prefix(&src).unwrap_or(path).display().to_string();
                return Err(invalid_module(workspace::WorkspaceError::Encrypted { path: shown }));
            }
        }
        let mut from_files = std::collections::BTreeSet::new();
        for (path, shown) in var_files.iter().zip(&spec.options.var_files) {
            from_files.extend(workspace::var_file_names(path, shown).map_err(invalid_module)?);
        }
        let home = workspace::home_dir(workdir);
        workspace::write_files(&spec.options.files, &module_dir, &home).map_err(invalid_module)?;
        let (unknown, _) = module::check_variables(&info, spec.variables.iter().map(|v| v.name.as_str()));
        let given = spec.variables.iter().map(|v| v.name.as_str()).chain(from_files.iter().map(String::as_str));
        let (_, missing) = module::check_variables(&info, given);
        let missing = module::without_environment_values(missing, |name| std::env::var_os(name).is_some());
        if !unknown.is_empty() {
            let declared: Vec<&str> = info.variables.keys().map(String::as_str).collect();
            return Err((
                RunErrorKind::InvalidModule,
                format!(
                    "variable(s) {} set in spec.vars/varsFrom are not declared by the module at {:?} (it declares: {}); remove them or declare them",
                    unknown.join(", "),
                    spec.path,
                    if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
                ),
                vec![],
            ));
        }
        if !missing.is_empty() && spec.operation != Operation::Apply {
            return Err((
                RunErrorKind::VariablesNotFound,
                format!(
                    "required variable(s) {} have no value; set them in spec.vars, spec.varsFrom or a spec.tfVarsFiles file",
                    missing.join(", ")
                ),
                vec![],
            ));
        }
        write(&module_dir.join(tfvars::FILE_NAME), &tfvars::render(&spec.variables))?;

        // An apply needs its saved plan (checked against the approved digest) before anything
        // else, and the state server at the address the plan recorded.
        let saved = match spec.operation {
            Operation::Apply => Some(self.saved_plan(store).await?),
            _ => None,
        };
        let at = saved.as_ref().and_then(|(m, _)| m.state_address.as_deref()).and_then(|a| a.parse().ok());
        let key = StateKey { object: spec.object.clone(), state_name: spec.state_name.clone(), secret_suffix: spec.state_suffix.clone() };
        let server = match &spec.custom_backend {
            // The module's own backend, or terraform's local state in this workspace.
            _ if spec.options.backend_disabled => None,
            Some(block) => {
                write(&module_dir.join(backend_file(info.backend.is_some())), block.as_bytes())?;
                None
            }
            None => {
                let server = StateServer::start(store.clone(), key.clone(), at)
                    .await
                    .map_err(|e| (RunErrorKind::Internal, format!("cannot start the state server: {e}"), vec![]))?;
                write(&module_dir.join(backend_file(info.backend.is_some())), server.backend_block().as_bytes())?;
                Some(server)
            }
        };
        let deadline_name = format!("the run's deadline of {} s", spec.plan_timeout().as_secs());
        let configured = engine::Configured { terraform: spec.terraform_path.as_deref(), tofu: spec.tofu_path.as_deref() };
        let found = match &saved {
            Some((meta, _)) => engine::locate_for_plan(spec.engine, meta.engine, &meta.id, configured),
            None => engine::locate(spec.engine, configured),
        };
        let found = found.map_err(|e| match e {
            engine::LocateError::PlanEngineChanged { .. } => (RunErrorKind::PlanIntegrity, e.to_string(), vec![]),
            e => tf_failure(e.into()),
        })?;
        let mut tf = Terraform::new(found, &module_dir, deadline, &deadline_name);
        if spec.options.files.iter().any(|f| f.location == FileLocation::Home) {
            tf = tf.with_env("HOME", home);
        }
        if let Some(config) = &spec.options.cli_config {
            // Outside the module directory: it is no file of the module's.
            let path = workdir.join("driftless.tfrc");
            workspace::write_private(&path, &config.content)
                .map_err(|e| (RunErrorKind::Internal, format!("cannot write the CLI configuration: {e}"), vec![]))?;
            tf = tf.with_env("TF_CLI_CONFIG_FILE", path);
        }
        let backend_config = if spec.options.backend_configs.is_empty() {
            None
        } else {
            let path = workdir.join("driftless.tfbackend");
            let text = workspace::backend_config(&spec.options.backend_configs).map_err(invalid_module)?;
            workspace::write_private(&path, text.as_bytes())
                .map_err(|e| (RunErrorKind::Internal, format!("cannot write the backend settings: {e}"), vec![]))?;
            Some(path)
        };
        let state_address = server.as_ref().map(|s| s.addr.to_string());
        let files = Files { var_files, backend_config };
        let mut outcome = self.terraform_steps(store, &tf, &module_dir, &files, saved.map(|(_, b)| b), state_address).await;
        // Which engine made (or applied) the plan, for status: only runs that have one ask
        // the engine its version, so a run with nothing to do starts no extra process.
        if let Ok(r) = outcome.as_mut()
            && r.plan_id.is_some()
        {
            let version = tf.version().await.unwrap_or_else(|| "(version unknown)".to_string());
            r.engine = Some(format!("{} {version}", tf.engine().product()));
        }
        // Before the workspace (and terraform's errored.tfstate in it) is deleted.
        let rescue = match (&outcome, &server) {
            (Ok(_), _) => None,
            (Err(_), Some(server)) => {
                errored_state::rescue(store, &key, &module_dir, server.held_lock(), &spec.lock_holder, &errored_state::RETRY_WAITS).await
            }
            // A native backend of the module's own: driftless has no business writing it.
            (Err(_), None) => errored_state::keep(
                &module_dir,
                if spec.options.backend_disabled {
                    "the module's state lives in its own backend (backendConfig.disable)"
                } else {
                    "the module's state lives in its own backend (customConfiguration)"
                },
            ),
        };
        let refused_by = server.as_ref().and_then(StateServer::refused_by);
        let store_failure = server.as_ref().and_then(StateServer::failure);
        if let Some(server) = server {
            server.stop().await;
        }
        let outcome = match outcome {
            Err((kind, message, diagnostics)) if refused_by.is_some() && kind != RunErrorKind::Timeout => {
                let holder = refused_by.unwrap_or_default();
                let mut r = RunResult::failed(
                    RunErrorKind::StateLocked,
                    format!(
                        "state of {} is locked by {} since {} (lock {}); wait for it or break it with `driftless unlock {}`",
                        spec.object, holder.who, holder.created, holder.id, spec.object.name
                    ),
                );
                if let Some(e) = r.error.as_mut() {
                    e.lock = Some(holder);
                    e.diagnostics = diagnostics.into_iter().chain([format!("{kind:?}: {message}")]).map(|d| self.scrub(&d)).collect();
                }
                Ok(r)
            }
            Err((kind, message, mut diagnostics)) => match store_failure {
                // Terraform only saw an HTTP 500 from the state server: the backend's own
                // error is the one the user can act on.
                Some(f) if kind != RunErrorKind::Timeout => {
                    diagnostics.insert(0, format!("{kind:?}: {message}"));
                    Err((RunErrorKind::Backend, format!("state backend: {f}"), diagnostics))
                }
                Some(f) => {
                    diagnostics.push(format!("state backend: {f}"));
                    Err((kind, message, diagnostics))
                }
                None => Err((kind, message, diagnostics)),
            },
            ok => ok,
        };
        let Some(rescue) = rescue else { return outcome };
        let note = rescue.note(tf.engine());
        if let errored_state::Rescue::Kept { state, .. } = rescue {
            self.unsaved_state = Some(state);
        }
        match outcome {
            Err((kind, message, diagnostics)) => Err((kind, format!("{message}; {note}"), diagnostics)),
            Ok(mut r) => {
                if let Some(e) = r.error.as_mut() {
                    e.message = format!("{}; {note}", e.message);
                }
                Ok(r)
            }
        }
    }

    async fn saved_plan<S: PlanStore>(&self, store: &S) -> Result<(PlanMeta, Vec<u8>), Failure> {
        let spec = self.spec;
        let id = spec.plan_id.as_deref().ok_or((RunErrorKind::PlanIntegrity, "apply without a plan id".to_string(), vec![]))?;
        let (meta, bytes) = store.get_plan(&spec.object, id).await.map_err(plan_read_failure)?;
        if let Some(expected) = spec.plan_digest.as_deref()
            && expected != meta.digest
        {
            return Err((
                RunErrorKind::PlanIntegrity,
                format!("plan {id} in the backend has digest {} but {expected} was approved; it will not be applied", meta.digest),
                vec![],
            ));
        }
        Ok((meta, bytes))
    }

    async fn terraform_steps<S: PlanStore>(
        &mut self,
        store: &S,
        tf: &Terraform,
        dir: &Path,
        files: &Files,
        plan_bytes: Option<Vec<u8>>,
        state_address: Option<String>,
    ) -> Result<RunResult, Failure> {
        let spec = self.spec;
        let t = Instant::now();
        let mut init_args = vec!["init".to_string(), "-input=false".into(), "-no-color".into()];
        init_args.extend(spec.options.init_args());
        init_args.extend(files.backend_config.as_ref().map(|p| format!("-backend-config={}", p.display())));
        let init = tf.exec(&init_args.iter().map(String::as_str).collect::<Vec<_>>()).await.map_err(tf_failure)?;
        self.mark("init", t);
        self.keep_output(&format!("{} init", tf.engine()), &init);
        if init.code != 0 {
            return Err((RunErrorKind::Init, format!("{} init failed", tf.engine()), error_lines(&init.stderr)));
        }

        if let Some(bytes) = plan_bytes {
            write(&dir.join(PLAN_FILE), &bytes)?;
            let mut r = self.apply(tf).await?;
            r.plan_id = spec.plan_id.clone();
            r.plan_digest = spec.plan_digest.clone();
            return Ok(r);
        }

        let t = Instant::now();
        let out_arg = format!("-out={PLAN_FILE}");
        let mut args = vec!["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode", "-lock-timeout=0s", out_arg.as_str()];
        if spec.operation == Operation::DestroyPlan {
            args.push("-destroy");
        }
        if spec.operation == Operation::SpeculativePlan {
            // It applies nothing, so it keeps nobody waiting for the state.
            args.push("-lock=false");
        }
        let mut options = spec.options.plan_args();
        options.extend(files.var_files.iter().map(|p| format!("-var-file={}", p.display())));
        args.extend(options.iter().map(String::as_str));
        let plan = tf.exec(&args).await.map_err(tf_failure)?;
        self.mark("plan", t);
        self.keep_output(&format!("{} plan", tf.engine()), &plan);
        let stream = plan_json::parse_stream(&plan.stdout);
        if plan.code == 1 || !matches!(plan.code, 0 | 2) {
            return Err((RunErrorKind::Plan, format!("{} plan failed", tf.engine()), diagnostics(&stream, &plan.stderr)));
        }
        let changes = plan.code == 2;
        let wants_detail = spec.render_plan || spec.operation == Operation::DriftCheck || !stream.drifted.is_empty();
        let show = if wants_detail {
            let t = Instant::now();
            let shown = tf.exec(&["show", "-json", PLAN_FILE]).await.map_err(tf_failure)?;
            self.mark("show", t);
            if shown.code != 0 {
                return Err((RunErrorKind::Terraform, format!("{} show -json failed", tf.engine()), error_lines(&shown.stderr)));
            }
            Some(
                plan_json::parse_show(shown.stdout.as_bytes())
                    .map_err(|e| (RunErrorKind::Terraform, format!("cannot read {}'s show -json output: {e}", tf.engine()), vec![]))?,
            )
        } else {
            None
        };
        let raw_drift = show.as_ref().map(|s| s.drift()).unwrap_or_default();
        let drift = plan_json::bound_fields(
            driftless_core::drift::filter_drift(raw_drift.clone(), &spec.drift_ignore),
            plan_json::MAX_DRIFT_FIELDS,
        );
        let summary = show.as_ref().map(|s| s.summary()).unwrap_or(stream.summary);
        let readable_plan = readable_plan::render(tf, PLAN_FILE, spec, &self.secrets).await?;
        let mut result = RunResult {
            outcome: Outcome::NoChanges,
            plan_id: None,
            plan_digest: None,
            summary,
            resources: stream.resources.clone(),
            drift: drift.clone(),
            outputs: Vec::new(),
            error: None,
            timings_ms: Vec::new(),
            unsaved_state: None,
            broken_lock: None,
            readable_plan,
            engine: None,
            log: None,
        };
        // A drift check whose drift is all ignored changes nothing: its plan would revert
        // exactly what the user asked to leave alone.
        let only_ignored_drift = spec.operation == Operation::DriftCheck && drift.is_empty() && !raw_drift.is_empty();
        if !changes || only_ignored_drift {
            return Ok(result);
        }
        if spec.operation == Operation::SpeculativePlan {
            result.outcome = Outcome::Planned;
            return Ok(result);
        }
        let drift_key = (!drift.is_empty()).then(|| drift_id(&drift));
        let id = PlanId::new(&spec.source_revision, &spec.inputs_digest, drift_key.as_deref());
        let bytes = std::fs::read(dir.join(PLAN_FILE))
            .map_err(|e| (RunErrorKind::Internal, format!("{} wrote no plan file: {e}", tf.engine()), vec![]))?;
        let digest = sha256_digest(&bytes);
        let rendering = match &show {
            Some(s) => self.scrub(&s.render()),
            None => render_stream(&stream),
        };
        let meta = PlanMeta {
            id: id.to_string(),
            digest: digest.clone(),
            created_at: jiff::Timestamp::now().to_string(),
            source_revision: spec.source_revision.clone(),
            rendering,
            state_address,
            engine: Some(tf.engine()),
        };
        let t = Instant::now();
        store
            .put_plan(&spec.object, &meta, &bytes)
            .await
            .map_err(|e| (RunErrorKind::Backend, format!("cannot store plan {id}: {e}"), vec![]))?;
        self.mark("store-plan", t);
        result.plan_id = Some(id.to_string());
        result.plan_digest = Some(digest);
        result.outcome = Outcome::Planned;
        // Only `auto` applies a plan in the run that made it: a manual approval names a plan
        // somebody reviewed, never one made after it.
        if spec.apply_after_plan {
            let applied = self.apply(tf).await?;
            result.outcome = applied.outcome;
            result.outputs = applied.outputs;
        }
        Ok(result)
    }

    /// Applies the saved plan file in the workspace: never a fresh plan. Under its own
    /// deadline from now, not what is left of the plan's: an apply cut off mid-way leaves
    /// resources half made.
    async fn apply(&mut self, tf: &Terraform) -> Result<RunResult, Failure> {
        let t = Instant::now();
        let limit = self.spec.apply_timeout();
        let tf = tf.until(t + limit, &format!("the apply's deadline of {} s", limit.as_secs()));
        let options = self.spec.options.apply_args();
        let mut args = vec!["apply", "-input=false", "-no-color", "-json", "-lock-timeout=0s", "-auto-approve"];
        args.extend(options.iter().map(String::as_str));
        args.push(PLAN_FILE);
        let applied = tf.exec(&args).await.map_err(tf_failure)?;
        self.mark("apply", t);
        self.keep_output(&format!("{} apply", tf.engine()), &applied);
        let stream = plan_json::parse_stream(&applied.stdout);
        if applied.code != 0 {
            return Err((
                RunErrorKind::Apply,
                format!("{} apply failed; state keeps what was applied before the error", tf.engine()),
                diagnostics(&stream, &applied.stderr),
            ));
        }
        let mut outputs = stream.outputs;
        if outputs.is_empty() || stream.outputs_withheld {
            // Older terraform versions stream no `outputs` message, and OpenTofu streams none
            // of the sensitive values: ask for them.
            let out = tf.exec(&["output", "-json"]).await.map_err(tf_failure)?;
            if out.code == 0 {
                outputs = plan_json::parse_outputs(&out.stdout);
            }
        }
        let mut r = RunResult::failed(RunErrorKind::Internal, "");
        r.outcome = Outcome::Applied;
        r.error = None;
        r.outputs = outputs;
        Ok(r)
    }
}

/// What the run wrote or found for terraform's flags: `-var-file`s and a `-backend-config`.
struct Files {
    var_files: Vec<std::path::PathBuf>,
    backend_config: Option<std::path::PathBuf>,
}

fn invalid_module(e: workspace::WorkspaceError) -> Failure {
    (RunErrorKind::InvalidModule, e.to_string(), vec![])
}

/// What of a file from a Secret to scrub from messages: the whole text and each line long
/// enough to be a credential (a token alone on its line, a key's lines).
fn file_secrets(content: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(content) else { return Vec::new() };
    let lines = text.lines().map(str::trim).filter(|l| l.len() >= 8).map(str::to_string);
    std::iter::once(text.trim().to_string()).filter(|t| t.len() >= 4).chain(lines).collect()
}

fn backend_file(module_has_backend: bool) -> &'static str {
    // A module's own backend block can only be replaced from an override file; without one,
    // an override of a block that does not exist is an error, so use a plain file.
    if module_has_backend { "zz_driftless_backend_override.tf" } else { "zz_driftless_backend.tf" }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| (RunErrorKind::Internal, format!("cannot write {}: {e}", path.display()), vec![]))
}

fn tf_failure(e: TerraformError) -> Failure {
    let kind = match e {
        TerraformError::Timeout { .. } | TerraformError::Stopped(_) => RunErrorKind::Timeout,
        _ => RunErrorKind::Terraform,
    };
    (kind, e.to_string(), vec![])
}

/// Unpacks the artifact after checking its digest: a local file, or a download from the
/// controller's artifact server (a pod has no other way to reach the source).
async fn unpack_artifact(url: &str, digest: &str, dest: &Path) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("file://") {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        return driftless_core::artifact::unpack_verified(std::io::BufReader::new(file), digest, dest).map_err(|e| e.to_string());
    }
    if url.starts_with("http://") {
        let bytes = pod::download(url).await?;
        return driftless_core::artifact::unpack_verified(&bytes[..], digest, dest).map_err(|e| e.to_string());
    }
    Err(format!("unsupported artifact URL scheme in {}", driftless_core::artifact::shown_url(url)))
}

/// Error lines of a plain-text terraform failure (init has no -json in 1.0).
fn error_lines(stderr: &str) -> Vec<String> {
    let lines: Vec<String> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].to_vec()
}

fn diagnostics(stream: &StreamSummary, stderr: &str) -> Vec<String> {
    if stream.errors.is_empty() { error_lines(stderr) } else { stream.errors.clone() }
}

fn render_stream(stream: &StreamSummary) -> String {
    let mut out = String::from("Planned changes:\n");
    for r in stream.resources.iter().filter(|r| r.action != "no-op") {
        out.push_str(&format!("  {} ({})\n", r.address, r.action));
    }
    out.push_str(&format!("\nPlan: {}.\n", stream.summary));
    out
}

/// The strings of a sensitive value worth scrubbing (short ones would mangle messages).
fn secret_strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) if s.len() >= 4 => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(secret_strings).collect(),
        serde_json::Value::Object(m) => m.values().flat_map(secret_strings).collect(),
        serde_json::Value::Number(n) if n.to_string().len() >= 4 => vec![n.to_string()],
        _ => Vec::new(),
    }
}
