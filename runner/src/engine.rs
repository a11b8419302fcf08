//! Which binary runs a RunSpec: the one place the runner decides between terraform and tofu
//! and finds the binary.
//!
//! `spec.engine` set: that engine, at its configured path (`--terraform`/`--tofu` of the
//! controller, `RunSpec.terraformPath`/`tofuPath`) or else on PATH; never the other engine,
//! because a module or a saved plan written for one may not work with the other.
//! Unset: a configured path beats PATH (an operator who named a binary meant it), and
//! within each, tofu comes before terraform ([`Engine::PREFERENCE`]).

use std::path::{Path, PathBuf};

pub use driftless_core::engine::Engine;

/// The engine chosen and its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub engine: Engine,
    pub bin: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocateError {
    #[error("{engine} not found: {} does not exist; fix the runner's {engine} path", path.display())]
    Missing { engine: Engine, path: PathBuf },
    #[error(
        "spec.engine is {engine} but {engine} is not on the runner's PATH ({detail}); install it in the runner image, set the runner's {engine} path, or choose the other engine"
    )]
    NotOnPath { engine: Engine, detail: String },
    #[error(
        "neither tofu nor terraform is on the runner's PATH; install one in the runner image or set the runner's tofu or terraform path"
    )]
    NoneFound,
    #[error(
        "plan {plan} was made by {engine}, which is not on the runner's PATH ({detail}); install it in the runner image, or set spec.engine to the engine the runner has (that makes a new plan to approve)"
    )]
    PlanEngineMissing { plan: String, engine: Engine, detail: String },
    #[error(
        "plan {plan} was made by {made_by} but spec.engine is {chosen}; it will not be applied by another engine: approve the new plan"
    )]
    PlanEngineChanged { plan: String, made_by: Engine, chosen: Engine },
}

/// The binaries a runner was given explicitly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Configured<'a> {
    pub terraform: Option<&'a Path>,
    pub tofu: Option<&'a Path>,
}

impl<'a> Configured<'a> {
    fn path(&self, engine: Engine) -> Option<&'a Path> {
        match engine {
            Engine::Terraform => self.terraform,
            Engine::Tofu => self.tofu,
        }
    }
}

/// The engine and binary for a run: `chosen` is `spec.engine`.
pub fn locate(chosen: Option<Engine>, configured: Configured<'_>) -> Result<Located, LocateError> {
    locate_with(chosen, configured, |command| which::which(command).map_err(|e| e.to_string()))
}

/// The engine that applies saved plan `plan`, made by `made_by` (unset in plans stored
/// before the engine was recorded): the plan's engine, since a plan file is read only by
/// the engine that wrote it. An object that names none would otherwise get whatever the
/// runner prefers today, and a runner image that gained tofu since the plan was made would
/// hand a terraform plan to tofu.
pub fn locate_for_plan(
    chosen: Option<Engine>,
    made_by: Option<Engine>,
    plan: &str,
    configured: Configured<'_>,
) -> Result<Located, LocateError> {
    locate_for_plan_with(chosen, made_by, plan, configured, |command| which::which(command).map_err(|e| e.to_string()))
}

fn locate_for_plan_with(
    chosen: Option<Engine>,
    made_by: Option<Engine>,
    plan: &str,
    configured: Configured<'_>,
    on_path: impl Fn(&str) -> Result<PathBuf, String>,
) -> Result<Located, LocateError> {
    match (chosen, made_by) {
        (Some(chosen), Some(made_by)) if chosen != made_by => {
            Err(LocateError::PlanEngineChanged { plan: plan.to_string(), made_by, chosen })
        }
        (None, Some(engine)) => locate_with(Some(engine), configured, on_path).map_err(|e| match e {
            LocateError::NotOnPath { engine, detail } => LocateError::PlanEngineMissing { plan: plan.to_string(), engine, detail },
            other => other,
        }),
        _ => locate_with(chosen, configured, on_path),
    }
}

