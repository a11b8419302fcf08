//! `diff kustomization NAME --path DIR`: what the Kustomization would change if DIR were
//! its source's `spec.path`: DIR built with the object's own overlay fields, decryption and
//! substitutions, dry-run applied server-side with the kube context's user, and shown as
//! its plan is shown (field names, never values). Exit status 1 when there are changes, as
//! `flux diff`, so CI can gate on it.
//!
//! `diff terraform NAME --path DIR`: the same for a Terraform: a speculative plan of DIR as
//! its `spec.path`, with the object's own variables, options and backend, run by a local
//! runner (with the kube context's user, on a cluster) and printed as terraform prints a
//! plan. It takes no state lock and stores nothing: never applied, no pending plan.

use std::path::{Path, PathBuf};

use super::{CliError, Result};
use crate::api::{Artifact, Kustomization, PlanSummary, Terraform};
use crate::dispatch::{BackendSpec, Outcome, RunnerDispatch};
use crate::kustomization::apply::{Action, Applier};
use crate::kustomization::inventory::stale;
use crate::store::ObjectStore;

/// Prints the diff; `Err(CliError::Changes)` when there is one.
pub async fn kustomization<S: ObjectStore>(store: &S, client: kube::Client, name: &str, namespace: &str, path: &Path) -> Result<()> {
    let Some(mut object) = store.get::<Kustomization>(namespace, name).await? else {
        return Err(CliError::Usage(format!(
            "Kustomization {namespace}/{name} not found; `driftless get kustomizations -n {namespace}` lists them"
        )));
    };
    let LocalSource { work: copy, relative, .. } = local_source(path)?;
    object.spec.path = Some(format!("./{}", relative.display()));
    let built = match crate::kustomization::build::build_tree(store, &object, &copy.path().join("tree")).await? {
        Ok(b) => b,
        Err((_, message)) => return Err(CliError::Usage(format!("building {}: {message}", path.display()))),
    };
    let applier = Applier::new(client, "the kube context's user".into(), namespace, name);
    let scrub = driftless_core::scrub::Scrubber::new(&built.secrets);
    // Labelled as the controller labels what it applies, so only real changes show.
    let mut objects = built.objects;
    for o in &mut objects {
        applier.label(o);
    }
    let dry = applier
        .apply_all(&objects, object.spec.force, true)
        .await
        .map_err(|e| CliError::Usage(format!("server-side dry run: {}", scrub.scrub(&e.to_string()))))?;
    let new_refs: Vec<_> = dry.iter().map(|a| a.id.to_ref(&a.version)).collect();
    let old = object.status.as_ref().and_then(|s| s.inventory.clone()).unwrap_or_default().entries;
    let pruned = if object.spec.prune { stale(&old, &new_refs) } else { Vec::new() };
    let summary = PlanSummary {
        add: dry.iter().filter(|a| a.action == Action::Created).count() as u32,
        change: dry.iter().filter(|a| matches!(a.action, Action::Configured | Action::Recreated)).count() as u32,
        destroy: pruned.len() as u32,
    };
    if summary.add + summary.change + summary.destroy == 0 {
        println!("Kustomization {namespace}/{name}: no changes");
        return Ok(());
    }
    print!("{}", crate::kustomization::plan::render_plan(&dry, &pruned, summary));
    Err(CliError::Changes(format!("Kustomization {namespace}/{name} would change: {summary}")))
}

/// The engines a local runner runs (`--terraform`, `--tofu`), as absolute paths.
pub struct Engines {
    pub terraform: Option<PathBuf>,
    pub tofu: Option<PathBuf>,
}

/// Prints the speculative plan of DIR as the Terraform's path; `Err(CliError::Changes)`
/// when it would change something.
pub async fn terraform<S: ObjectStore, D: RunnerDispatch>(
    store: &S,
    dispatch: &D,
    default_backend: &BackendSpec,
    engines: Engines,
    name: &str,
    namespace: &str,
    path: &Path,
) -> Result<()> {
    let Some(mut object) = store.get::<Terraform>(namespace, name).await? else {
        return Err(CliError::Usage(format!(
            "Terraform {namespace}/{name} not found; `driftless get terraforms -n {namespace}` lists them"
        )));
    };
    let LocalSource { work, relative, root } = local_source(path)?;
    let tree = work.path().join("tree");
    object.spec.path = format!("./{}", relative.display());
    let artifacts = driftless_core::artifact::ArtifactStore::new(work.path().join("artifacts"));
    let stored = artifacts
        .archive_dir(crate::terraform::KIND, namespace, name, &tree, None)
        .map_err(|e| CliError::Usage(format!("archiving {}: {e}", root.display())))?;
    let url = artifacts.file_url(&stored.path).map_err(|e| CliError::Usage(format!("archiving {}: {e}", root.display())))?;
    let artifact = Artifact {
        revision: format!("local@{}", stored.digest),
        url: url.clone(),
        path: stored.path,
        digest: stored.digest,
        last_update_time: jiff::Timestamp::now().to_string(),
        size: stored.size,
    };
    let shown = format!("Terraform {namespace}/{name}");
    let inputs = match crate::terraform::runspec::resolve(store, &artifacts, &object, default_backend, artifact).await? {
        Ok(i) => i,
        Err((_, message)) => return Err(CliError::Usage(format!("{shown}: {message}"))),
    };
    let runner = crate::terraform::runspec::Runner {
        artifact_url: url,
        terraform_path: engines.terraform,
        tofu_path: engines.tofu,
        identity: format!("driftless diff/{}", std::process::id()),
        timeout_seconds: 30 * 60,
    };
    let spec = crate::terraform::runspec::speculative(&object, namespace, inputs, runner);
    let result = dispatch.run(&spec).await?;
    if let Some(e) = result.error {
        let details = if e.diagnostics.is_empty() { String::new() } else { format!(": {}", e.diagnostics.join("; ")) };
        return Err(CliError::Usage(format!("the speculative plan of {shown} failed: {}{details}", e.message)));
    }
    if result.outcome != Outcome::Planned {
        println!("{shown}: no changes");
        return Ok(());
    }
    match result.readable_plan {
        Some(text) => print!("{text}"),
        None => println!("{}", result.summary),
    }
    Err(CliError::Changes(format!("{shown} would change: {}", result.summary)))
}

