//! `driftless build PATH [--substitute NAME=VALUE]...`: the manifests a Kustomization would
//! apply, built offline and printed as multi-document YAML, like `flux build` or
//! `kustomize build`. Needs no store and no cluster.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use crate::kustomize::{self as manifests, BuildError, SubstituteError};

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// A directory with a kustomization.yaml, or a plain directory of manifests.
    pub path: PathBuf,
    /// postBuild substitution: replace ${NAME} with VALUE (repeatable). Without any,
    /// no substitution runs, as with a Kustomization that has no postBuild.
    #[arg(long = "substitute", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub substitute: Vec<(String, String)>,
}

/// Why `build` failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildCommandError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Substitute(#[from] SubstituteError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} must be NAME=VALUE"))
}

/// Builds, substitutes when asked, and prints.
///
/// # Errors
/// The build or the substitution fails, or stdout cannot be written.
pub fn run(args: &BuildArgs) -> Result<(), BuildCommandError> {
    let mut objects = manifests::build(&args.path)?;
    if !args.substitute.is_empty() {
        let vars: BTreeMap<String, String> = args.substitute.iter().cloned().collect();
        objects = manifests::substitute(objects, &vars)?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(manifests::to_yaml_stream(&objects).as_bytes())?;
    out.flush()?;
    Ok(())
}
