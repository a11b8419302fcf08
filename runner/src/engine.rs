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