/// A runner on this machine for the CLI's own runs, reaching the cluster of `--kubeconfig`
/// and `--context` (its Kubernetes backend reads `KUBECONFIG`): with a context, a copy of
/// the kubeconfig whose current context is that one, which must outlive the runs.
pub fn local_runner(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(crate::dispatch::ProcessDispatch, Option<tempfile::NamedTempFile>)> {
    let dispatch = crate::dispatch::ProcessDispatch::locate()?;
    let Some(context) = context else {
        return Ok((
            match kubeconfig {
                Some(path) => dispatch.with_env("KUBECONFIG", path.as_os_str()),
                None => dispatch,
            },
            None,
        ));
    };
    let read = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    };
    let mut config = read.map_err(|e| CliError::Usage(format!("reading the kubeconfig: {e}")))?;
    if !config.contexts.iter().any(|c| c.name == context) {
        return Err(CliError::Usage(format!("--context {context}: the kubeconfig has no such context")));
    }
    config.current_context = Some(context.to_string());
    let text = serde_yaml::to_string(&config).map_err(|e| CliError::Usage(format!("writing the kubeconfig for the runner: {e}")))?;
    let file = tempfile::Builder::new()
        .prefix("driftless-kubeconfig-")
        .tempfile()
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()).map(|()| f))
        .map_err(|e| CliError::Usage(format!("writing the kubeconfig for the runner: {e}")))?;
    let dispatch = dispatch.with_env("KUBECONFIG", file.path().as_os_str());
    Ok((dispatch, Some(file)))
}

/// The source a local DIR stands for, copied (a build writes beside it).
struct LocalSource {
    /// Holds the copy: the work tree in `tree/` (its root for a Kustomization's build).
    work: tempfile::TempDir,
    /// DIR in the work tree: the object's `spec.path` for the diff.
    relative: PathBuf,
    /// The work tree, for messages.
    root: PathBuf,
}

/// DIR stands for the source's `spec.path`; the source is the Git work tree around it (so
/// `../base` or `../modules/x` resolve as they will from the artifact), copied into `tree/`
/// of a temporary directory.
fn local_source(path: &Path) -> Result<LocalSource> {
    if !path.is_dir() {
        return Err(CliError::Usage(format!("--path {}: not a directory", path.display())));
    }
    let (root, relative) = source_root(path)?;
    let work =
        tempfile::Builder::new().prefix("driftless-diff-").tempdir().map_err(|e| CliError::Usage(format!("a temporary directory: {e}")))?;
    copy_tree(&root, &work.path().join("tree")).map_err(|e| CliError::Usage(format!("copying {}: {e}", root.display())))?;
    Ok(LocalSource { work, relative, root })
}

/// The Git work tree holding `dir` (its nearest ancestor with `.git`), and `dir` relative to
/// it; `dir` itself outside a work tree.
fn source_root(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = dir.canonicalize().map_err(|e| CliError::Usage(format!("--path {}: {e}", dir.display())))?;
    let root = dir.ancestors().find(|a| a.join(".git").exists()).unwrap_or(&dir).to_path_buf();
    let relative = dir.strip_prefix(&root).map(Path::to_path_buf).unwrap_or_default();
    Ok((root, relative))
}

/// Copies a tree without `.git`; links are copied as links (the build checks they stay
/// inside the tree).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            std::fs::copy(&source, &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_the_work_tree_around_the_path() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join(".git")).unwrap();
        std::fs::create_dir_all(repo.path().join("apps/staging")).unwrap();
        std::fs::write(repo.path().join("apps/base.yaml"), "x").unwrap();
        let (root, relative) = source_root(&repo.path().join("apps/staging")).unwrap();
        assert_eq!((root, relative), (repo.path().canonicalize().unwrap(), PathBuf::from("apps/staging")));
        let copy = tempfile::tempdir().unwrap();
        copy_tree(repo.path(), copy.path()).unwrap();
        assert!(copy.path().join("apps/base.yaml").is_file() && !copy.path().join(".git").exists());
        let lone = tempfile::tempdir().unwrap();
        let (root, relative) = source_root(lone.path()).unwrap();
        assert_eq!((root, relative), (lone.path().canonicalize().unwrap(), PathBuf::new()));
    }
}