/// [`locate`] with the PATH lookup handed in, so the rule is tested without a PATH.
fn locate_with(
    chosen: Option<Engine>,
    configured: Configured<'_>,
    on_path: impl Fn(&str) -> Result<PathBuf, String>,
) -> Result<Located, LocateError> {
    let at = |engine: Engine, path: &Path| {
        if path.is_file() {
            Ok(Located { engine, bin: path.to_path_buf() })
        } else {
            Err(LocateError::Missing { engine, path: path.to_path_buf() })
        }
    };
    if let Some(engine) = chosen {
        return match configured.path(engine) {
            Some(path) => at(engine, path),
            None => {
                on_path(engine.command()).map(|bin| Located { engine, bin }).map_err(|detail| LocateError::NotOnPath { engine, detail })
            }
        };
    }
    if let Some((engine, path)) = Engine::PREFERENCE.iter().find_map(|&e| configured.path(e).map(|p| (e, p))) {
        return at(engine, path);
    }
    Engine::PREFERENCE
        .iter()
        .find_map(|&engine| on_path(engine.command()).ok().map(|bin| Located { engine, bin }))
        .ok_or(LocateError::NoneFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_is_applied_by_the_engine_that_made_it() {
        let both = path_with(&["tofu", "terraform"]);
        let none = Configured::default();
        // An object naming no engine: the plan's engine, not the runner's preference.
        let found = locate_for_plan_with(None, Some(Engine::Terraform), "plan-a", none, &both).unwrap();
        assert_eq!(found.engine, Engine::Terraform);
        // A plan stored before engines were recorded: the preference, as before.
        assert_eq!(locate_for_plan_with(None, None, "plan-a", none, &both).unwrap().engine, Engine::Tofu);
        // The same engine named by the object.
        assert_eq!(locate_for_plan_with(Some(Engine::Tofu), Some(Engine::Tofu), "plan-a", none, &both).unwrap().engine, Engine::Tofu);
        // Another engine named since: refused, never handed a plan it did not write.
        let changed = locate_for_plan_with(Some(Engine::Tofu), Some(Engine::Terraform), "plan-a", none, &both).unwrap_err();
        assert_eq!(changed, LocateError::PlanEngineChanged { plan: "plan-a".into(), made_by: Engine::Terraform, chosen: Engine::Tofu });
        // The plan's engine gone from the runner: said so, with the way out.
        let gone = locate_for_plan_with(None, Some(Engine::Terraform), "plan-a", none, path_with(&["tofu"])).unwrap_err();
        assert!(matches!(&gone, LocateError::PlanEngineMissing { engine: Engine::Terraform, .. }), "{gone:?}");
        let message = gone.to_string();
        assert!(message.contains("plan plan-a was made by terraform") && message.contains("set spec.engine"), "{message}");
    }

    /// A PATH holding these commands (at `/path/<command>`).
    fn path_with(commands: &'static [&'static str]) -> impl Fn(&str) -> Result<PathBuf, String> {
        move |command| {
            if commands.contains(&command) {
                Ok(PathBuf::from("/path").join(command))
            } else {
                Err(format!("cannot find binary path for {command}"))
            }
        }
    }

    fn binaries() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (terraform, tofu) = (dir.path().join("terraform"), dir.path().join("tofu"));
        std::fs::write(&terraform, "").unwrap();
        std::fs::write(&tofu, "").unwrap();
        (dir, terraform, tofu)
    }

    #[test]
    fn an_unset_engine_prefers_tofu_on_path_and_falls_back_to_terraform() {
        let both = locate_with(None, Configured::default(), path_with(&["terraform", "tofu"])).unwrap();
        assert_eq!(both, Located { engine: Engine::Tofu, bin: "/path/tofu".into() });
        let terraform_only = locate_with(None, Configured::default(), path_with(&["terraform"])).unwrap();
        assert_eq!(terraform_only.engine, Engine::Terraform);
        assert_eq!(locate_with(None, Configured::default(), path_with(&[])), Err(LocateError::NoneFound));
    }

    #[test]
    fn an_unset_engine_takes_a_configured_binary_before_path() {
        let (_dir, terraform, tofu) = binaries();
        let only_terraform = Configured { terraform: Some(&terraform), tofu: None };
        let got = locate_with(None, only_terraform, path_with(&["tofu"])).unwrap();
        assert_eq!(got, Located { engine: Engine::Terraform, bin: terraform.clone() }, "the operator's binary, not PATH's tofu");
        let both = Configured { terraform: Some(&terraform), tofu: Some(&tofu) };
        assert_eq!(locate_with(None, both, path_with(&[])).unwrap(), Located { engine: Engine::Tofu, bin: tofu });
    }

    #[test]
    fn a_chosen_engine_is_never_swapped_for_the_other() {
        let (_dir, terraform, tofu) = binaries();
        let both = Configured { terraform: Some(&terraform), tofu: Some(&tofu) };
        assert_eq!(locate_with(Some(Engine::Terraform), both, path_with(&[])).unwrap().bin, terraform);
        let only_terraform = Configured { terraform: Some(&terraform), tofu: None };
        let err = locate_with(Some(Engine::Tofu), only_terraform, path_with(&["terraform"])).unwrap_err();
        assert!(matches!(err, LocateError::NotOnPath { engine: Engine::Tofu, .. }), "{err:?}");
        assert!(err.to_string().starts_with("spec.engine is tofu but tofu is not on the runner's PATH"), "{err}");
        assert_eq!(locate_with(Some(Engine::Tofu), Configured::default(), path_with(&["tofu"])).unwrap().bin, PathBuf::from("/path/tofu"));
    }

    #[test]
    fn a_configured_binary_that_does_not_exist_is_named() {
        let missing = PathBuf::from("/nonexistent/tofu");
        let configured = Configured { terraform: None, tofu: Some(&missing) };
        let err = locate_with(None, configured, path_with(&["terraform"])).unwrap_err();
        assert_eq!(err.to_string(), "tofu not found: /nonexistent/tofu does not exist; fix the runner's tofu path");
    }
}
